"""Where every model component is declared: one registry per kind, one line per component.

A component is a builder function registered under a name with the settings it reads::

    @CORES.register("cnn", settings=("layers", "hidden_channels", ...))
    def build_cnn(config): ...

``fit(ds, core="cnn", readout="gaussian", interaction="none", head="none")`` looks the names up
here; nothing else in the package lists components. Settings that a component adds beyond the
shared :class:`~v1nb.models.config.ModelConfig` are declared with their defaults in
``extra_settings``: they are accepted only when that component is chosen, and enter a fit's cache
key only when they differ from the default, so adding a component never invalidates other fits.

The kinds and what a builder receives and returns:

``CORES``  ``build(config) -> nn.Module``: ``(B, 1, H, W) → (B, C, H', W')``; has ``regularizer()``;
    optionally ``embedding_layout(C)`` (how a readout's C weights split into named axes).
``READOUTS``  ``build(config, in_channels, n_neurons, spatial_shape, *, bias, positions, generator,
    rf_pixels) -> nn.Module``: ``(B, C, H', W') → (B, N)``; has ``regularizer()``, ``embedding()``
    ``(N, C)`` and ``position()`` ``(N, 2)`` or None.
``INTERACTIONS``  ``build(config, n_neurons, embedding_dim, positions) -> nn.Module``:
    ``forward(drive (B, N), context) → (B, N)`` between readout and output nonlinearity (see
    :mod:`v1nb.models.context`); has ``regularizer()``; attribute ``history_lags`` (earlier trials
    it reads, 0 for none) and optionally ``outputs_rates = True`` when it returns positive rates
    itself (the network then skips ``ELU + 1``).
``HEADS``  ``build(config, embedding_shape) -> nn.Module``: a clustering head on the readout
    embeddings (e.g. :class:`v1nb.cluster.head.DECHead`), trained by an objective term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping


@dataclass(frozen=True)
class Component:
    """One registered component: its name, builder and the settings it reads."""

    kind: str
    name: str
    build: Callable[..., Any]
    settings: tuple[str, ...] = ()
    extra_settings: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """Named builders of one kind of component (cores, readouts, interaction stages, heads).

    Behaves like the tuple of its names (``"cnn" in CORES``, ``tuple(CORES)``).
    """

    def __init__(self, kind: str, none_allowed: bool = False):
        self.kind = kind
        self.none_allowed = none_allowed
        self._components: dict[str, Component] = {}

    def register(self, name: str, settings: tuple[str, ...] = (),
                 extra_settings: Mapping[str, Any] | None = None) -> Callable[[Callable], Callable]:
        """Decorator: register ``builder`` under ``name``.

        Parameters
        ----------
        name : str
        settings : tuple of str
            Fields of :class:`~v1nb.models.config.ModelConfig` the builder reads (documentation and
            ``v1nb.models.settings_of``).
        extra_settings : mapping, optional
            Settings of this component only, with their defaults (name → default value; the type of
            the default is the type accepted).
        """
        def decorator(builder: Callable) -> Callable:
            if name in self._components or name == "none":
                raise ValueError(f"{self.kind} {name!r} is registered twice (or uses the reserved name 'none')")
            self._components[name] = Component(self.kind, name, builder, tuple(settings), dict(extra_settings or {}))
            return builder
        return decorator

    def names(self) -> tuple[str, ...]:
        return (("none",) if self.none_allowed else ()) + tuple(self._components)

    def check(self, name: str) -> str:
        """``name`` if it is registered (or ``"none"`` where allowed), else a ValueError listing the choices."""
        if not isinstance(name, str) or name not in self.names():
            raise ValueError(f"{self.kind}={name!r} is not one of {self.names()}")
        return name

    def __getitem__(self, name: str) -> Component:
        self.check(name)
        return self._components[name]

    def get(self, name: str) -> Component | None:
        """The component, or None for ``"none"``."""
        return None if name == "none" else self[name]

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (tuple, list, Registry)) else NotImplemented

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


CORES = Registry("core")
READOUTS = Registry("readout")
INTERACTIONS = Registry("interaction", none_allowed=True)
HEADS = Registry("head", none_allowed=True)
KINDS = {"core": CORES, "readout": READOUTS, "interaction": INTERACTIONS, "head": HEADS}


def load_components() -> None:
    """Import the modules that register the built-in components (one line each)."""
    from v1nb.models import cores, readouts, rotation  # noqa: F401
    from v1nb.models import heads  # noqa: F401
    from v1nb.models import interactions  # noqa: F401

"""The settings of a core–readout model and its training, with their defaults and validation.

One flat :class:`ModelConfig` holds every setting so that a fit is described by
``(core, readout, seed, config)`` and the cache key is a hash of exactly that. Training follows
the Sinz-lab reference settings (Lurz et al. 2021; the book's "Notation and methods" page). The default core is smaller than the Sensorium
one because the project's models train on a 2-core CPU: the images are average-pooled by 2
(36×64 → 18×32; the twin's preferred wavelengths stay ≥ 4 pixels), the layers are 3 plain
convolutions (7×7, then 3×3; 7×7 depth-separable convolutions are very slow on CPU) with 16
channels and "same" padding. The Sensorium core is ``downsample=1, layers=4,
hidden_channels=64, input_kernel=9, hidden_kernel=7, depth_separable=True, padding=False``.

The training schedule is shortened from the reference (lr 0.009, batch 128, patience 5, 4 decays,
tolerance 1e-6, 200 epochs) so that a default fit of the default twin (3,600 training images after
the validation split, 1,000 neurons) reaches early stopping in about 2 minutes of one CPU thread:
batch 128 with lr 0.015 (a higher rate than the reference's), a plateau when the validation
correlation gains less than 0.001 in 3 epochs, then two ×0.3 decays (at most 50 epochs). Measured on
the default twin after 40 epochs: mean FEVE 0.73 with batch 128 / lr 0.015, 0.72 with batch 64,
0.70 with batch 32, 0.71 with batch 128 / lr 0.025 (``bench/results/models*.json``).
For the reference schedule pass ``lr=0.009, batch_size=128, patience=5, max_lr_decays=4,
tolerance=1e-6, max_epochs=200``.

``num_threads=1`` by default: the default network is small (16 channels on 18×32 maps, and the
Gaussian readout's per-neuron sampling dominates), so intra-op parallelism gains little even on an
idle machine, while on a machine shared with other processes extra torch threads spin and wait on
each other (measured 2–6× slower with 2 threads than with 1 at load ≈ 5 on 2 cores). Use
``num_threads=0`` (torch's default) for large networks such as the Sensorium-sized core.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field
from typing import Any, Mapping

from v1nb.models.registry import CORES, HEADS, INTERACTIONS, KINDS, READOUTS, load_components


@dataclass(frozen=True)
class ModelConfig:
    """Every setting of a model and its training (see :func:`make_config`)."""

    # --- core (cnn / ln) -------------------------------------------------------------------
    layers: int = 3  # convolutional layers
    hidden_channels: int = 16  # channels per layer (cnn / ln)
    input_kernel: int = 7  # first-layer kernel size (pixels after downsampling)
    hidden_kernel: int = 3  # kernel size of layers 2..L
    depth_separable: bool = False  # hidden layers as 1×1 → depthwise k×k → 1×1
    padding: bool = True  # zero "same" padding; off = valid convolutions (the Sensorium setting)
    gamma_input: float = 6.4  # weight of the Laplace-L2-norm penalty on first-layer filters
    gamma_hidden: float = 0.0  # weight of the group-sparsity penalty on hidden filters
    downsample: int = 2  # average-pool the images by this factor before the core (speed; 1 = full resolution)
    channels_last: bool = False  # torch channels_last memory layout (faster for some CPU convs)
    # --- rotation-equivariant core -----------------------------------------------------------
    rotations: int = 8  # number of orientations R
    rotation_features: int = 4  # feature maps per orientation F (R * F = 32 channels: the readout is twice the CNN's,
    #                              the core has 3x fewer parameters). Measured on the default twin (bench/models.py):
    #                              F = 4: FEVE 0.745; F = 2 with rotation_hidden_features = 4: 0.731 with fewer
    #                              parameters in all than the CNN (24,256 vs 28,488; CNN 0.730); R = 4, F = 4: 0.720
    rotation_hidden_features: int = 0  # feature maps per orientation in layers 1..L-1 (0 = rotation_features)
    basis_order: int = 5  # highest total order of the 2-D Hermite basis (≤ kernel − 1; 5 resolves the twin's
    #                        4-pixel wavelengths in the 7×7 input filters)
    # --- readout -----------------------------------------------------------------------------
    gamma_readout: float = 0.0076  # L1 weight on readout features (gaussian) / mask×features (factorized)
    init_mu: str = "uniform"  # Gaussian readout start: "uniform" (U(±init_mu_range)) or "sta" (RF-centre estimate)
    init_mu_range: float = 0.3  # Gaussian readout: μ_n ~ U(±init_mu_range) at start
    init_sigma: float = 0.1  # Gaussian readout: initial covariance scale (grid units)
    position_predictor: bool = False  # predict μ_n from cortical position (MLP ending in tanh)
    elu_offset: float = 0.0  # output = ELU(ŷ + elu_offset) + 1
    # --- training ----------------------------------------------------------------------------
    loss: str = "poisson"  # "poisson" (counts, rates) or "mse" (e.g. dF/F that can be negative)
    lr: float = 0.015  # Adam learning rate (reference: 0.009 at batch 128; see the module docstring)
    batch_size: int = 128
    max_epochs: int = 50  # hard cap on epochs (the default twin stops early after ~40, ≈ 2 min on one CPU thread)
    patience: int = 3  # epochs without validation improvement before an lr decay (reference: 5)
    lr_decay_factor: float = 0.3
    max_lr_decays: int = 2  # stop at the plateau after this many decays (reference: 4)
    tolerance: float = 1e-3  # minimal improvement of the validation correlation that counts (reference: 1e-6)
    validation_fraction: float = 0.1  # share of training trials held out when there is no validation tier
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", ...
    progress: bool = True  # tqdm progress bar over epochs, shown only on a terminal (never in an executed notebook)
    num_threads: int = 1  # torch CPU threads during fit/predict (0 = leave torch's setting; see the module docstring)
    early_stopping: bool = True  # False: train exactly max_epochs and keep the last weights (fixed-schedule fine-tunes)
    trainable: str = "all"  # parameters that train: "all", "readout", "readout+head", "no_core" (all but the core)
    split: str = "tiers"  # "tiers" (the schema's train/validation/test) or "images:TRAIN,VAL,TEST" fractions of images
    # --- settings declared by the chosen components (registry.extra_settings), resolved with their defaults
    extras: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["extras"] = dict(self.extras)
        return out

    def get(self, name: str) -> Any:
        """A setting by name: a field, or a component's extra setting."""
        if name in self.extras:
            return self.extras[name]
        if name == "extras" or not hasattr(self, name):
            raise KeyError(f"no model setting {name!r} (chosen components declare {sorted(self.extras)})")
        return getattr(self, name)

    def non_default(self) -> dict[str, Any]:
        """The settings that differ from their defaults (what a cache key needs)."""
        defaults = ModelConfig()
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extras" and getattr(self, f.name) != getattr(defaults, f.name)}
        declared = _extra_defaults(None)
        out.update({k: v for k, v in self.extras.items() if declared.get(k, object()) != v})
        return out


def _extra_defaults(components: Mapping[str, str] | None) -> dict[str, Any]:
    """Extra settings (name → default) of the chosen components, or of every registered one."""
    load_components()
    out: dict[str, Any] = {}
    for kind, registry in KINDS.items():
        names = registry.names() if components is None else (components.get(kind, "none"),)
        for name in names:
            component = registry.get(name) if name in registry else None
            if component is not None:
                out.update(component.extra_settings)
    return out


def valid_keys(**components: str) -> tuple[str, ...]:
    """The names :func:`make_config` accepts (with ``core=``, ``interaction=`` ...: for those components)."""
    fields = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "extras")
    return fields + tuple(_extra_defaults(components or None))


def _checked(name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise TypeError(f"model setting {name}={value!r} must be {expected.__name__}")
    return value


def make_config(*, core: str | None = None, readout: str | None = None, interaction: str = "none",
                head: str = "none", **overrides: Any) -> ModelConfig:
    """The default :class:`ModelConfig` with ``overrides`` applied and checked.

    Parameters
    ----------
    core, readout, interaction, head : str, optional
        The chosen components: their extra settings (``registry.Component.extra_settings``) are
        accepted and resolved with their defaults. Without a core, the extra settings of every
        registered component are accepted.
    **overrides
        Settings by name.

    Raises
    ------
    TypeError
        For an unknown key (the message lists the valid ones) or a value of the wrong type.
    ValueError
        For an out-of-range value.
    """
    chosen = None if core is None else {"core": core, "readout": readout or "gaussian",
                                        "interaction": interaction, "head": head}
    extras_default = _extra_defaults(chosen)
    keys = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "extras")
    unknown = sorted(set(overrides) - set(keys) - set(extras_default))
    if unknown:
        raise TypeError(f"unknown model setting(s) {unknown}; valid settings are: "
                        f"{', '.join(keys + tuple(extras_default))}")
    defaults = ModelConfig()
    clean = {name: _checked(name, value, getattr(defaults, name))
             for name, value in overrides.items() if name in keys}
    extras = dict(extras_default) if chosen is not None else {}
    extras.update({name: _checked(name, value, extras_default[name])
                   for name, value in overrides.items() if name in extras_default})
    config = dataclasses.replace(defaults, **clean, extras=extras)
    _check_ranges(config)
    return config


def _check_ranges(c: ModelConfig) -> None:
    positive = ("layers", "hidden_channels", "input_kernel", "hidden_kernel", "rotations",
                "rotation_features", "batch_size", "downsample", "max_epochs", "patience", "lr")
    for name in positive:
        if getattr(c, name) <= 0:
            raise ValueError(f"model setting {name}={getattr(c, name)!r} must be positive")
    for name in ("input_kernel", "hidden_kernel"):
        if getattr(c, name) % 2 == 0:
            raise ValueError(f"model setting {name}={getattr(c, name)} must be odd (centred filters)")
    for name in ("gamma_input", "gamma_hidden", "gamma_readout", "init_sigma", "max_lr_decays", "basis_order",
                 "num_threads", "rotation_hidden_features"):
        if getattr(c, name) < 0:
            raise ValueError(f"model setting {name}={getattr(c, name)!r} must be ≥ 0")
    if not 0 < c.init_mu_range <= 1:
        raise ValueError(f"init_mu_range={c.init_mu_range} must be in (0, 1] (grid units)")
    if not 0 < c.lr_decay_factor < 1:
        raise ValueError(f"lr_decay_factor={c.lr_decay_factor} must be in (0, 1)")
    if not 0 < c.validation_fraction < 1:
        raise ValueError(f"validation_fraction={c.validation_fraction} must be in (0, 1)")
    if c.init_mu not in ("uniform", "sta"):
        raise ValueError(f"init_mu={c.init_mu!r} must be 'uniform' or 'sta'")
    if c.loss not in ("poisson", "mse"):
        raise ValueError(f"loss={c.loss!r} must be 'poisson' or 'mse'")
    if c.trainable not in TRAINABLE:
        raise ValueError(f"trainable={c.trainable!r} must be one of {TRAINABLE}")
    parse_split(c.split)


#: Which parameters train (``trainable`` setting): a fine-tune typically trains the readout (and head) only.
TRAINABLE = ("all", "readout", "readout+head", "no_core")


def parse_split(split: str) -> tuple[float, float, float] | None:
    """``"tiers"`` → None; ``"images:0.8,0.1,0.1"`` → (train, validation, test) fractions of the images.

    Raises
    ------
    ValueError
        For any other form, fractions that are not positive or do not sum to 1.
    """
    if split == "tiers":
        return None
    expected = "split must be 'tiers' or 'images:TRAIN,VAL,TEST' (fractions of the images summing to 1, e.g. 'images:0.8,0.1,0.1')"
    if not isinstance(split, str) or not split.startswith("images:"):
        raise ValueError(f"{expected}, got {split!r}")
    try:
        parts = tuple(float(v) for v in split[len("images:"):].split(","))
    except ValueError:
        raise ValueError(f"{expected}, got {split!r}") from None
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(f"{expected}, got {split!r}")
    return parts  # type: ignore[return-value]


def config_from_dict(values: Mapping[str, Any], **components: str) -> ModelConfig:
    """Rebuild a config saved with :meth:`ModelConfig.to_dict` (unknown keys raise)."""
    values = dict(values)
    extras = dict(values.pop("extras", {}) or {})
    return make_config(**components, **values, **extras)

"""A fitted response model with xarray in and out: :class:`ResponseModel`.

``ResponseModel(core, readout, random_state, **settings).fit(ds)`` trains a
:class:`~v1nb.models.network.CoreReadout` on the dataset's train tier (early stopping on its
validation tier); ``predict(ds, tier)`` returns a ``(trial, neuron)`` DataArray on that tier's
trials in the dataset's response units; ``embeddings()`` returns the readout feature vectors with
the dataset's neuron coordinates. :func:`v1nb.models.fit` wraps this with an on-disk cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from v1nb.data.schema import POSITION_COORDS
from v1nb.data.views import select_tier
from v1nb.models.config import ModelConfig, make_config
from v1nb.models.context import History
from v1nb.models.data import check_dataset, initial_bias, prepare, presentation_rank, receptive_field_centres
from v1nb.models.network import CoreReadout, build_network, embedding_layout
from v1nb.models.objectives import Term
from v1nb.models.registry import KINDS, load_components
from v1nb.models.training import predict_batches, torch_threads, train


class ResponseModel:
    """Core–readout model of a neural population's responses to images (scikit-learn conventions).

    Parameters are stored as given; they are checked, and the work done, in :meth:`fit`.

    Parameters
    ----------
    core : str
        A name in :data:`v1nb.models.registry.CORES` ("cnn", "rotation", "ln").
    readout : str
        A name in :data:`v1nb.models.registry.READOUTS` ("gaussian", "factorized").
    random_state : int
        Seeds initialisation, batch order, readout sampling and any validation split.
    interaction : str
        An interaction stage (:data:`v1nb.models.registry.INTERACTIONS`) or "none".
    head : str
        A clustering head on the embeddings (:data:`v1nb.models.registry.HEADS`) or "none".
    **settings
        Overrides of :class:`~v1nb.models.config.ModelConfig` and of the chosen components' own
        settings (unknown keys raise in ``fit`` and list the valid ones).

    Attributes (after ``fit``)
    --------------------------
    config_ : ModelConfig
        The resolved settings.
    network_ : CoreReadout
    history_ : dict
        Training curve, per-term losses and timing (see :func:`v1nb.models.training.train`).
    n_neurons_ : int
    image_shape_ : (int, int)
    cache_key_ : str
        Key of the fit in the model cache (set by :func:`v1nb.models.fit`; a fine-tune's parent key).
    """

    def __init__(self, core: str = "cnn", readout: str = "gaussian", random_state: int = 0,
                 interaction: str = "none", head: str = "none", **settings: Any):
        self.core = core
        self.readout = readout
        self.random_state = random_state
        self.interaction = interaction
        self.head = head
        self.settings = dict(settings)

    # ------------------------------------------------------------------------- parameters
    _COMPONENTS = ("core", "readout", "interaction", "head")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, as given (``settings`` flattened into keywords)."""
        return {"core": self.core, "readout": self.readout, "random_state": self.random_state,
                "interaction": self.interaction, "head": self.head, **self.settings}

    def set_params(self, **params: Any) -> "ResponseModel":
        """Set parameters (components, ``random_state`` or settings); checked at the next :meth:`fit`."""
        for name, value in params.items():
            if name in self._COMPONENTS or name == "random_state":
                setattr(self, name, value)
            else:
                self.settings[name] = value
        return self

    def validate(self) -> ModelConfig:
        """Check the components and settings; return (and store as ``config_``) the resolved config.

        Raises
        ------
        ValueError, TypeError
            Unknown component (listing the registered ones), unknown setting (listing the valid
            ones), or a value of the wrong type or range.
        """
        load_components()
        for kind in self._COMPONENTS:
            KINDS[kind].check(getattr(self, kind))
        if not isinstance(self.random_state, (int, np.integer)) or isinstance(self.random_state, bool):
            raise TypeError(f"random_state={self.random_state!r} must be an int")
        self.config_: ModelConfig = make_config(core=self.core, readout=self.readout, interaction=self.interaction,
                                                head=self.head, **self.settings)
        return self.config_

    # ------------------------------------------------------------------------------ fitting
    def fit(self, ds: xr.Dataset, parent: "ResponseModel | None" = None,
            terms: list[Term] | None = None, core_from: "ResponseModel | None" = None) -> "ResponseModel":
        """Train on ``ds`` (train tier; validation tier or a held-out share for early stopping).

        Parameters
        ----------
        ds : xarray.Dataset
        parent : ResponseModel, optional
            A fitted model of the same core and readout on the same dataset: training starts from
            its weights (a fine-tune). Modules the parent lacks (an interaction stage, a head) start
            from their own initialisation.
        terms : list of Term, optional
            The objective (default: prediction loss + regularisation, :mod:`v1nb.models.objectives`).
        core_from : ResponseModel, optional
            A fitted model of the same core whose **core** weights start this fit; its readout is not
            used, so its neurons (and dataset) may differ: readouts of other neurons on a given core.
            With ``trainable="readout"`` the core stays as it is. Not together with ``parent``.
        """
        check_start(parent, core_from)
        config = self.validate()
        torch.manual_seed(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        data = prepare(ds, config, self.random_state)
        positions = data.positions
        if config.position_predictor and positions is None:
            raise ValueError(f"position_predictor=True needs neuron coordinates {POSITION_COORDS}; "
                             f"{ds.attrs.get('source', 'the dataset')!r} has none")
        rf_pixels = None
        if config.init_mu == "sta" and self.readout == "gaussian" and not config.position_predictor:
            rf_pixels = receptive_field_centres(data)
        network = build_network(self.core, self.readout, config, data.n_neurons, data.image_shape,
                                bias=initial_bias(data.train_responses), positions=positions, generator=generator,
                                rf_pixels=rf_pixels, interaction=self.interaction, head=self.head)
        if parent is not None:
            self._start_from(parent, network, data.n_neurons)
        if core_from is not None:
            self._core_from(core_from, network)
        start = time.perf_counter()
        with torch_threads(config.num_threads):
            self.history_ = train(network, data, config, generator, terms)
        self.history_["wall_seconds"] = time.perf_counter() - start
        if parent is not None:
            self.history_["parent"] = source_key(parent)
        if core_from is not None:
            self.history_["core_from"] = source_key(core_from)
        self._set_fitted(network, data.n_neurons, data.image_shape, data.image_mean, data.image_std,
                         data.response_scale, _neuron_coords(ds))
        return self

    def _start_from(self, parent: "ResponseModel", network: CoreReadout, n_neurons: int) -> None:
        parent._check_fitted()
        if (parent.core, parent.readout) != (self.core, self.readout) or parent.n_neurons_ != n_neurons:
            raise ValueError(f"parent {parent!r} cannot start a fit of core={self.core!r}, readout={self.readout!r} "
                             f"on {n_neurons} neurons: core, readout and neurons must match")
        state = parent.network_.state_dict()
        missing, unexpected = network.load_state_dict(state, strict=False)
        allowed = ("interaction.", "head.", "positions")
        bad = [k for k in missing if not k.startswith(allowed)] + [k for k in unexpected if not k.startswith(allowed)]
        if bad:
            raise ValueError(f"parent {parent!r} does not fit this network: mismatched weights {bad[:5]}")

    def _core_from(self, source: "ResponseModel", network: CoreReadout) -> None:
        source._check_fitted()
        if source.core != self.core:
            raise ValueError(f"core_from {source!r} has core {source.core!r}; this fit's core is {self.core!r}")
        state = {k[len("core."):]: v for k, v in source.network_.state_dict().items() if k.startswith("core.")}
        try:
            network.core.load_state_dict(state)  # strict: every tensor of the core, of the same shape
        except RuntimeError as err:
            raise ValueError(f"core_from {source!r}: its core does not match this fit's core settings "
                             f"(layers, channels, kernels must be the same): {err}") from None

    def _set_fitted(self, network: CoreReadout, n_neurons: int, image_shape: tuple[int, int],
                    image_mean: float, image_std: float, response_scale: torch.Tensor,
                    neuron_coords: dict[str, np.ndarray]) -> None:
        self.network_ = network.eval()
        self.n_neurons_ = n_neurons
        self.image_shape_ = tuple(image_shape)
        self.image_mean_ = float(image_mean)
        self.image_std_ = float(image_std)
        self.response_scale_ = response_scale.float().cpu()
        self._neuron_coords = neuron_coords

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError("this ResponseModel is not fitted yet: call fit(dataset) first")

    # --------------------------------------------------------------------------- prediction
    def predict_images(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Predicted responses to raw images (same pixel convention as the training data).

        Parameters
        ----------
        images : array (n_images, H, W)

        Returns
        -------
        array (n_images, N) float32, in the dataset's response units

        A stage that reads earlier trials sees no history here (as on the first trial of a
        session); :meth:`predict` on a dataset gives it the sequence.
        """
        self._check_fitted()
        x = self._standardised_images(images)
        device = next(self.network_.parameters()).device
        with torch_threads(self.config_.num_threads):
            rates = predict_batches(self.network_, x, torch.arange(len(x)), device, batch_size,
                                    channels_last=self.config_.channels_last)
        return (rates * self.response_scale_).numpy()

    def predict(self, ds: xr.Dataset, tier: str = "test") -> xr.DataArray:
        """Predicted responses on the trials of one tier.

        Parameters
        ----------
        ds : xarray.Dataset
            The dataset (same neurons as the training data).
        tier : str

        Returns
        -------
        DataArray (trial, neuron)
            With the tier's trial coordinates and the dataset's neuron coordinates, so it can be
            passed with ``select_tier(ds, tier)["responses"]`` to :func:`v1nb.metrics.evaluate`.
        """
        self._check_fitted()
        check_dataset(ds)
        if ds.sizes["neuron"] != self.n_neurons_:
            raise ValueError(f"the model was fitted on {self.n_neurons_} neurons but "
                             f"{ds.attrs.get('source', 'the dataset')!r} has {ds.sizes['neuron']}")
        sub = select_tier(ds, tier)
        ids = sub["image_id"].values
        if (ids < 0).any():
            raise ValueError(f"tier {tier!r} has {int((ids < 0).sum())} trials without a known image "
                             "(blank or unknown stimulus): nothing to predict them from")
        if self.network_.history_lags > 0:
            rates = self._predict_sequence(ds, tier)
        else:
            unique, inverse = np.unique(ids, return_inverse=True)
            rates = self.predict_images(ds["images"].values[unique])[inverse.ravel()]
        template = sub["responses"].transpose("trial", "neuron")
        out = xr.DataArray(rates, dims=("trial", "neuron"), coords=template.coords, name="predictions")
        out.attrs = {"model": f"{self.core}+{self.readout}", "random_state": self.random_state,
                     **{k: v for k, v in ds["responses"].attrs.items() if k in ("units", "response_unit")}}
        return out

    def _standardised_images(self, images: np.ndarray) -> torch.Tensor:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or tuple(images.shape[1:]) != self.image_shape_:
            raise ValueError(f"images must have shape (n, {self.image_shape_[0]}, {self.image_shape_[1]}) "
                             f"like the training images, got {images.shape}")
        return torch.from_numpy((images - self.image_mean_) / self.image_std_)[:, None]

    def _predict_sequence(self, ds: xr.Dataset, tier: str) -> np.ndarray:
        """Predictions of a network that reads earlier trials: the whole sequence first, then the tier's trials."""
        from v1nb.models.training import sequence_history

        images = torch.cat([self._standardised_images(ds["images"].values),
                            torch.zeros(1, 1, *self.image_shape_)])
        ids = ds["image_id"].values.astype(np.int64)
        rank = presentation_rank(ds)
        sequence = np.empty(len(ids), np.int64)
        sequence[rank] = np.where(ids >= 0, ids, len(images) - 1)
        device = next(self.network_.parameters()).device
        tier_trials = np.flatnonzero(ds["tier"].values.astype(str) == tier)
        with torch_threads(self.config_.num_threads):
            history: History = sequence_history(self.network_, images, torch.from_numpy(sequence), device,
                                                self.config_.channels_last)
            rates = predict_batches(self.network_, images, torch.from_numpy(ids[tier_trials]), device,
                                    channels_last=self.config_.channels_last,
                                    trials=torch.from_numpy(rank[tier_trials]), history=history)
        return (rates * self.response_scale_).numpy()

    def evaluate(self, ds: xr.Dataset, tier: str = "test") -> xr.Dataset:
        """:func:`v1nb.metrics.evaluate` of :meth:`predict` against the tier's responses."""
        from v1nb.metrics import evaluate

        return evaluate(select_tier(ds, tier)["responses"], self.predict(ds, tier))

    # --------------------------------------------------------------------------- embeddings
    def embeddings(self) -> xr.DataArray:
        """The readout feature vectors ``w_n``: the neurons' embeddings.

        Returns
        -------
        DataArray
            ``(neuron, feature)``, or ``(neuron, rotation, feature)`` for the rotation-equivariant
            core (rotation-major channels; coordinate ``rotation_deg``), with the training
            dataset's neuron coordinates.
        """
        self._check_fitted()
        w = self.network_.embedding().detach().cpu().numpy().astype(np.float32)
        coords: dict[str, Any] = {name: ("neuron", values) for name, values in self._neuron_coords.items()}
        attrs = {"model": f"{self.core}+{self.readout}", "random_state": self.random_state}
        dims, shape, extra = embedding_layout(self.network_.core, w.shape[1])
        coords.update(extra)
        return xr.DataArray(w.reshape(len(w), *shape), dims=("neuron", *dims), coords=coords, name="embeddings",
                            attrs=attrs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to ``path`` atomically (:func:`v1nb.models.cache.save`)."""
        from v1nb.models.cache import save

        return save(self, path, getattr(self, "cache_key_", ""))

    @classmethod
    def load(cls, path: str | os.PathLike, ds: xr.Dataset | None = None) -> "ResponseModel":
        """Read a model written by :meth:`save` (``ds``: attach its neuron coordinates)."""
        from v1nb.models.cache import load

        return load(path, ds)

    # -------------------------------------------------------------------------- inspection
    def n_parameters(self, part: str = "all") -> int:
        """Number of trainable parameters of ``"all"``, ``"core"`` or ``"readout"``."""
        self._check_fitted()
        parts = {"all": self.network_, "core": self.network_.core, "readout": self.network_.readout,
                 "interaction": self.network_.interaction, "head": self.network_.head}
        if part not in parts:
            raise ValueError(f"part={part!r} must be one of {tuple(parts)}")
        module = parts[part]
        if module is None:
            return 0
        return int(sum(p.numel() for p in module.parameters() if p.requires_grad))

    def readout_positions(self) -> xr.DataArray:
        """Readout positions μ_n ``(neuron, axis)`` with axis (x, y) in grid units [−1, 1]."""
        self._check_fitted()
        with torch.no_grad():
            mu = self.network_.readout.position()
        if mu is None:
            raise ValueError(f"readout={self.readout!r} has no positions (only the Gaussian readout does)")
        coords = {name: ("neuron", v) for name, v in self._neuron_coords.items()}
        coords["axis"] = ["x", "y"]
        return xr.DataArray(mu.cpu().numpy(), dims=("neuron", "axis"), coords=coords, name="readout_position")

    def __repr__(self) -> str:
        fitted = f", fitted on {self.n_neurons_} neurons" if hasattr(self, "network_") else ""
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in ("interaction", "head") if getattr(self, k) != "none")
        return (f"ResponseModel(core={self.core!r}, readout={self.readout!r}{extra}, "
                f"random_state={self.random_state}{fitted})")


def check_start(parent: ResponseModel | None, core_from: ResponseModel | None) -> None:
    """A fit starts from a parent (a fine-tune of the same neurons) or from a core (other neurons), not both."""
    if parent is not None and core_from is not None:
        raise ValueError("give parent (a fine-tune of the same neurons) or core_from (a core for other "
                         "neurons), not both")


def source_key(model: ResponseModel) -> str:
    """What identifies a model a fit starts from (a parent, a core's source): its cache key, or for a
    model fitted outside the cache a hash of its weights."""
    return getattr(model, "cache_key_", "") or parent_fingerprint(model)


def parent_fingerprint(model: ResponseModel) -> str:
    """A hash of a fitted model's weights (the parent key of a fine-tune started outside the cache)."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.network_.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _neuron_coords(ds: xr.Dataset) -> dict[str, np.ndarray]:
    return {name: c.values for name, c in ds.coords.items() if c.dims == ("neuron",)}

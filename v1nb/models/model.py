"""A fitted response model with xarray in and out: :class:`ResponseModel`.

``ResponseModel(core, readout, random_state, **config).fit(ds)`` trains a
:class:`~v1nb.models.network.CoreReadout` on the dataset's train tier (early stopping on its
validation tier); ``predict(ds, tier)`` returns a ``(trial, neuron)`` DataArray on that tier's
trials in the dataset's response units; ``embeddings()`` returns the readout feature vectors with
the dataset's neuron coordinates. :func:`v1nb.models.fit` wraps this with an on-disk cache.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import xarray as xr

from v1nb.data.schema import POSITION_COORDS
from v1nb.data.views import select_tier
from v1nb.models.config import CORES, READOUTS, ModelConfig, check_choice, make_config
from v1nb.models.data import check_dataset, initial_bias, prepare, receptive_field_centres
from v1nb.models.network import CoreReadout, build_network
from v1nb.models.training import predict_batches, torch_threads, train


class ResponseModel:
    """Core–readout model of a neural population's responses to images.

    Parameters
    ----------
    core : {"cnn", "rotation", "ln"}
    readout : {"gaussian", "factorized"}
    random_state : int
        Seeds initialisation, batch order, readout sampling and any validation split.
    **config
        Overrides of :class:`~v1nb.models.config.ModelConfig` (unknown keys raise and list the
        valid ones).

    Attributes (after ``fit``)
    --------------------------
    network_ : CoreReadout
    history_ : dict
        Training curve and timing (see :func:`v1nb.models.training.train`).
    n_neurons_ : int
    image_shape_ : (int, int)
    neuron_coords_ : xarray.Coordinates
        The training dataset's neuron coordinates.
    """

    def __init__(self, core: str = "cnn", readout: str = "gaussian", random_state: int = 0, **config: Any):
        self.core = check_choice("core", core, CORES)
        self.readout = check_choice("readout", readout, READOUTS)
        self.random_state = random_state
        self.config = dict(config)
        self.config_: ModelConfig = make_config(**config)

    # ------------------------------------------------------------------------------ fitting
    def fit(self, ds: xr.Dataset) -> "ResponseModel":
        """Train on ``ds`` (train tier; validation tier or a held-out share for early stopping)."""
        config = self.config_
        torch.manual_seed(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        data = prepare(ds, config, self.random_state)
        positions = None
        if config.position_predictor:
            if not all(c in ds.coords for c in POSITION_COORDS):
                raise ValueError(f"position_predictor=True needs neuron coordinates {POSITION_COORDS}; "
                                 f"{ds.attrs.get('source', 'the dataset')!r} has none")
            positions = torch.tensor(np.stack([ds[c].values for c in POSITION_COORDS], 1), dtype=torch.float32)
        rf_pixels = None
        if config.init_mu == "sta" and self.readout == "gaussian" and positions is None:
            rf_pixels = receptive_field_centres(data)
        network = build_network(self.core, self.readout, config, data.n_neurons, data.image_shape,
                                bias=initial_bias(data.train_responses), positions=positions, generator=generator,
                                rf_pixels=rf_pixels)
        start = time.perf_counter()
        with torch_threads(config.num_threads):
            self.history_ = train(network, data, config, generator)
        self.history_["wall_seconds"] = time.perf_counter() - start
        self._set_fitted(network, data.n_neurons, data.image_shape, data.image_mean, data.image_std,
                         data.response_scale, _neuron_coords(ds))
        return self

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
        """
        self._check_fitted()
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or tuple(images.shape[1:]) != self.image_shape_:
            raise ValueError(f"images must have shape (n, {self.image_shape_[0]}, {self.image_shape_[1]}) "
                             f"like the training images, got {images.shape}")
        x = torch.from_numpy((images - self.image_mean_) / self.image_std_)[:, None]
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
        unique, inverse = np.unique(ids, return_inverse=True)
        rates = self.predict_images(ds["images"].values[unique])[inverse.ravel()]
        template = sub["responses"].transpose("trial", "neuron")
        out = xr.DataArray(rates, dims=("trial", "neuron"), coords=template.coords, name="predictions")
        out.attrs = {"model": f"{self.core}+{self.readout}", "random_state": self.random_state,
                     **{k: v for k, v in ds["responses"].attrs.items() if k in ("units", "response_unit")}}
        return out

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
        w = self.network_.readout.features.detach().cpu().numpy().astype(np.float32)
        coords: dict[str, Any] = {name: ("neuron", values) for name, values in self._neuron_coords.items()}
        attrs = {"model": f"{self.core}+{self.readout}", "random_state": self.random_state}
        if self.core == "rotation":
            R = self.config_.rotations
            w = w.reshape(len(w), R, -1)
            coords["rotation_deg"] = ("rotation", 360.0 * np.arange(R) / R)
            return xr.DataArray(w, dims=("neuron", "rotation", "feature"), coords=coords, name="embeddings", attrs=attrs)
        return xr.DataArray(w, dims=("neuron", "feature"), coords=coords, name="embeddings", attrs=attrs)

    # -------------------------------------------------------------------------- inspection
    def n_parameters(self, part: str = "all") -> int:
        """Number of trainable parameters of ``"all"``, ``"core"`` or ``"readout"``."""
        self._check_fitted()
        module = {"all": self.network_, "core": self.network_.core, "readout": self.network_.readout}[part]
        return int(sum(p.numel() for p in module.parameters() if p.requires_grad))

    def readout_positions(self) -> xr.DataArray:
        """Gaussian readout positions μ_n ``(neuron, axis)`` with axis (x, y) in grid units [−1, 1]."""
        self._check_fitted()
        if self.readout != "gaussian":
            raise ValueError(f"readout={self.readout!r} has no positions (only the Gaussian readout does)")
        with torch.no_grad():
            mu = self.network_.readout.mu.cpu().numpy()
        coords = {name: ("neuron", v) for name, v in self._neuron_coords.items()}
        coords["axis"] = ["x", "y"]
        return xr.DataArray(mu, dims=("neuron", "axis"), coords=coords, name="readout_position")

    def __repr__(self) -> str:
        fitted = f", fitted on {self.n_neurons_} neurons" if hasattr(self, "network_") else ""
        return f"ResponseModel(core={self.core!r}, readout={self.readout!r}, random_state={self.random_state}{fitted})"


def _neuron_coords(ds: xr.Dataset) -> dict[str, np.ndarray]:
    return {name: c.values for name, c in ds.coords.items() if c.dims == ("neuron",)}

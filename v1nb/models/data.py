"""From a schema dataset to the tensors a model trains on.

Images are standardised with the mean and standard deviation of the training images; responses
are divided by each neuron's standard deviation on the training trials (floored at 1 % of the
mean standard deviation, the Sensorium convention) so one learning rate suits every recording.
Predictions are scaled back, so the model speaks the dataset's units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from v1nb.data.schema import POSITION_COORDS, validate
from v1nb.models.config import ModelConfig, parse_split


class ModelWarning(UserWarning):
    """Something about the data the model had to work around (masked NaNs, a carved-out split)."""


@dataclass
class TrainingData:
    """Tensors for training, all on CPU.

    Attributes
    ----------
    images : (n_images + 1, 1, H, W) float32, standardised; the last row is a blank (mean-luminance) image
    train_images, val_images : (n_train,), (n_val,) int64 — row of ``images`` per trial
    train_responses, val_responses : (n_train, N), (n_val, N) float32, scaled, NaN = missing
    response_scale : (N,) float32 — divide responses by it, multiply predictions by it
    image_mean, image_std : float
    n_masked : int — NaN responses among the training + validation trials
    validation_source : str — "validation tier" or "held out from train (fraction f)"
    train_trials, val_trials : (n_train,), (n_val,) int64 — each trial's position in the presentation
        sequence (index into the dataset's trial axis, which the schema keeps in presentation order)
    sequence_images : (T,) int64 — row of ``images`` of every trial of the recording in presentation
        order; blank and unknown stimuli point at the last row, a mean-luminance (zero) image
    positions : (N, 3) float32 or None — cortical positions as recorded (µm)
    """

    images: torch.Tensor
    train_images: torch.Tensor
    train_responses: torch.Tensor
    val_images: torch.Tensor
    val_responses: torch.Tensor
    response_scale: torch.Tensor
    image_mean: float
    image_std: float
    n_masked: int
    validation_source: str
    train_trials: torch.Tensor | None = None
    val_trials: torch.Tensor | None = None
    sequence_images: torch.Tensor | None = None
    positions: torch.Tensor | None = None

    @property
    def n_neurons(self) -> int:
        return int(self.train_responses.shape[1])

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])  # type: ignore[return-value]


def _tier_trials(ds: xr.Dataset, tier: str) -> np.ndarray:
    mask = (ds["tier"].values.astype(str) == tier) & (ds["image_id"].values >= 0)
    return np.flatnonzero(mask)


def check_dataset(ds: xr.Dataset) -> None:
    """Raise a clear error when ``ds`` cannot train a response model."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"dataset must be an xarray.Dataset in the v1nb schema, got {type(ds).__name__}")
    source = ds.attrs.get("source", "the dataset")
    validate(ds, where=source)
    if "images" not in ds:
        raise ValueError(f"{source!r} has no 'images': a response model needs the stimulus pixels")
    if len(_tier_trials(ds, "train")) == 0:
        raise ValueError(f"{source!r} has no 'train' trials with known images: nothing to fit")


def apply_split(ds: xr.Dataset, split: str, seed: int) -> xr.Dataset:
    """``ds`` with its ``tier`` coordinate reassigned by ``split`` (``"tiers"``: unchanged).

    ``"images:TRAIN,VAL,TEST"`` draws whole images (with ``seed``) into train / validation / test in
    those proportions: every presentation of an image lands in the same tier, so no image is seen
    in training and scored in testing. Trials without a known image keep their tier. Use it for
    recordings in which every image is repeated (all "test" under the schema's rule, e.g. a Cowley V4
    session or a Sensorium test set): the model then trains on the train images' presentations and
    its test metrics use the held-out images' repeats.

    Parameters
    ----------
    ds : xarray.Dataset
    split : str
        ``"tiers"`` or ``"images:0.8,0.1,0.1"``.
    seed : int

    Returns
    -------
    xarray.Dataset
        With ``attrs["split"]`` recording the rule (and the ``repeat`` coordinate renumbered).

    Raises
    ------
    ValueError
        For a malformed ``split`` or fewer than 3 known images.
    """
    fractions = parse_split(split)
    if fractions is None:
        return ds
    source = ds.attrs.get("source", "the dataset")
    ids = ds["image_id"].values
    images = np.unique(ids[ids >= 0])
    if len(images) < 3:
        raise ValueError(f"{source!r}: split={split!r} needs at least 3 known images, found {len(images)}")
    order = np.random.default_rng(seed).permutation(images)
    n_train = max(1, int(round(fractions[0] * len(images))))
    n_val = max(1, int(round(fractions[1] * len(images))))
    n_train = min(n_train, len(images) - n_val - 1)
    tier_of = {}
    for k, image in enumerate(order):
        tier_of[int(image)] = "train" if k < n_train else "validation" if k < n_train + n_val else "test"
    tiers = ds["tier"].values.astype(object).copy()
    known = ids >= 0
    tiers[known] = [tier_of[int(i)] for i in ids[known]]
    from v1nb.data.schema import repeat_index

    order_coord = ds["order"].values if "order" in ds.coords else None
    out = ds.assign_coords(tier=("trial", tiers.astype(str).astype(object)),
                           repeat=("trial", repeat_index(ids, tiers, order_coord)))
    out.attrs = {**ds.attrs, "split": split}
    return out


def presentation_rank(ds: xr.Dataset) -> np.ndarray:
    """Each trial's position in the presentation sequence ``(trial,)``: the rank of ``order`` (or the trial index)."""
    n = ds.sizes["trial"]
    if "order" not in ds.coords:
        return np.arange(n)
    rank = np.empty(n, np.int64)
    rank[np.argsort(ds["order"].values, kind="stable")] = np.arange(n)
    return rank


def cortical_positions(ds: xr.Dataset) -> torch.Tensor | None:
    """Cortical positions ``(N, 3)`` float32 as recorded (µm), or None when the dataset has none."""
    if not all(c in ds.coords for c in POSITION_COORDS):
        return None
    return torch.tensor(np.stack([ds[c].values for c in POSITION_COORDS], 1), dtype=torch.float32)


def standardise_positions(positions: torch.Tensor) -> torch.Tensor:
    """Positions ``(N, 3)`` centred and scaled per axis (an axis without spread is only centred)."""
    sd = positions.std(0)
    return (positions - positions.mean(0)) / torch.where(sd > 0, sd, torch.ones_like(sd))


def prepare(ds: xr.Dataset, config: ModelConfig, seed: int) -> TrainingData:
    """Split, scale and convert ``ds`` for training.

    The split follows ``config.split`` (:func:`apply_split`). Without a validation tier,
    ``config.validation_fraction`` of the training images (all their trials) are held out for
    early stopping, chosen with ``seed``, and a :class:`ModelWarning` says so. Trials stay in
    presentation order.
    """
    ds = apply_split(ds, config.split, seed)
    check_dataset(ds)
    source = ds.attrs.get("source", "the dataset")
    train = _tier_trials(ds, "train")
    val = _tier_trials(ds, "validation")
    validation_source = "validation tier"
    if len(val) == 0:
        ids = np.unique(ds["image_id"].values[train])
        if len(ids) < 2:
            raise ValueError(f"{source!r}: too few training images to hold out a validation set")
        rng = np.random.default_rng(seed)
        n_val = max(1, int(round(config.validation_fraction * len(ids))))
        held = np.isin(ds["image_id"].values[train], rng.choice(ids, n_val, replace=False))
        train, val = train[~held], train[held]
        validation_source = f"held out from train (fraction {config.validation_fraction})"
        warnings.warn(f"{source!r} has no validation tier: {len(val)} training trials ({n_val} images) "
                      "are held out for early stopping", ModelWarning, stacklevel=3)
    responses = ds["responses"].transpose("trial", "neuron").values
    y_train = responses[train].astype(np.float32)
    y_val = responses[val].astype(np.float32)
    n_masked = int(np.isnan(y_train).sum() + np.isnan(y_val).sum())
    if n_masked:
        warnings.warn(f"{source!r}: {n_masked} NaN responses in the training/validation trials are masked "
                      "out of the loss and the validation score", ModelWarning, stacklevel=3)
    if np.isnan(y_train).all(0).any():
        bad = np.flatnonzero(np.isnan(y_train).all(0))[:10].tolist()
        raise ValueError(f"{source!r}: neurons {bad} have no measured training response")
    if config.loss == "poisson" and np.nanmin(y_train) < 0:
        raise ValueError(f"{source!r} has negative responses (min {np.nanmin(y_train):.3g}): the Poisson loss "
                         "needs non-negative rates or counts; use loss='mse'")
    std = np.nanstd(y_train, axis=0)
    floor = 0.01 * float(np.mean(std)) if np.mean(std) > 0 else 1.0
    scale = np.maximum(std, floor).astype(np.float32)
    images = ds["images"].values.astype(np.float32)
    used = images[np.unique(ds["image_id"].values[train])]
    mean, sd = float(used.mean()), float(used.std())
    sd = sd if sd > 0 else 1.0
    # one extra, mean-luminance row (zero after standardisation) stands for blank trials in the sequence
    standardised = np.concatenate([(images - mean) / sd, np.zeros((1, *images.shape[1:]), np.float32)])
    rank = presentation_rank(ds)
    all_ids = ds["image_id"].values.astype(np.int64)
    sequence = np.empty(len(all_ids), np.int64)
    sequence[rank] = np.where(all_ids >= 0, all_ids, len(images))
    return TrainingData(
        images=torch.from_numpy(standardised)[:, None],
        train_trials=torch.from_numpy(rank[train].astype(np.int64)),
        val_trials=torch.from_numpy(rank[val].astype(np.int64)),
        sequence_images=torch.from_numpy(sequence),
        positions=cortical_positions(ds),
        train_images=torch.from_numpy(ds["image_id"].values[train].astype(np.int64)),
        train_responses=torch.from_numpy(y_train / scale),
        val_images=torch.from_numpy(ds["image_id"].values[val].astype(np.int64)),
        val_responses=torch.from_numpy(y_val / scale),
        response_scale=torch.from_numpy(scale),
        image_mean=mean, image_std=sd, n_masked=n_masked, validation_source=validation_source,
    )


def initial_bias(train_responses: torch.Tensor) -> torch.Tensor:
    """Biases for which ``ELU(b) + 1`` equals each neuron's mean (scaled) training response."""
    mean = torch.nan_to_num(train_responses.nanmean(0), nan=1.0).clamp_min(1e-3)
    return torch.where(mean >= 1, mean - 1, torch.log(mean))


def receptive_field_centres(data: TrainingData, smooth: float = 1.5) -> torch.Tensor:
    """A rough receptive-field centre per neuron from the training data, in pixels ``(N, 2)`` as (x, y).

    The map of each neuron is the squared spike-triggered average (linear, simple-cell-like
    responses) plus the response-weighted local contrast energy (complex-cell-like responses),
    each normalised to its maximum and smoothed; the centre is its peak. Used to start the
    Gaussian readout near the right place (``init_mu="sta"``) instead of ``U(±0.3)``.
    """
    from scipy.ndimage import gaussian_filter

    x = data.images[data.train_images, 0].double()  # (T, H, W)
    t, h, w = x.shape
    y = data.train_responses.double()
    y = torch.where(torch.isnan(y), torch.nanmean(y, 0, keepdim=True), y)
    y = y - y.mean(0, keepdim=True)
    flat = x.reshape(t, -1)
    sta = (y.T @ flat).reshape(-1, h, w).numpy()  # (N, H, W)
    energy = torch.from_numpy(gaussian_filter(x.pow(2).numpy(), (0, 1.0, 1.0))).reshape(t, -1)
    ete = (y.T @ (energy - energy.mean(0))).reshape(-1, h, w).numpy()
    maps = gaussian_filter(sta ** 2, (0, smooth, smooth))
    maps = maps / np.maximum(maps.reshape(len(maps), -1).max(1), 1e-12)[:, None, None]
    ete = gaussian_filter(np.clip(ete, 0, None), (0, smooth, smooth))
    maps = maps + ete / np.maximum(ete.reshape(len(ete), -1).max(1), 1e-12)[:, None, None]
    peak = maps.reshape(len(maps), -1).argmax(1)
    return torch.tensor(np.stack([peak % w, peak // w], 1), dtype=torch.float32)

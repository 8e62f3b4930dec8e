"""Reference points for a fitted model: a linear model on pixels and the chance level.

A held-out correlation means little on its own when the data are small (the Allen subset has 100
training scenes and no repeats, so no noise ceiling). Two references make it interpretable:

:func:`pixel_ridge`
    Ridge regression from the (average-pooled) pixels of each trial's image to the responses, with
    the penalty chosen by efficient leave-one-out cross-validation on the training tier — the
    simplest image-computable model. If it also fails, the data rather than the network limit
    the prediction.
:func:`chance_correlation_to_average`
    The mean correlation to average a prediction reaches when its images are shuffled: the
    distribution under "the prediction carries no information about which image was shown".
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.linear_model import RidgeCV

from v1nb.analysis.receptive_fields import block_average
from v1nb.data.views import select_tier
from v1nb.metrics import _check_pair, _correlation_to_average

__all__ = ["pixel_ridge", "chance_correlation_to_average"]


def pixel_ridge(ds: xr.Dataset, tier: str = "test", train_tier: str = "train", downsample: int = 2,
                alphas: np.ndarray | None = None) -> xr.DataArray:
    """Predictions of a ridge regression from pixels to responses on the trials of ``tier``.

    Parameters
    ----------
    ds : xarray.Dataset
        v1nb schema with ``images``.
    tier, train_tier : str
        Evaluate on ``tier``; fit on the trials of ``train_tier`` with a known image.
    downsample : int
        Average-pool the images by this factor first (fewer inputs than training trials helps).
    alphas : array, optional
        Candidate penalties (default ``10^-1 … 10^7``); the leave-one-out best is used.

    Returns
    -------
    DataArray (trial, neuron)
        On the trials of ``tier``, with ``attrs["alpha"]`` the chosen penalty.

    Raises
    ------
    ValueError
        Without images, with ``downsample`` < 1 or with fewer than 3 training trials.
    """
    if "images" not in ds:
        raise ValueError(f"pixel_ridge needs the 'images' variable; {ds.attrs.get('source', 'the dataset')!r} has none")
    if downsample < 1:
        raise ValueError(f"downsample={downsample} must be ≥ 1")
    train = select_tier(ds, train_tier)
    train = train.isel(trial=np.flatnonzero(train["image_id"].values >= 0))
    if train.sizes["trial"] < 3:
        raise ValueError(f"pixel_ridge needs at least 3 {train_tier!r} trials with a known image, "
                         f"has {train.sizes['trial']}")
    test = select_tier(ds, tier)
    pixels = block_average(ds["images"].values.astype(np.float64), downsample).reshape(ds.sizes["image"], -1)
    mean, std = pixels[train["image_id"].values].mean(0), pixels[train["image_id"].values].std() + 1e-12
    X = (pixels - mean) / std
    y = train["responses"].values.astype(np.float64)
    observed = np.isfinite(y)
    y = np.where(observed, y, np.nanmean(y, axis=0))  # missing values: the neuron's mean (no pull)
    model = RidgeCV(alphas=np.logspace(-1, 7, 17) if alphas is None else np.asarray(alphas))
    model.fit(X[train["image_id"].values], y)
    ids = test["image_id"].values
    pred = np.full(test["responses"].shape, np.nan)
    known = ids >= 0
    pred[known] = model.predict(X[ids[known]])
    pred[~known] = model.intercept_  # blank / unknown image: the mean response
    out = xr.zeros_like(test["responses"], dtype=np.float64).copy(data=pred)
    out.name = "pixel_ridge"
    out.attrs = {"alpha": float(model.alpha_), "downsample": downsample}
    return out


def chance_correlation_to_average(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray,
                                  n_permutations: int = 1000, random_state: int | None = 0) -> xr.Dataset:
    """Mean correlation to average, observed and with the predictions' images shuffled.

    Each permutation reassigns the per-image predictions to random images (the same permutation
    for all neurons, so correlations between neurons are kept), then averages over neurons.

    Parameters
    ----------
    responses, predictions : DataArray (trial, neuron)
        As for :func:`v1nb.metrics.correlation_to_average`.
    n_permutations : int
    random_state : int, optional

    Returns
    -------
    Dataset
        ``null`` (permutation,): the mean correlation under shuffling; attributes ``observed``,
        ``p_value`` (one-sided, ``(1 + #null ≥ observed) / (1 + n)``) and ``null_95`` (its 95th
        percentile).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations} must be ≥ 1")
    responses, pred = _check_pair(responses, predictions)
    ids = responses["image_id"].values
    known = ids >= 0
    if not known.any():
        raise ValueError("chance_correlation_to_average needs trials with a known 'image_id'")
    y = responses.values.astype(np.float64)
    observed = float(np.mean(_correlation_to_average(responses, y, pred)))
    images = np.unique(ids[known])
    # one prediction per image (the model predicts the same for every repeat of an image)
    per_image = np.stack([pred[ids == i].mean(0) for i in images])
    position = np.searchsorted(images, ids[known])
    rng = np.random.default_rng(random_state)
    null = np.empty(n_permutations)
    shuffled = pred.copy()
    for k in range(n_permutations):
        shuffled[known] = per_image[rng.permutation(len(images))][position]
        null[k] = np.mean(_correlation_to_average(responses, y, shuffled))
    p_value = float((1 + np.sum(null >= observed)) / (1 + n_permutations))
    return xr.Dataset({"null": ("permutation", null)},
                      attrs={"observed": observed, "p_value": p_value, "null_95": float(np.quantile(null, 0.95)),
                             "n_permutations": n_permutations})

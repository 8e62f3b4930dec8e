"""Per-neuron evaluation metrics (Sensorium conventions, Willeke et al. 2022).

Every function takes ``responses`` (and ``predictions``) as :class:`xarray.DataArray` with dims
``(trial, neuron)`` on the trials of one tier (usually ``test``), carrying the trial coordinate
``image_id`` (and ``tier``) of the v1nb schema, and returns a per-neuron ``DataArray`` that keeps
the dataset's neuron coordinates. :func:`evaluate` gathers all of them in one ``Dataset``.

Definitions (per neuron; images i, repeats r)
--------------------------------------------
corr(a, b)
    z-score both with the population std (ddof 0) plus 1e-8, mean of the product. A constant
    neuron gets 0 (Sensorium's convention); a neuron with fewer than two measured values gets NaN.
single-trial correlation
    corr over all trials (every repeat its own row) of prediction vs response.
correlation to average
    average responses and predictions over the repeats of each image, corr across images.
FEV
    ``(total_var − noise_var) / total_var`` with ``total_var`` = Var over all repeated-image trials
    (ddof 1) and ``noise_var`` = mean over images of Var over repeats (ddof 1).
FEVE
    ``1 − (MSE − noise_var) / (total_var − noise_var)``; summarise with :func:`mean_feve` over
    neurons with FEV ≥ 0.15 (:func:`reliable`).
oracle correlation
    corr of each repeat with the mean of the other repeats of its image (jackknife), pooled.
SNR
    Anscombe ``A(y) = 2 √(y + 3/8)``; ``Var_i(mean_r A) / mean_i Var_r(A)`` (outer variance ddof 0,
    inner ddof 1).

Missing repeats and missing values
----------------------------------
FEV, FEVE, oracle correlation and SNR need images shown at least twice. When the trials have no
such image (no test tier, trial-averaged data), these metrics are **NaN** and a
:class:`MetricWarning` says why; they are never computed from a wrong substitute. The
single-trial correlation and the correlation to average stay available (without repeats the
latter correlates the one response per image).

NaN responses are masked per neuron (each neuron uses the trials where it was measured); the
count is reported in a warning, in the ``n_masked`` variable and in ``attrs["n_masked"]``.
Predictions must be finite (a NaN prediction is a model bug and raises).

A neuron **without data** (fewer than two measured responses among the trials scored, e.g. all
its test responses NaN) gets NaN for every metric, never a correlation of 0 that would pull
medians and means down; ``attrs["n_without_data"]`` counts them. Summaries over neurons leave
NaN out and say how many they left out (:func:`neuron_summary`).

A constant neuron (zero variance) has correlations 0 and FEV, FEVE and SNR NaN (undefined), so the
FEV ≥ 0.15 filter excludes it.
"""

from __future__ import annotations

import warnings
from typing import Hashable

import numpy as np
import xarray as xr

#: Added to the standard deviation when z-scoring (as in the Sensorium code).
EPS = 1e-8
#: The FEV threshold below which a neuron is considered too unreliable to report FEVE.
FEV_THRESHOLD = 0.15

__all__ = [
    "MetricWarning", "FEV_THRESHOLD", "correlation", "single_trial_correlation",
    "correlation_to_average", "fev", "feve", "oracle_correlation", "snr", "reliable", "mean_feve",
    "evaluate", "ceiling", "neuron_summary",
]


class MetricWarning(UserWarning):
    """A metric is unavailable (NaN) or computed on masked data; the message says why."""


# --------------------------------------------------------------------------------------------
# array-level helpers (float64, NaN = missing, reduce over axis 0)
# --------------------------------------------------------------------------------------------

def _nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    valid = ~np.isnan(x)
    n = valid.sum(axis)
    s = np.where(valid, x, 0.0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _nanvar(x: np.ndarray, axis: int = 0, ddof: int = 0) -> np.ndarray:
    valid = ~np.isnan(x)
    n = valid.sum(axis)
    mean = _nanmean(x, axis)
    dev = np.where(valid, x - np.expand_dims(mean, axis), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > ddof, (dev ** 2).sum(axis) / np.maximum(n - ddof, 1), np.nan)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sensorium correlation along axis 0, masking entries where either is NaN; NaN → 0."""
    mask = np.isnan(a) | np.isnan(b)
    a = np.where(mask, np.nan, a)
    b = np.where(mask, np.nan, b)
    za = (a - _nanmean(a)) / (np.sqrt(_nanvar(a)) + EPS)
    zb = (b - _nanmean(b)) / (np.sqrt(_nanvar(b)) + EPS)
    return np.nan_to_num(_nanmean(za * zb), nan=0.0)


def _corr_or_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`_corr`, but NaN for columns with fewer than two entries where both are measured.

    A correlation of no data is undefined, not 0: reporting 0 would count a neuron without
    responses as a neuron with no signal. :func:`_corr` itself stays as it is: model training
    uses it for early stopping (a mean over neurons) and the model cache fingerprints its source.
    """
    n_pairs = (~(np.isnan(a) | np.isnan(b))).sum(axis=0)
    return np.where(n_pairs >= 2, _corr(a, b), np.nan)


def _without_data(y: np.ndarray) -> np.ndarray:
    """(neuron,) bool: fewer than two measured (non-NaN) responses."""
    return (~np.isnan(y)).sum(axis=0) < 2


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------

def _check_responses(responses: xr.DataArray, name: str = "responses") -> xr.DataArray:
    if not isinstance(responses, xr.DataArray):
        raise TypeError(
            f"{name} must be an xarray.DataArray (trial, neuron) with an 'image_id' trial coordinate, "
            f"got {type(responses).__name__}; e.g. select_tier(ds, 'test')['responses']"
        )
    if set(responses.dims) != {"trial", "neuron"} or responses.ndim != 2:
        raise ValueError(f"{name} must have dims ('trial', 'neuron'), has {responses.dims}")
    return responses.transpose("trial", "neuron")


def _check_pair(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray) -> tuple[xr.DataArray, np.ndarray]:
    responses = _check_responses(responses)
    if isinstance(predictions, xr.DataArray):
        if set(predictions.dims) != {"trial", "neuron"}:
            raise ValueError(f"predictions must have dims ('trial', 'neuron'), has {predictions.dims}")
        predictions = predictions.transpose("trial", "neuron")
        if predictions.shape != responses.shape:
            raise ValueError(
                f"predictions shape {predictions.shape} does not match responses shape {responses.shape} "
                "(trial, neuron): predict on the same trials and neurons"
            )
        for coord in ("image_id", "tier"):
            if coord in predictions.coords and coord in responses.coords:
                if not np.array_equal(predictions[coord].values, responses[coord].values):
                    raise ValueError(f"predictions and responses are on different trials (coordinate {coord!r} differs)")
        pred = predictions.values
    else:
        pred = np.asarray(predictions)
        if pred.shape != responses.shape:
            raise ValueError(
                f"predictions shape {pred.shape} does not match responses shape {responses.shape} (trial, neuron)"
            )
    pred = pred.astype(np.float64)
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"predictions contain {int((~np.isfinite(pred)).sum())} non-finite values")
    return responses, pred


def _warn_masked(values: np.ndarray, name: str = "responses", stacklevel: int = 3) -> None:
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        n_neurons = int(np.isnan(values).any(0).sum())
        warnings.warn(
            f"{name} contain {n_nan} NaN values ({n_nan / values.size:.2%}) in {n_neurons} neurons; "
            "they are masked (each neuron is scored on the trials where it was measured)",
            MetricWarning, stacklevel=stacklevel,
        )


def _group_keys(responses: xr.DataArray) -> np.ndarray | None:
    """One integer per trial naming its (tier, image); −1 for trials without a known image."""
    if "image_id" not in responses.coords:
        return None
    ids = np.asarray(responses["image_id"].values, dtype=np.int64)
    tiers = responses["tier"].values.astype(str) if "tier" in responses.coords else np.zeros(len(ids), str)
    keys = np.full(len(ids), -1, dtype=np.int64)
    known = ids >= 0
    if known.any():
        pairs = np.stack([np.unique(tiers, return_inverse=True)[1].ravel(), ids], axis=1)[known]
        keys[known] = np.unique(pairs, axis=0, return_inverse=True)[1].ravel()
    return keys


def _padded(values: np.ndarray, keys: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Stack trials by image into (image, repeat, neuron), NaN-padded to the largest repeat count.

    Only images with at least ``min_count`` presentations are kept.
    """
    known = keys >= 0
    k = keys[known]
    v = values[known]
    counts = np.bincount(k)
    order = np.argsort(k, kind="stable")
    slot = np.arange(len(k)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((len(counts), int(counts.max()), values.shape[1]), np.nan)
    out[k[order], slot, :] = v[order]
    return out[counts >= min_count]


def _repeated(responses: xr.DataArray, values: np.ndarray, metric: str, stacklevel: int = 3) -> np.ndarray | None:
    """The (image, repeat, neuron) array of images with ≥ 2 presentations, or None (+ warning)."""
    keys = _group_keys(responses)
    if keys is None:
        reason = "the trials carry no 'image_id' coordinate"
    elif not (keys >= 0).any():
        reason = "no trial shows a known image"
    else:
        grid = _padded(values, keys, min_count=2)
        if len(grid):
            return grid
        reason = "no image is shown at least twice (no test tier, or trial-averaged data)"
    warnings.warn(f"{metric} needs repeated presentations but {reason}: reported as NaN", MetricWarning, stacklevel=stacklevel)
    return None


def _response_grid(responses: xr.DataArray, metric: str) -> tuple[xr.DataArray, np.ndarray, np.ndarray | None]:
    """Checked responses, their float64 values (NaNs warned about) and their repeat grid."""
    responses = _check_responses(responses)
    y = responses.values.astype(np.float64)
    _warn_masked(y, stacklevel=4)
    return responses, y, _repeated(responses, y, metric, stacklevel=4)


def _out(values: np.ndarray, responses: xr.DataArray, name: str) -> xr.DataArray:
    neuron_coords = {k: c for k, c in responses.coords.items() if c.dims == ("neuron",)}
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=("neuron",), coords=neuron_coords, name=name)


# --------------------------------------------------------------------------------------------
# the metrics
# --------------------------------------------------------------------------------------------

def correlation(a: xr.DataArray, b: xr.DataArray, dim: Hashable = "trial") -> xr.DataArray:
    """Sensorium correlation of ``a`` and ``b`` along ``dim`` (NaN entries masked).

    0 where one of them is constant; NaN where fewer than two entries are measured in both.

    Parameters
    ----------
    a, b : DataArray with dimension ``dim`` (same shape after alignment)

    Returns
    -------
    DataArray without ``dim``
    """
    a, b = xr.align(a, b, join="exact")
    other = [d for d in a.dims if d != dim]
    a = a.transpose(dim, *other)
    b = b.transpose(dim, *other)
    r = _corr_or_nan(a.values.astype(np.float64), b.values.astype(np.float64))
    coords = {k: c for k, c in a.coords.items() if dim not in c.dims}
    return xr.DataArray(r, dims=other, coords=coords, name="correlation")


def single_trial_correlation(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Correlation of prediction and response over all trials, per neuron.

    Parameters
    ----------
    responses : DataArray (trial, neuron)
    predictions : DataArray or array (trial, neuron), same trials

    Returns
    -------
    DataArray (neuron,)
    """
    responses, pred = _check_pair(responses, predictions)
    y = responses.values.astype(np.float64)
    _warn_masked(y)
    return _out(_corr_or_nan(y, pred), responses, "single_trial_correlation")


def correlation_to_average(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Correlation across images of the repeat-averaged response and prediction, per neuron.

    Trials without a known image (``image_id < 0``) are left out. Without repeats this correlates
    the single response per image with its prediction.

    Returns
    -------
    DataArray (neuron,)
    """
    responses, pred = _check_pair(responses, predictions)
    y = responses.values.astype(np.float64)
    _warn_masked(y)
    return _out(_correlation_to_average(responses, y, pred, missing=np.nan), responses, "correlation_to_average")


def _correlation_to_average(responses: xr.DataArray, y: np.ndarray, pred: np.ndarray,
                            missing: float = 0.0) -> np.ndarray:
    """Per-neuron correlation of repeat-averaged responses and predictions across images.

    ``missing`` is returned for neurons measured on fewer than two images (the public metrics
    pass NaN; the baselines' chance level keeps the training convention 0).
    """
    keys = _group_keys(responses)
    if keys is None or not (keys >= 0).any():
        warnings.warn("correlation to average needs the 'image_id' of each trial: reported as NaN", MetricWarning, stacklevel=3)
        return np.full(y.shape[1], np.nan)
    pred = np.where(np.isnan(y), np.nan, pred)  # average the prediction over the same trials
    mean_y = _nanmean(_padded(y, keys), axis=1)
    mean_p = _nanmean(_padded(pred, keys), axis=1)
    r = _corr_or_nan(mean_y, mean_p)
    return np.where(np.isnan(r), missing, r)


def _variances(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """total_var (ddof 1 over all trials of repeated images) and noise_var, per neuron."""
    total = _nanvar(grid.reshape(-1, grid.shape[-1]), ddof=1)
    noise = _nanmean(_nanvar(grid, axis=1, ddof=1), axis=0)
    return total, noise


def _fev(grid: np.ndarray) -> np.ndarray:
    total, noise = _variances(grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (total - noise) / np.where(total > 0, total, 1.0), np.nan)


def fev(responses: xr.DataArray) -> xr.DataArray:
    """Fraction of explainable variance, per neuron (NaN without repeats or for a constant neuron).

    Parameters
    ----------
    responses : DataArray (trial, neuron) with trial coordinate ``image_id``

    Returns
    -------
    DataArray (neuron,)
    """
    responses, y, grid = _response_grid(responses, "FEV")
    return _out(np.full(y.shape[1], np.nan) if grid is None else _fev(grid), responses, "fev")


def _feve(grid_y: np.ndarray, grid_p: np.ndarray) -> np.ndarray:
    total, noise = _variances(grid_y)
    mse = _nanmean(((grid_y - grid_p) ** 2).reshape(-1, grid_y.shape[-1]))
    explainable = total - noise
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1 - (mse - noise) / np.where(explainable != 0, explainable, np.nan), np.nan)


def feve(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Fraction of explainable variance explained by the predictions, per neuron.

    Computed on the trials of images shown at least twice. NaN without repeats or for a constant
    neuron. Average it over reliable neurons only (:func:`mean_feve`): for neurons with tiny
    explainable variance it is dominated by noise.

    Returns
    -------
    DataArray (neuron,)
    """
    responses, pred = _check_pair(responses, predictions)
    y = responses.values.astype(np.float64)
    _warn_masked(y)
    grid = _repeated(responses, np.concatenate([y, pred], axis=1), "FEVE")
    if grid is None:
        return _out(np.full(y.shape[1], np.nan), responses, "feve")
    n = y.shape[1]
    return _out(_feve(grid[..., :n], grid[..., n:]), responses, "feve")


def _oracle(grid: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(grid)
    n = valid.sum(1, keepdims=True)
    total = np.where(valid, grid, 0.0).sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.where(valid & (n >= 2), (total - grid) / (n - 1), np.nan)
    y = np.where(np.isnan(loo), np.nan, grid)
    return _corr_or_nan(y.reshape(-1, grid.shape[-1]), loo.reshape(-1, grid.shape[-1]))


def oracle_correlation(responses: xr.DataArray) -> xr.DataArray:
    """Jackknife oracle: correlation of each repeat with the mean of the other repeats, pooled.

    Returns
    -------
    DataArray (neuron,) — NaN without repeats, and for a neuron with fewer than two measured
    repeats of any image (no data).
    """
    responses, y, grid = _response_grid(responses, "oracle correlation")
    return _out(np.full(y.shape[1], np.nan) if grid is None else _oracle(grid), responses, "oracle_correlation")


def _snr(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SNR per neuron and a mask of neurons with negative responses (Anscombe undefined)."""
    negative = np.nanmin(np.where(np.isnan(grid), np.inf, grid).reshape(-1, grid.shape[-1]), axis=0) < 0
    with np.errstate(invalid="ignore"):
        a = 2.0 * np.sqrt(grid + 3.0 / 8.0)
    signal = _nanvar(_nanmean(a, axis=1), axis=0, ddof=0)
    noise = _nanmean(_nanvar(a, axis=1, ddof=1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(noise > 0, signal / np.where(noise > 0, noise, 1.0), np.nan)
    return np.where(negative, np.nan, snr), negative


def snr(responses: xr.DataArray) -> xr.DataArray:
    """Signal-to-noise ratio after the Anscombe transform, per neuron.

    The Anscombe transform stabilises the variance of Poisson counts; for neurons with negative
    responses (e.g. dF/F or z-scored data) it is undefined and the SNR is NaN (with a warning).

    Returns
    -------
    DataArray (neuron,)
    """
    responses, y, grid = _response_grid(responses, "SNR")
    if grid is None:
        return _out(np.full(y.shape[1], np.nan), responses, "snr")
    values, negative = _snr(grid)
    _warn_negative(negative)
    return _out(values, responses, "snr")


def _warn_negative(negative: np.ndarray) -> None:
    if negative.any():
        warnings.warn(
            f"{int(negative.sum())} neurons have negative responses: the Anscombe SNR assumes counts "
            "and is NaN for them", MetricWarning, stacklevel=3,
        )


def reliable(fev_values: xr.DataArray | xr.Dataset, threshold: float = FEV_THRESHOLD) -> xr.DataArray:
    """Boolean mask of neurons with FEV ≥ ``threshold`` (NaN FEV counts as unreliable).

    Parameters
    ----------
    fev_values : DataArray (neuron,) of FEV, or the Dataset returned by :func:`evaluate`
    """
    if isinstance(fev_values, xr.Dataset):
        fev_values = fev_values["fev"]
    return (fev_values >= threshold).rename("reliable")


def mean_feve(metrics: xr.Dataset, threshold: float = FEV_THRESHOLD) -> float:
    """Mean FEVE over neurons with FEV ≥ ``threshold`` (NaN when none qualifies)."""
    mask = reliable(metrics, threshold).values
    if not mask.any():
        warnings.warn(f"no neuron has FEV ≥ {threshold}: mean FEVE is NaN", MetricWarning, stacklevel=2)
        return float("nan")
    return float(np.nanmean(metrics["feve"].values[mask]))


def evaluate(responses: xr.DataArray, predictions: xr.DataArray | np.ndarray) -> xr.Dataset:
    """All per-neuron metrics of ``predictions`` against ``responses``.

    Parameters
    ----------
    responses : DataArray (trial, neuron)
        One tier's responses (normally ``select_tier(ds, "test")["responses"]``), with trial
        coordinates ``image_id`` (and ``tier``/``repeat``).
    predictions : DataArray or array (trial, neuron)
        On the same trials. Scoring the twin's noise-free ``rates`` gives the ceiling
        (:func:`ceiling`).

    Returns
    -------
    xarray.Dataset (neuron)
        ``single_trial_correlation``, ``correlation_to_average``, ``fev``, ``feve``,
        ``oracle_correlation``, ``snr``, ``n_masked`` (NaN responses per neuron), with the
        responses' neuron coordinates. Attributes: ``mean_feve`` (over FEV ≥ 0.15),
        ``n_reliable``, ``n_masked``, ``n_without_data`` (neurons with fewer than two measured
        responses: NaN in every metric), ``repeats_available`` (0/1), ``n_trials``.
    """
    responses, pred = _check_pair(responses, predictions)
    y = responses.values.astype(np.float64)
    _warn_masked(y)
    n = y.shape[1]
    grid = _repeated(responses, np.concatenate([y, pred], axis=1), "FEV, FEVE, oracle correlation and SNR")
    if grid is None:
        fev_v = feve_v = oracle_v = snr_v = np.full(n, np.nan)
    else:
        gy, gp = grid[..., :n], grid[..., n:]
        fev_v, feve_v, oracle_v = _fev(gy), _feve(gy, gp), _oracle(gy)
        snr_v, negative = _snr(gy)
        _warn_negative(negative)
    n_masked = np.isnan(y).sum(0)
    out = xr.Dataset({
        "single_trial_correlation": _out(_corr_or_nan(y, pred), responses, "single_trial_correlation"),
        "correlation_to_average": _out(_correlation_to_average(responses, y, pred, missing=np.nan), responses,
                                       "correlation_to_average"),
        "fev": _out(fev_v, responses, "fev"),
        "feve": _out(feve_v, responses, "feve"),
        "oracle_correlation": _out(oracle_v, responses, "oracle_correlation"),
        "snr": _out(snr_v, responses, "snr"),
        "n_masked": _out(n_masked, responses, "n_masked").astype(np.int64),
    })
    mask = reliable(out).values
    out.attrs = {
        "mean_feve": float(np.nanmean(feve_v[mask])) if mask.any() else float("nan"),
        "fev_threshold": FEV_THRESHOLD,
        "n_reliable": int(mask.sum()),
        "n_masked": int(n_masked.sum()),
        "n_without_data": int(_without_data(y).sum()),
        "repeats_available": int(grid is not None),
        "n_trials": int(y.shape[0]),
    }
    return out


def neuron_summary(values: xr.DataArray | np.ndarray) -> dict[str, float | int]:
    """Median, mean and 10th / 90th percentiles of a per-neuron metric over the neurons with a value.

    NaN (a neuron without data, or a metric undefined for it) is left out, and counted: chapters
    report ``n_excluded`` next to the summary.

    Parameters
    ----------
    values : DataArray or array (neuron,)

    Returns
    -------
    dict
        ``median``, ``mean``, ``p10``, ``p90`` (NaN when no neuron has a value), ``n`` (neurons
        summarised) and ``n_excluded`` (NaN neurons left out).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = v[~np.isnan(v)]
    if ok.size:
        stats = {"median": float(np.median(ok)), "mean": float(ok.mean()),
                 "p10": float(np.quantile(ok, 0.1)), "p90": float(np.quantile(ok, 0.9))}
    else:
        stats = dict.fromkeys(("median", "mean", "p10", "p90"), float("nan"))
    return {"n": int(ok.size), "n_excluded": int(v.size - ok.size), **stats}


def ceiling(ds: xr.Dataset, tier: str = "test") -> xr.Dataset:
    """The best achievable scores: :func:`evaluate` of the noise-free ``rates`` (twin only).

    Raises
    ------
    ValueError
        If the dataset has no ``rates`` (real recordings have no ground truth).
    """
    from v1nb.data.views import select_tier

    if "rates" not in ds:
        raise ValueError(
            f"dataset {ds.attrs.get('source', '')!r} has no ground-truth 'rates' (only the twin does): no ceiling"
        )
    sub = select_tier(ds, tier)
    return evaluate(sub["responses"], sub["rates"])

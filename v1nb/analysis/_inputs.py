"""Turning the inputs the analyses accept (a schema dataset, a repeat array, plain arrays) into arrays.

Kept private: each public analysis documents what it accepts; this module only does the checking
once, with error messages that name the parameter and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from v1nb.data.views import repeat_array


def two_repeats(data: Any, tier: str = "test", repeats: tuple[int, int] = (0, 1), name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Two (image, neuron) arrays of matched repeats.

    ``data`` is a schema dataset (its ``tier`` repeats are stacked with
    :func:`v1nb.data.views.repeat_array`), an (image, repeat, neuron) array or DataArray, or a
    pair ``(rep0, rep1)`` of (image, neuron) arrays.
    """
    if isinstance(data, xr.Dataset):
        data = repeat_array(data, tier)
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"{name}: expected a pair (rep0, rep1) of (image, neuron) arrays, got {len(data)} items")
        a, b = (np.asarray(d, dtype=np.float64) for d in data)
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"{name}: rep0 and rep1 must be (image, neuron) arrays of one shape, got {a.shape} and {b.shape}")
        return a, b
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a dataset, an (image, repeat, neuron) array or a pair of arrays, got shape {arr.shape}")
    if max(repeats) >= arr.shape[1]:
        raise ValueError(f"{name}: repeats={repeats} but only {arr.shape[1]} repeats are available")
    return arr[:, repeats[0]], arr[:, repeats[1]]


def repeats_3d(data: Any, tier: str = "test", name: str = "data") -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """An (image, repeat, neuron) float array, the image categories (or None) and the image ids."""
    category = None
    if isinstance(data, xr.Dataset):
        data = repeat_array(data, tier)
    if isinstance(data, xr.DataArray):
        if "category" in data.coords:
            category = np.asarray(data["category"].values)
        ids = np.asarray(data["image_id"].values) if "image_id" in data.coords else np.arange(data.shape[0])
        arr = np.asarray(data.values, dtype=np.float64)
    else:
        arr = np.asarray(data, dtype=np.float64)
        ids = np.arange(arr.shape[0]) if arr.ndim else np.array([])
    if arr.ndim != 3 or arr.shape[1] < 2:
        raise ValueError(f"{name}: expected an (image, repeat ≥ 2, neuron) array or a schema dataset, got shape {arr.shape}")
    return arr, category, ids


def check_matrix(X: Any, name: str = "X", min_rows: int = 2) -> np.ndarray:
    """A finite 2-D float array with at least ``min_rows`` rows."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (sample, feature) array, got shape {X.shape}")
    if X.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {X.shape[0]}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains {int((~np.isfinite(X)).sum())} non-finite values")
    return X

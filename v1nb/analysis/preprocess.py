"""Stringer et al. (2019) preprocessing: normalise by spontaneous activity and remove its subspace.

Ongoing (spontaneous) activity in mouse V1 is high-dimensional and partly shared with
behaviour; it adds trial-to-trial variability along a few dominant dimensions. Stringer's
reference code z-scores each neuron with the mean and standard deviation of its spontaneous
activity and projects the responses out of the top 32 principal components of the spontaneous
activity before cvPCA and decoding.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

__all__ = ["stringer_normalize"]


def stringer_normalize(ds: xr.Dataset, n_components: int = 32) -> xr.Dataset:
    """A copy of ``ds`` with responses z-scored by spontaneous activity, its top PCs projected out.

    Parameters
    ----------
    ds : xarray.Dataset
        Needs trials of tier ``spontaneous``.
    n_components : int
        Spontaneous principal components removed (0 only z-scores).

    Returns
    -------
    xarray.Dataset
        Same trials (spontaneous ones included, transformed the same way); the step is recorded
        in ``attrs["preprocessing"]``.
    """
    tier = ds["tier"].values.astype(str)
    spont = ds["responses"].values[tier == "spontaneous"].astype(np.float64)
    if len(spont) < 2:
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has {len(spont)} spontaneous trials; "
                         "stringer_normalize needs them (pass the raw responses to the analyses instead)")
    if not 0 <= n_components < min(spont.shape):
        raise ValueError(f"n_components={n_components} must be in [0, {min(spont.shape) - 1}]")
    mean, std = np.nanmean(spont, axis=0), np.nanstd(spont, axis=0) + 1e-6
    z = (ds["responses"].values.astype(np.float64) - mean) / std
    if n_components:
        s = np.nan_to_num((spont - mean) / std)
        _, _, vt = np.linalg.svd(s - s.mean(axis=0), full_matrices=False)
        u = vt[:n_components].T  # (neuron, k)
        z = z - np.nan_to_num(z) @ u @ u.T
    out = ds.copy()
    out["responses"] = (("trial", "neuron"), z.astype(np.float32))
    out.attrs["preprocessing"] = json.dumps({"stringer_normalize": {"n_components": n_components}})
    return out

"""Common views of a schema dataset: one tier, and repeats stacked as an array.

Metrics and population analyses that need repeats (noise ceilings, cvPCA, identification)
all start from :func:`repeat_array`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from v1nb.data.schema import TIERS


def select_tier(ds: xr.Dataset, tier: str) -> xr.Dataset:
    """The trials of one tier (raises if the tier is unknown or has no trials)."""
    if tier not in TIERS:
        raise ValueError(f"tier={tier!r} is not one of {TIERS}")
    mask = ds["tier"].values.astype(str) == tier
    if not mask.any():
        present = sorted(set(ds["tier"].values.astype(str)))
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has no {tier!r} trials (tiers present: {present})")
    return ds.isel(trial=np.flatnonzero(mask))


def repeat_array(ds: xr.Dataset, tier: str = "test", var: str = "responses", min_repeats: int = 2) -> xr.DataArray:
    """Stack the repeats of each image of ``tier`` into an (image, repeat, neuron) array.

    Images shown fewer than ``min_repeats`` times are dropped; images with more repeats than
    the smallest remaining count keep their first ones, so the result is rectangular.

    Returns
    -------
    xarray.DataArray (image, repeat, neuron)
        With coordinate ``image_id`` on ``image`` (and ``category`` where the dataset has it).

    Raises
    ------
    ValueError
        If no image of the tier has ``min_repeats`` repeats.
    """
    sub = select_tier(ds, tier)
    ids = sub["image_id"].values
    rep = sub["repeat"].values
    keep = ids >= 0
    uniq, counts = np.unique(ids[keep], return_counts=True)
    uniq = uniq[counts >= min_repeats]
    if len(uniq) == 0:
        raise ValueError(
            f"tier {tier!r} of {ds.attrs.get('source', 'the dataset')!r} has no image shown at least "
            f"{min_repeats} times: repeat-based metrics are unavailable"
        )
    n_rep = int(counts[counts >= min_repeats].min())
    values = sub[var].values
    index = {(int(i), int(r)): t for t, (i, r) in enumerate(zip(ids, rep)) if i >= 0}
    rows = np.array([[index[(int(i), r)] for r in range(n_rep)] for i in uniq])
    out = xr.DataArray(values[rows], dims=("image", "repeat", "neuron"),
                       coords={"image_id": ("image", uniq), "repeat": np.arange(n_rep)})
    for name, coord in sub.coords.items():
        if coord.dims == ("neuron",):
            out = out.assign_coords({name: coord})
    if "category" in ds.coords:
        out = out.assign_coords(category=("image", ds["category"].values[uniq]))
    return out

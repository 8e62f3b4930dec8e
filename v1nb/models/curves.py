"""Learning curves: how a model's test performance grows with the number of training images."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import xarray as xr

from v1nb.data.views import select_tier


def subsample_train(ds: xr.Dataset, n_images: int, seed: int = 0) -> xr.Dataset:
    """``ds`` with only ``n_images`` randomly chosen training images (other tiers unchanged).

    ``n_images`` equal to the number of training images returns ``ds`` unchanged (same cache key
    as a plain :func:`~v1nb.models.fit` of ``ds``).

    Raises
    ------
    ValueError
        If ``n_images`` exceeds the number of training images.
    """
    train = ds["tier"].values.astype(str) == "train"
    ids = np.unique(ds["image_id"].values[train & (ds["image_id"].values >= 0)])
    if not 0 < n_images <= len(ids):
        raise ValueError(f"n_images={n_images} must be in 1..{len(ids)} (training images of "
                         f"{ds.attrs.get('source', 'the dataset')!r})")
    if n_images == len(ids):  # the dataset itself, so the full-size fit shares the cache with other fits
        return ds
    keep_ids = np.random.default_rng(seed).choice(ids, n_images, replace=False)
    keep = ~train | np.isin(ds["image_id"].values, keep_ids)
    out = ds.isel(trial=np.flatnonzero(keep))
    out.attrs = {**ds.attrs, "source": f"{ds.attrs.get('source', '')}|train={n_images}"}
    return out


def learning_curve(ds: xr.Dataset, sizes: Sequence[int], core: str = "cnn", readout: str = "gaussian",
                   seed: int = 0, use_cache: bool = True, **config: Any) -> xr.Dataset:
    """Fit one model per training-set size and score each on the test tier.

    Returns
    -------
    xarray.Dataset (n_train,)
        ``mean_feve`` (FEV ≥ 0.15 neurons), ``correlation_to_average`` and
        ``single_trial_correlation`` (means over neurons), ``train_seconds``, ``epochs``.
    """
    from v1nb.metrics import evaluate
    from v1nb.models.fit import fit

    rows = []
    test = select_tier(ds, "test")["responses"]
    for n in sizes:
        model = fit(subsample_train(ds, int(n), seed), core, readout, seed, use_cache=use_cache, **config)
        m = evaluate(test, model.predict(ds, "test"))
        rows.append({"mean_feve": m.attrs["mean_feve"],
                     "correlation_to_average": float(m["correlation_to_average"].mean()),
                     "single_trial_correlation": float(m["single_trial_correlation"].mean()),
                     "train_seconds": float(model.history_.get("train_seconds", np.nan)),
                     "epochs": len(model.history_["epochs"]) - 1})
    return xr.Dataset({k: ("n_train", np.array([r[k] for r in rows])) for k in rows[0]},
                      coords={"n_train": np.asarray(sizes, dtype=int)},
                      attrs={"core": core, "readout": readout, "seed": seed})

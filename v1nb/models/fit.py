"""The entry point chapters use: :func:`fit`, a cached :class:`~v1nb.models.model.ResponseModel` fit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from v1nb.models import cache as _cache
from v1nb.models.model import ResponseModel
from v1nb.models.training import resolve_device


def fit(dataset: xr.Dataset | str, core: str = "cnn", readout: str = "gaussian", seed: int = 0, *,
        use_cache: bool = True, cache_dir: str | os.PathLike | None = None, **config: Any) -> ResponseModel:
    """Fit (or load from the cache) a core–readout model of ``dataset``.

    Parameters
    ----------
    dataset : xarray.Dataset or str
        A dataset in the v1nb schema, or a spec for :func:`v1nb.data.open_dataset`
        (e.g. ``"twin:quick"``).
    core : {"cnn", "rotation", "ln"}
    readout : {"gaussian", "factorized"}
    seed : int
    use_cache : bool
        Look up and store the fit in the model cache (:mod:`v1nb.models.cache`).
    cache_dir : path, optional
        Defaults to :func:`v1nb.models.cache.cache_dir`.
    **config
        Settings of :class:`~v1nb.models.config.ModelConfig`; unknown names raise and list the
        valid ones.

    Returns
    -------
    ResponseModel
        Fitted; ``model.history_`` has the training curve (``"cached": True`` when loaded).

    Examples
    --------
    >>> model = fit(twin("quick"), core="cnn", seed=0)        # doctest: +SKIP
    >>> pred = model.predict(ds, tier="test")                  # (trial, neuron)
    >>> metrics.evaluate(select_tier(ds, "test")["responses"], pred)
    """
    if isinstance(dataset, str):
        from v1nb.data import open_dataset

        dataset = open_dataset(dataset)
    model = ResponseModel(core, readout, seed, **config)  # validates the names and settings first
    if not use_cache:
        return model.fit(dataset)
    device = resolve_device(model.config_.device).type
    key = _cache.cache_key(dataset, core, readout, seed, model.config_.to_dict(), device)
    path = Path(cache_dir) if cache_dir is not None else _cache.cache_dir()
    path = path / f"{core}-{readout}-{key[:32]}.pt"
    cached = _cache.load_or_none(path, dataset, key)
    if cached is not None:
        cached.history_["cached"] = True
        return cached
    model.fit(dataset)
    _cache.save(model, path, key)
    model.history_["cached"] = False
    return model

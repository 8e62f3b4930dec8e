"""The entry point chapters use: :func:`fit`, a cached :class:`~v1nb.models.model.ResponseModel` fit."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import xarray as xr

from v1nb.models import cache as _cache
from v1nb.models.model import ResponseModel, check_start, source_key
from v1nb.models.objectives import Term, check_terms
from v1nb.models.training import resolve_device


def fit(dataset: xr.Dataset | str, core: str = "cnn", readout: str = "gaussian", seed: int = 0, *,
        interaction: str = "none", head: str = "none", parent: ResponseModel | None = None,
        terms: list[Term] | None = None, core_from: ResponseModel | None = None, use_cache: bool = True,
        cache_dir: str | os.PathLike | None = None, **settings: Any) -> ResponseModel:
    """Fit (or load from the cache) a core–readout model of ``dataset``.

    Parameters
    ----------
    dataset : xarray.Dataset or str
        A dataset in the v1nb schema, or a spec for :func:`v1nb.data.open_dataset`
        (e.g. ``"twin:quick"``).
    core, readout : str
        Registered names (:mod:`v1nb.models.registry`): "cnn" | "rotation" | "ln", "gaussian" | "factorized".
    seed : int
        The model's ``random_state``.
    interaction, head : str
        An interaction stage / a clustering head, or "none".
    parent : ResponseModel, optional
        Start from this fitted model's weights (a fine-tune; its cache key is part of this fit's key).
    terms : list of Term, optional
        The training objective (default: prediction loss + regularisation). Terms beyond the default
        enter the cache key through their ``spec()``.
    core_from : ResponseModel, optional
        Start the core from this fitted model's core, with a new readout: readouts of other neurons
        (another dataset on the same kind of images, standardised by its own mean and sd) on a
        given core; ``trainable="readout"`` keeps the core fixed. Its cache key is part of this
        fit's key.
    use_cache : bool
        Look up and store the fit in the model cache (:mod:`v1nb.models.cache`).
    cache_dir : path, optional
        Defaults to :func:`v1nb.models.cache.cache_dir`.
    **settings
        Settings of :class:`~v1nb.models.config.ModelConfig` and of the chosen components; unknown
        names raise and list the valid ones.

    Returns
    -------
    ResponseModel
        Fitted; ``model.history_`` has the training curve (``"cached": True`` when loaded) and
        ``model.cache_key_`` its key.

    Examples
    --------
    >>> model = fit(twin("quick"), core="cnn", seed=0)        # doctest: +SKIP
    >>> pred = model.predict(ds, tier="test")                  # (trial, neuron)
    >>> metrics.evaluate(select_tier(ds, "test")["responses"], pred)
    """
    if isinstance(dataset, str):
        from v1nb.data import open_dataset

        dataset = open_dataset(dataset)
    model = ResponseModel(core, readout, seed, interaction=interaction, head=head, **settings)
    config = model.validate()  # names and settings are checked before anything is fitted
    check_start(parent, core_from)
    if terms is not None:
        check_terms(list(terms))
    if not use_cache:
        return model.fit(dataset, parent=parent, terms=terms, core_from=core_from)
    key, path = _entry(dataset, model, config, parent, terms, cache_dir, core_from)
    with _cache.entry_lock(path):
        cached = _cache.load_or_none(path, dataset, key)
        if cached is not None:
            cached.history_["cached"] = True
            return cached
        model.fit(dataset, parent=parent, terms=terms, core_from=core_from)
        model.cache_key_ = key
        model.history_["cached"] = False
        try:
            _cache.save(model, path, key)
        except OSError as err:  # the fit is done: report the failed write, never lose the model to it
            warnings.warn(f"could not write the fitted model to the cache ({path}: {err}); it is returned "
                          "but will be refitted next time", _cache.CacheWarning, stacklevel=2)
    return model


def _entry(dataset: xr.Dataset, model: ResponseModel, config, parent: ResponseModel | None,
           terms: list[Term] | None, cache_dir: str | os.PathLike | None,
           core_from: ResponseModel | None = None) -> tuple[str, Path]:
    """The cache key and file of a fit (the folder is checked to be usable first)."""
    folder = _cache.check_cache_dir(Path(cache_dir) if cache_dir is not None else _cache.cache_dir())
    device = resolve_device(config.device).type
    parent_key = "" if parent is None else source_key(parent)
    if core_from is not None:  # marked: a core's source is not a fine-tune's parent of the same key
        parent_key = "core:" + source_key(core_from)
    components = {"core": model.core, "readout": model.readout, "interaction": model.interaction, "head": model.head}
    key = _cache.cache_key(dataset, components, model.random_state, config.non_default(), device,
                           terms=None if terms is None else [t.spec() for t in terms], parent=parent_key)
    name = "-".join(part for part in (model.core, model.readout,
                                      model.interaction if model.interaction != "none" else "",
                                      model.head if model.head != "none" else "") if part)
    return key, folder / f"{name}-{key[:32]}.pt"


def cached(dataset: xr.Dataset, core: str = "cnn", readout: str = "gaussian", seed: int = 0, *,
           interaction: str = "none", head: str = "none", parent: ResponseModel | None = None,
           terms: list[Term] | None = None, core_from: ResponseModel | None = None,
           cache_dir: str | os.PathLike | None = None, **settings: Any) -> ResponseModel | None:
    """The fit :func:`fit` would return from the cache, or None when it would have to train (never trains)."""
    model = ResponseModel(core, readout, seed, interaction=interaction, head=head, **settings)
    config = model.validate()
    key, path = _entry(dataset, model, config, parent, terms, cache_dir, core_from)
    found = _cache.load_or_none(path, dataset, key)
    if found is not None:
        found.history_["cached"] = True
    return found

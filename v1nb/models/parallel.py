"""Several fits at once: seeds and variants in parallel worker processes, and what to do with them.

:func:`fit_many` runs a list of fits (any mix of cores, readouts, stages, settings and seeds) in
worker processes, one torch thread each and as many as the machine has cores: on a small CPU box
two single-thread fits side by side use it far better than one fit with two threads. Each worker
fits through :func:`v1nb.models.fit`, so every fit is cached under its own key (and found again by
any later process, whatever its thread count); the parent process then loads the fitted models
from the cache. Where CUDA is present the fits run one after another in this process, on the GPU.

:func:`fit_seeds` is the common case (one model, several seeds); :func:`stack_embeddings` puts
their embeddings along a ``seed`` dimension and :func:`cross_seed_ari` measures how consistent
k-means clusters of the embeddings are across seeds (Turishcheva et al. 2024).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from v1nb.machine import available_cores
from v1nb.models.model import ResponseModel

_WORKER_DATA: xr.Dataset | None = None


def _init_worker(ds: xr.Dataset) -> None:
    global _WORKER_DATA
    import torch

    torch.set_num_threads(1)
    _WORKER_DATA = ds


def entry_path(model: ResponseModel, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The cache file of a model fitted through :func:`v1nb.models.fit` (None if it has none)."""
    from v1nb.models import cache as _cache

    key = getattr(model, "cache_key_", "")
    if not key:
        return None
    folder = Path(cache_dir) if cache_dir else _cache.cache_dir()
    matches = sorted(folder.glob(f"*-{key[:32]}.pt"))
    return matches[0] if matches else None


def _fit_in_worker(job: dict[str, Any], cache_dir: str) -> tuple[str, str, list[tuple[type, str]]]:
    from v1nb.models import cache as _cache
    from v1nb.models.fit import fit

    job = dict(job)
    parent = job.pop("parent_entry", None)
    # a fine-tune's parent (and a core's source) travels as its cache entry, not as a pickled network
    core_from = job.pop("core_from_entry", None)
    data = job.pop("dataset", None)
    data = _WORKER_DATA if data is None else data
    # warnings go back to the caller, where its filters decide what is shown (a worker's stderr
    # would print them whatever the caller asked, e.g. into a notebook's output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if parent is not None:
            job["parent"] = _cache.load(parent[0], data, key=parent[1])
        if core_from is not None:  # fitted on other neurons: loaded without this dataset's
            job["core_from"] = _cache.load(core_from[0], key=core_from[1])
        model = fit(data, cache_dir=cache_dir, **job)
    path = entry_path(model, cache_dir)
    relayed = [(w.category if _picklable(w.category) else UserWarning, str(w.message)) for w in caught]
    return str(path) if path else "", model.cache_key_, relayed


def _picklable(category: type) -> bool:
    import pickle

    try:
        pickle.dumps(category)
    except Exception:  # a warning class defined where the parent cannot import it
        return False
    return True


_NOT_SETTINGS = ("core", "readout", "seed", "interaction", "head", "parent", "core_from", "terms", "dataset")


def _check_job(job: Mapping[str, Any], cache_dir: str | os.PathLike | None) -> dict[str, Any]:
    job = dict(job)
    ResponseModel(job.get("core", "cnn"), job.get("readout", "gaussian"), job.get("seed", 0),
                  interaction=job.get("interaction", "none"), head=job.get("head", "none"),
                  **{k: v for k, v in job.items() if k not in _NOT_SETTINGS}).validate()
    if job.get("dataset") is not None and not isinstance(job["dataset"], xr.Dataset):
        raise TypeError(f"job 'dataset' must be an xarray.Dataset, got {type(job['dataset']).__name__}")
    if job.get("terms") is not None:
        from v1nb.models.objectives import check_terms

        check_terms(list(job["terms"]))
    return job


def _for_worker(job: dict[str, Any], cache_dir: str | os.PathLike | None) -> dict[str, Any]:
    job = dict(job)
    for name in ("parent", "core_from"):
        source = job.pop(name, None)
        if source is None:
            continue
        path = entry_path(source, cache_dir)
        if path is None:
            raise ValueError(f"{name} {source!r} of a parallel fit must come from the model cache "
                             "(fit it with v1nb.models.fit, use_cache=True, and the same cache_dir)")
        job[f"{name}_entry"] = (str(path), source.cache_key_)
    return job


def default_jobs() -> int:
    """Worker processes to use: the CPU cores this process may run on."""
    return available_cores()


def fit_many(ds: xr.Dataset, jobs: Sequence[Mapping[str, Any]], n_jobs: int | None = None,
             cache_dir: str | os.PathLike | None = None) -> list[ResponseModel]:
    """Fit several models of ``ds`` in parallel worker processes (each fit cached).

    Parameters
    ----------
    ds : xarray.Dataset
    jobs : list of dict
        Keyword arguments of :func:`v1nb.models.fit` per fit (``core``, ``readout``, ``seed``,
        ``interaction``, ``head``, settings, and for a fine-tune ``parent`` — a model from the
        cache — or for a readout on a given core ``core_from`` (the same), and ``terms``, which
        must be picklable), e.g.
        ``[{"core": "cnn"}, {"core": "rotation", "seed": 1}]``. Every job is validated before any
        fit starts. A job may carry its own ``dataset`` (e.g. a subsample for a learning curve,
        or another dataset altogether), sent to its worker with the job. Jobs start in the given
        order as workers free up: put the longest first, so that it does not start last and
        leave the other cores idle while it finishes.
    n_jobs : int, optional
        Worker processes (default: the CPU cores). ``1`` fits in this process.
    cache_dir : path, optional

    Returns
    -------
    list of ResponseModel
        In the order of ``jobs``.

    Warnings a fit raises in a worker are raised again here, in job order, so the caller's
    warning filters apply to them as they would to a fit in this process.
    """
    import torch

    from v1nb.models import cache as _cache
    from v1nb.models.fit import fit

    jobs = [_check_job(job, cache_dir) for job in jobs]
    if cache_dir is not None:
        _cache.check_cache_dir(cache_dir)
    else:
        _cache.check_cache_dir(_cache.cache_dir())
    n_jobs = default_jobs() if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs={n_jobs} must be at least 1")
    # fits already cached, a single fit, one worker or a GPU: no worker processes needed
    if n_jobs == 1 or len(jobs) == 1 or torch.cuda.is_available():
        out = []
        for job in map(dict, jobs):
            data = job.pop("dataset", None)
            out.append(fit(ds if data is None else data, cache_dir=cache_dir, **job))
        return out
    # fits already in the cache load here: worker processes only for what has to train
    from v1nb.models.fit import cached

    found: list[ResponseModel | None] = []
    for job in map(dict, jobs):
        data = job.pop("dataset", None)
        found.append(cached(ds if data is None else data, cache_dir=cache_dir, **job))
    missing = [i for i, model in enumerate(found) if model is None]
    if not missing:
        return found  # type: ignore[return-value]
    if len(missing) == 1:
        job = dict(jobs[missing[0]])
        data = job.pop("dataset", None)
        found[missing[0]] = fit(ds if data is None else data, cache_dir=cache_dir, **job)
        return found  # type: ignore[return-value]
    fitted = _fit_in_workers(ds, [jobs[i] for i in missing], n_jobs, cache_dir)
    for i, model in zip(missing, fitted):
        found[i] = model
    return found  # type: ignore[return-value]


#: Modules the fork server imports once, so that a worker forked from it starts without importing
#: them again. ``torch._dynamo`` is among them because the first ``torch.optim.Adam`` of a process
#: imports it (``torch._compile``).
_PRELOAD = ("torch", "torch._dynamo", "v1nb.models.fit", "v1nb.models.dec")


def _worker_context() -> multiprocessing.context.BaseContext:
    """How fit workers start: forked from a fork server that has imported torch and the fitting code.

    Not forked from this process, which may have run torch and its OpenMP thread pools (a pool does
    not survive a fork); not spawned as fresh interpreters either, which costs each worker about
    6.5 CPU-s of imports (4.2 s for torch, scikit-learn and xarray, 2.3 s for ``torch._dynamo``) —
    some 14 workers in a cold Part IV. The server starts with the first pool of this process and
    serves every later one; it never runs torch itself. Where there is no fork server (Windows):
    spawned interpreters.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_PRELOAD))  # no effect once the server runs: it keeps its modules
    return context


def _fit_in_workers(ds: xr.Dataset, jobs: list[dict[str, Any]], n_jobs: int,
                    cache_dir: str | os.PathLike | None) -> list[ResponseModel]:
    from v1nb.models import cache as _cache
    from v1nb.models.fit import fit

    # resolved here: a fork server keeps the environment (V1NB_CACHE) of the moment it started
    folder = str(cache_dir) if cache_dir is not None else str(_cache.cache_dir())
    context = _worker_context()
    with cf.ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)), mp_context=context,
                                initializer=_init_worker, initargs=(ds,)) as pool:
        futures = [pool.submit(_fit_in_worker, _for_worker(job, cache_dir), folder) for job in jobs]
        results = [f.result() for f in futures]
    for _, _, relayed in results:
        for category, message in relayed:
            warnings.warn(message, category, stacklevel=3)
    models = []
    for (path, key, _), job in zip(results, map(dict, jobs)):
        data = job.pop("dataset", None)
        data = ds if data is None else data
        model = _cache.load_or_none(Path(path), data, key) if path else None
        if model is None:  # the worker could not write its entry (it warned): fit here
            model = fit(data, cache_dir=cache_dir, **job)
        else:
            model.history_["cached"] = True
        models.append(model)
    return models


def fit_seeds(ds: xr.Dataset, core: str = "cnn", readout: str = "gaussian", seeds: Sequence[int] = (0, 1, 2),
              n_jobs: int | None = None, cache_dir: str | os.PathLike | None = None,
              **settings: Any) -> list[ResponseModel]:
    """The same model fitted with several seeds, in parallel (:func:`fit_many`).

    Returns
    -------
    list of ResponseModel, one per seed, in the order of ``seeds``.
    """
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds={seeds} must be distinct and not empty")
    jobs = [{"core": core, "readout": readout, "seed": s, **settings} for s in seeds]
    return fit_many(ds, jobs, n_jobs=n_jobs, cache_dir=cache_dir)


def fit_readouts(ds: xr.Dataset, cores_from: Sequence[ResponseModel], readout: str = "gaussian",
                 n_jobs: int | None = None, cache_dir: str | os.PathLike | None = None,
                 **settings: Any) -> list[ResponseModel]:
    """Readouts of the neurons of ``ds`` fitted on the fixed cores of fitted models, in parallel.

    One fit per model of ``cores_from``, with that model's core (frozen: ``trainable="readout"``)
    and seed. Used where two sets of neurons are to be compared in one feature space, or where a
    core is reused for new neurons: fitting a readout costs a fraction of a network (no gradient
    through the core).

    Parameters
    ----------
    ds : xarray.Dataset
        The neurons whose readouts are fitted; its images must suit the cores (same kind and size).
    cores_from : list of ResponseModel
        Fitted models from the model cache (:func:`v1nb.models.fit`), e.g. one per seed.
    readout : str
    n_jobs, cache_dir
        As in :func:`fit_many`.
    **settings
        Settings of the fits (e.g. the training budget); the core's must be those the sources were
        fitted with (a mismatch raises); ``trainable`` is set to ``"readout"``.

    Returns
    -------
    list of ResponseModel
        In the order of ``cores_from``; each one's ``core`` and ``random_state`` are its source's.
    """
    if not cores_from:
        raise ValueError("fit_readouts needs at least one fitted model in cores_from")
    if settings.get("trainable", "readout") != "readout":
        raise ValueError(f"fit_readouts trains the readout only: trainable={settings['trainable']!r} is not allowed")
    jobs = [{"core": m.core, "readout": readout, "seed": m.random_state, "core_from": m,
             **{**settings, "trainable": "readout"}} for m in cores_from]
    return fit_many(ds, jobs, n_jobs=n_jobs, cache_dir=cache_dir)


def stack_embeddings(models: Sequence[ResponseModel]) -> xr.DataArray:
    """The models' embeddings stacked along a new ``seed`` dimension (first), coordinate = ``random_state``.

    Raises
    ------
    ValueError
        If the embeddings differ in shape (different cores or readout sizes).
    """
    if not models:
        raise ValueError("stack_embeddings needs at least one model")
    embeddings = [m.embeddings() for m in models]
    shapes = {e.shape for e in embeddings}
    if len(shapes) != 1:
        raise ValueError(f"embeddings of different shapes {sorted(shapes)} cannot be stacked")
    seeds = [m.random_state for m in models]
    return xr.concat(embeddings, dim=xr.DataArray(seeds, dims="seed", name="seed")).rename("embeddings")


def cross_seed_ari(models_or_embeddings: Sequence[ResponseModel] | xr.DataArray, n_clusters: int,
                   random_state: int = 0, normalise: bool = True) -> xr.DataArray:
    """Consistency of clusters across seeds: ARI between the k-means labels of every pair of fits.

    Parameters
    ----------
    models_or_embeddings : list of ResponseModel, or DataArray with a ``seed`` dimension
    n_clusters : int
    random_state : int
        Seed of k-means (20 restarts).
    normalise : bool
        Scale each neuron's (flattened) embedding to unit length first.

    Returns
    -------
    DataArray (pair,)
        ARI per pair of seeds (coordinates ``seed_a``, ``seed_b``); ``attrs["mean"]`` is the mean
        pairwise ARI.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    stacked = (models_or_embeddings if isinstance(models_or_embeddings, xr.DataArray)
               else stack_embeddings(models_or_embeddings))
    if "seed" not in stacked.dims or stacked.sizes["seed"] < 2:
        raise ValueError("cross_seed_ari needs embeddings of at least two seeds")
    labels = []
    for s in range(stacked.sizes["seed"]):
        x = stacked.isel(seed=s).values.reshape(stacked.sizes["neuron"], -1).astype(np.float64)
        if normalise:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        labels.append(KMeans(n_clusters, n_init=20, random_state=random_state).fit_predict(x))
    seeds = stacked["seed"].values
    pairs = list(combinations(range(len(labels)), 2))
    ari = np.array([adjusted_rand_score(labels[a], labels[b]) for a, b in pairs])
    return xr.DataArray(ari, dims="pair", coords={"seed_a": ("pair", seeds[[a for a, _ in pairs]]),
                                                 "seed_b": ("pair", seeds[[b for _, b in pairs]])},
                        name="cross_seed_ari", attrs={"mean": float(ari.mean()), "n_clusters": int(n_clusters)})

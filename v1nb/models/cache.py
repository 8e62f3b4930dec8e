"""Trained models on disk, keyed by what determines them, so chapters share fits.

The key (:func:`cache_key`) is a SHA-256 of

- a fingerprint of **what training sees** (:func:`data_fingerprint`): the bytes of ``responses``
  and ``images``, the trial coordinates that place trials (``image_id``, ``tier``, ``order``) and
  the neurons' cortical positions — not ground-truth coordinates such as ``true_snr``, whose last
  bits may depend on the BLAS thread count of the process that simulated the twin;
- the component names (core, readout, interaction stage, head);
- the settings that **differ from their defaults** (so adding a setting with a default never
  invalidates existing fits), without the run-time switches (progress bar, CPU threads);
- the seed, the resolved device type, the objective terms' specs and, for a fine-tune, the
  parent's key;
- the versions of v1nb and torch and a fingerprint of the code a fit runs
  (:func:`code_fingerprint`: all of ``v1nb/models/`` with its subfolders, the metric that drives
  early stopping, the clustering heads of :mod:`v1nb.cluster.head` and the clusterings a DEC
  fine-tune may start from, :func:`fingerprinted_code`; comments and docstrings do not count —
  :mod:`v1nb.fingerprint`, shared with the chapter runner).

Entries are written atomically (:func:`v1nb.io.atomic_path`), under a per-key lock
(:func:`v1nb.io.entry_lock`) so that a second process asking for the same fit waits and then reuses it
instead of fitting it again. Reading checks the file's own key and structure; a file that cannot be
read or does not match is reported with a :class:`CacheWarning` and the model is retrained (and
the entry overwritten), never silently used. A worker killed mid-write leaves at most a hidden
temporary file, never an entry; such leftovers are removed the next time the key is fitted.

The folder (:func:`v1nb.data.locations.cache_dir`) is ``$V1NB_CACHE`` when set, else ``.cache/models`` under the repository root (or
``~/.cache/v1nb/models`` when the package is not installed from a checkout). It is checked before
any fitting (:func:`check_cache_dir`), and a finished fit is never lost to a failed cache write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from v1nb.fingerprint import package_fingerprint, source_fingerprint  # noqa: F401 (re-exported)
from v1nb.data.locations import cache_dir  # noqa: F401 (re-exported: v1nb.models.cache_dir)
from v1nb.io import atomic_path, entry_lock  # noqa: F401 (entry_lock re-exported)
from v1nb.models.config import config_from_dict
from v1nb.models.network import build_network
from v1nb.provenance import versions

#: Bump when the on-disk layout changes; older entries are then retrained.
FORMAT_VERSION = 2
#: Settings that change how a fit runs but not what it learns: left out of the key.
RUNTIME_SETTINGS = ("progress", "num_threads")


class CacheWarning(UserWarning):
    """A cache entry was unusable (corrupt, mismatched) and the model is retrained."""


def check_cache_dir(folder: str | os.PathLike) -> Path:
    """Make sure ``folder`` can hold cache entries (created if missing) before anything is fitted.

    Raises
    ------
    ValueError
        If the path exists and is not a folder (e.g. ``V1NB_CACHE`` pointing at a file).
    PermissionError
        If the folder cannot be created or written.
    """
    folder = Path(folder)
    origin = "V1NB_CACHE" if os.environ.get("V1NB_CACHE") and Path(os.environ["V1NB_CACHE"]).expanduser() == folder \
        else "the model cache folder"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{origin} {folder} is a file, not a folder: point it at a folder (or unset V1NB_CACHE)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(f"{origin} {folder} is not writable ({err.strerror or err}); set V1NB_CACHE to a "
                              "writable folder or pass use_cache=False") from err
    return folder


def data_fingerprint(ds: xr.Dataset) -> str:
    """A hash of what a model's training sees of ``ds`` (see the module docstring)."""
    h = hashlib.blake2b(digest_size=20)
    for name in ("responses", "images"):
        if name in ds:
            values = np.ascontiguousarray(ds[name].transpose(*ds[name].dims).values)
            h.update(f"{name}{ds[name].dims}{values.shape}{values.dtype}".encode())
            h.update(values.tobytes())
    for name in ("image_id", "tier", "order", "cortical_x", "cortical_y", "cortical_z"):
        if name in ds.coords:
            h.update(name.encode())
            values = ds[name].values
            if values.dtype.kind in "OUS":
                h.update("|".join(map(str, values)).encode())
            else:
                h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def fingerprinted_code() -> tuple[list[Path], list]:
    """The files and single functions whose source keys every fit (:func:`code_fingerprint`).

    ``v1nb/models/**``; the clustering heads (:mod:`v1nb.cluster.head`); the clusterings a DEC
    fine-tune starts from (``init="gmm"`` / ``"spectral"``: :mod:`v1nb.cluster.wrappers`, its
    input checks, and :func:`v1nb.cluster.embedding_clustering.cluster_labels`); the optimiser
    (:mod:`v1nb.optim`); the metric that drives early stopping.
    """
    from v1nb import metrics
    from v1nb.cluster import embedding_clustering

    models = Path(__file__).parent
    cluster = models.parent / "cluster"
    files = [models, cluster / "head.py", cluster / "wrappers.py", cluster / "_validation.py",
             models.parent / "optim.py"]
    return files, [metrics._corr, embedding_clustering.cluster_labels]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Fingerprint of the code a fit runs (:func:`fingerprinted_code`)."""
    files, functions = fingerprinted_code()
    return package_fingerprint(files, functions=functions, root=Path(__file__).parent.parent)


def cache_key(ds: xr.Dataset, components: dict[str, str], seed: int, settings: dict[str, Any], device: str,
              terms: list[dict[str, Any]] | None = None, parent: str = "") -> str:
    """The SHA-256 key of one fit (see the module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
    components : dict
        ``{"core": ..., "readout": ..., "interaction": ..., "head": ...}``.
    seed : int
    settings : dict
        The settings that differ from their defaults (:meth:`ModelConfig.non_default`).
    device : str
        Resolved device type ("cpu", "cuda").
    terms : list of dict, optional
        Specs of the objective terms (None: the default objective).
    parent : str
        Key (or weight fingerprint) of the model a fine-tune starts from.
    """
    v = versions()
    record = {"data": data_fingerprint(ds), "components": {k: components.get(k, "none") for k in sorted(components)},
              "seed": int(seed), "settings": {k: v for k, v in settings.items() if k not in RUNTIME_SETTINGS},
              "device": device, "terms": terms, "parent": parent, "v1nb": v.get("v1nb"), "torch": v.get("torch"),
              "format": FORMAT_VERSION, "code": code_fingerprint()}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def save(model: Any, path: str | os.PathLike, key: str = "") -> Path:
    """Write a fitted :class:`~v1nb.models.model.ResponseModel` to ``path`` atomically."""
    model._check_fitted()
    state = {
        "format": FORMAT_VERSION, "key": key, "core": model.core, "readout": model.readout,
        "interaction": model.interaction, "head": model.head,
        "random_state": model.random_state, "config": model.config_.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.network_.state_dict().items()},
        "n_neurons": model.n_neurons_, "image_shape": list(model.image_shape_),
        "image_mean": model.image_mean_, "image_std": model.image_std_,
        "response_scale": model.response_scale_, "history": json.dumps(model.history_),
        "has_positions": model.config_.position_predictor,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load(path: str | os.PathLike, ds: xr.Dataset | None = None, key: str | None = None) -> Any:
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : path
    ds : xarray.Dataset, optional
        The dataset the model belongs to: its neuron coordinates are attached (and its neuron
        count must match).
    key : str, optional
        When given, the entry's stored key must equal it.

    Raises
    ------
    ValueError
        If the file is unreadable, from another format version, has the wrong key, or its
        neuron count differs from ``ds``.
    """
    from v1nb.models.model import ResponseModel, _neuron_coords

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"{path}: not a readable model file ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a v1nb model file of format {FORMAT_VERSION}")
    if key is not None and state.get("key") != key:
        raise ValueError(f"{path}: stored key {state.get('key')!r} does not match the requested fit")
    n = int(state["n_neurons"])
    if ds is not None and ds.sizes["neuron"] != n:
        raise ValueError(f"{path}: the model was fitted on {n} neurons but "
                         f"{ds.attrs.get('source', 'the dataset')!r} has {ds.sizes['neuron']}")
    components = {k: state.get(k, "none") for k in ("core", "readout", "interaction", "head")}
    config = config_from_dict(state["config"], **components)
    model = ResponseModel(random_state=int(state["random_state"]), **components, **config.non_default())
    model.validate()
    has_positions = state["has_positions"] or "positions" in state["state_dict"]
    positions = torch.zeros(n, 3) if has_positions else None  # replaced by the saved buffers
    network = build_network(state["core"], state["readout"], config, n, tuple(state["image_shape"]),
                            positions=positions, interaction=components["interaction"], head=components["head"])
    network.load_state_dict(state["state_dict"])  # raises on any missing/extra/misshaped tensor
    coords = _neuron_coords(ds) if ds is not None else {}
    model._set_fitted(network, n, tuple(state["image_shape"]), state["image_mean"], state["image_std"],
                      state["response_scale"], coords)
    model.history_ = json.loads(state["history"])
    model.cache_key_ = state.get("key", "")
    return model


def load_or_none(path: Path, ds: xr.Dataset, key: str) -> Any:
    """:func:`load` the entry if it exists; on any problem warn (:class:`CacheWarning`) and return None."""
    if not path.exists():
        return None
    try:
        return load(path, ds, key)
    except Exception as err:  # noqa: BLE001 - a bad entry must never stop a fit, only be reported
        warnings.warn(f"ignoring unusable cached model {path} ({err}); retraining", CacheWarning, stacklevel=3)
        return None

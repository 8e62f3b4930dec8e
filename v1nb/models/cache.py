"""Trained models on disk, keyed by what determines them, so chapters share fits.

The key is a SHA-256 of: a fingerprint of the data (the bytes of responses, images, trial
coordinates and neuron coordinates — stronger than the provenance record, which carries a
creation time), the core and readout names, the full config (except the progress-bar switch),
the seed, the resolved device type, the versions of v1nb and torch, and a hash of the source of
``v1nb.models`` (so that editing the model code — not only releasing a new version — retrains;
comments and docstrings do not count).
The progress bar and the CPU thread count are left out: a fit made with one thread serves a
request with two. Anything else that changes a fit changes one of these.

Entries are written atomically (:func:`v1nb.io.atomic_path`). Reading checks the file's own key and
structure; a file that cannot be read or does not match is reported with a :class:`CacheWarning`
and the model is retrained (and the entry overwritten), never silently used.

The folder is ``$V1NB_CACHE`` when set, else ``.cache/models`` under the repository root (or
``~/.cache/v1nb/models`` when the package is not installed from a checkout).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from v1nb.io import atomic_path
from v1nb.models.config import config_from_dict
from v1nb.models.network import build_network
from v1nb.provenance import versions

#: Bump when the on-disk layout changes; older entries are then retrained.
FORMAT_VERSION = 1
#: Settings that change how a fit runs but not what it learns: left out of the key.
RUNTIME_SETTINGS = ("progress", "num_threads")


class CacheWarning(UserWarning):
    """A cache entry was unusable (corrupt, mismatched) and the model is retrained."""


def cache_dir() -> Path:
    """The model cache folder (``$V1NB_CACHE`` or ``<repo>/.cache/models``)."""
    env = os.environ.get("V1NB_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "models"
    return Path.home() / ".cache" / "v1nb" / "models"


def data_fingerprint(ds: xr.Dataset) -> str:
    """A hash of the data a model is trained on (responses, images, trial and neuron coordinates)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(str(ds.attrs.get("source", "")).encode())
    for name in ("responses", "images"):
        if name in ds:
            values = np.ascontiguousarray(ds[name].values)
            h.update(f"{name}{values.shape}{values.dtype}".encode())
            h.update(values.tobytes())
    for name, coord in ds.coords.items():
        if coord.dims in (("trial",), ("neuron",)):
            h.update(str(name).encode())
            values = coord.values
            if values.dtype.kind in "OUS":
                h.update("|".join(map(str, values)).encode())
            else:
                h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def source_fingerprint(source: str) -> str:
    """The syntax tree of Python ``source`` without docstrings, as text.

    Comments, docstrings and layout do not change what a fit computes, so editing them must not
    invalidate the cache (a default book refits for ~13 minutes).
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of the source files of ``v1nb.models`` (names and :func:`source_fingerprint`, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(source_fingerprint(path.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()


def cache_key(ds: xr.Dataset, core: str, readout: str, seed: int, config: dict[str, Any], device: str) -> str:
    """The SHA-256 key of one fit (see the module docstring)."""
    settings = {k: v for k, v in config.items() if k not in RUNTIME_SETTINGS}
    v = versions()
    record = {"data": data_fingerprint(ds), "core": core, "readout": readout, "seed": seed,
              "config": settings, "device": device, "v1nb": v.get("v1nb"), "torch": v.get("torch"),
              "format": FORMAT_VERSION, "code": code_fingerprint()}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def save(model: Any, path: str | os.PathLike, key: str = "") -> Path:
    """Write a fitted :class:`~v1nb.models.model.ResponseModel` to ``path`` atomically."""
    model._check_fitted()
    state = {
        "format": FORMAT_VERSION, "key": key, "core": model.core, "readout": model.readout,
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
    config = config_from_dict(state["config"])
    model = ResponseModel(state["core"], state["readout"], int(state["random_state"]),
                          **{k: v for k, v in config.to_dict().items() if v != getattr(type(config)(), k)})
    positions = torch.zeros(n, 3) if state["has_positions"] else None  # replaced by the saved buffer
    network = build_network(state["core"], state["readout"], config, n, tuple(state["image_shape"]),
                            positions=positions)
    network.load_state_dict(state["state_dict"])  # raises on any missing/extra/misshaped tensor
    coords = _neuron_coords(ds) if ds is not None else {}
    model._set_fitted(network, n, tuple(state["image_shape"]), state["image_mean"], state["image_std"],
                      state["response_scale"], coords)
    model.history_ = json.loads(state["history"])
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

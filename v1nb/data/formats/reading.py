"""Careful reading of data files: every failure names the file and what was expected.

The format modules read through these helpers so that a missing file, a wrong shape or a
corrupt file always produces the same kind of message, e.g.::

    raw_validation_set.npy: expected shape (n_reps, 50, n_neurons) with n_neurons=103 matching
    training_set.npy, got (10, 49, 103)

Nothing here ever writes: readers must work on read-only data folders.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np


class FormatError(ValueError):
    """A data file exists but is not what its format promises (shape, content, corruption)."""


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise FileNotFoundError describing ``what`` it should hold."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing file; expected {what}")
    return path


def load_npy(path: Path, what: str, ndim: int | None = None) -> np.ndarray:
    """Load a ``.npy`` file (never pickles) with errors that name the file.

    Parameters
    ----------
    path : Path
    what : str
        What the file should hold, e.g. ``"(n_train, n_neurons) responses"``; used in errors.
    ndim : int, optional
        Required number of dimensions.
    """
    require_file(path, what)
    with open(path, "rb") as handle:
        return _parse_npy(handle, str(path), what, ndim)


def _parse_npy(handle: Any, label: str, what: str, ndim: int | None) -> np.ndarray:
    try:
        arr = np.load(handle, allow_pickle=False)
    except Exception as err:  # corrupt headers surface as ValueError, EOFError, SyntaxError, ...
        raise FormatError(f"{label}: not a readable .npy file (expected {what}): {err}") from err
    if not isinstance(arr, np.ndarray):
        raise FormatError(f"{label}: expected a single .npy array ({what}), found an archive")
    if ndim is not None and arr.ndim != ndim:
        raise FormatError(f"{label}: expected {what} ({ndim}-D), got shape {arr.shape}")
    return arr


def check_shape(arr: np.ndarray, expected: Sequence[int | None], label: str, what: str, why: str = "") -> np.ndarray:
    """Raise FormatError unless ``arr.shape`` matches ``expected`` (``None`` = any length).

    ``what`` names the axes (e.g. ``"(n_reps, 50, n_neurons)"``) and ``why`` says where the
    expected sizes come from (e.g. ``"n_neurons=103 matching training_set.npy"``).
    """
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        because = f" with {why}" if why else ""
        raise FormatError(f"{label}: expected shape {what}{because}, got {arr.shape}")
    return arr


def read_mat(path: Path, what: str) -> dict[str, Any]:
    """Read a MATLAB file with :func:`scipy.io.loadmat` (v5/v7) or h5py (v7.3).

    v7.3 files are HDF5 and store arrays transposed; they are transposed back so that both
    versions give MATLAB's axis order. Struct fields of v7.3 files are returned as dicts.
    """
    import scipy.io

    require_file(path, what)
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        return _read_mat_hdf5(path, what)
    except Exception as err:  # a corrupt file makes scipy's parser fail in many ways (even IndexError)
        raise FormatError(f"{path}: not a readable MATLAB file (expected {what}): {err}") from err


def _read_mat_hdf5(path: Path, what: str) -> dict[str, Any]:
    import h5py

    def convert(node: Any) -> Any:
        if isinstance(node, h5py.Group):
            return {k: convert(v) for k, v in node.items() if not k.startswith("#")}
        return np.asarray(node[()]).T

    try:
        with h5py.File(path, "r") as f:
            return {k: convert(v) for k, v in f.items() if not k.startswith("#")}
    except OSError as err:
        raise FormatError(f"{path}: not a readable MATLAB v7.3 file (expected {what}): {err}") from err


def mat_field(container: Any, key: str) -> Any:
    """Field ``key`` of a MATLAB struct as loaded by scipy (1×1 record array, mat_struct) or h5py (dict)."""
    if isinstance(container, dict):
        return container[key]
    if isinstance(container, np.ndarray) and container.dtype.names is not None:
        return container[key].reshape(-1)[0]
    return getattr(container, key)


def has_mat_field(container: Any, key: str) -> bool:
    if isinstance(container, dict):
        return key in container
    if isinstance(container, np.ndarray):
        return container.dtype.names is not None and key in container.dtype.names
    return hasattr(container, key)


class FileTree:
    """Read-only view of a folder or of a zip archive holding the same folder.

    Paths are POSIX-style relative paths (``"meta/trials/tiers.npy"``). A zip whose entries all
    sit under one top-level folder (``static.../data/...``) is read as if that folder were the root.
    """

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise FormatError(f"{path}: not a readable zip archive: {err}") from err
            names = [n for n in self._zip.namelist() if not n.startswith("__MACOSX/")]
            self._names = set(names)
            self._prefix = _common_root(names)
            # directories are implicit in many zips: add every parent folder
            for name in list(self._names):
                for parent in PurePosixPath(name).parents:
                    if str(parent) != ".":
                        self._names.add(str(parent) + "/")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "FileTree":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def label(self, rel: str) -> str:
        """How to name ``rel`` in messages: ``folder/rel`` or ``archive.zip:prefix/rel``."""
        if self._zip is None:
            return str(self.path / rel)
        return f"{self.path}:{self._prefix}{rel}"

    def exists(self, rel: str) -> bool:
        if self._zip is None:
            return (self.path / rel).exists()
        return (self._prefix + rel) in self._names or (self._prefix + rel.rstrip("/") + "/") in self._names

    def is_dir(self, rel: str) -> bool:
        if self._zip is None:
            return (self.path / rel).is_dir()
        return (self._prefix + rel.rstrip("/") + "/") in self._names

    def npy(self, rel: str, what: str, ndim: int | None = None) -> np.ndarray:
        """Load one ``.npy`` file of the tree (errors name the file and ``what`` it should hold)."""
        if self._zip is None:
            return load_npy(self.path / rel, what, ndim)
        name = self._prefix + rel
        if name not in self._names:
            raise FileNotFoundError(f"{self.label(rel)}: missing file; expected {what}")
        try:
            data = self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as err:  # bad CRC, truncated archive
            raise FormatError(f"{self.label(rel)}: unreadable zip entry (expected {what}): {err}") from err
        return _parse_npy(io.BytesIO(data), self.label(rel), what, ndim)


def _common_root(names: list[str]) -> str:
    """The single top-level folder all entries share (with trailing '/'), else ''."""
    tops = {n.split("/", 1)[0] for n in names if n}
    if len(tops) == 1 and all("/" in n for n in names if n):
        return tops.pop() + "/"
    return ""


def describe_files(paths: Sequence[os.PathLike | str]) -> list[dict[str, Any]]:
    """Name and size of each source file, for the provenance record."""
    out = []
    for p in paths:
        p = Path(p)
        out.append({"path": str(p.resolve()), "bytes": p.stat().st_size if p.is_file() else None})
    return out

"""Atomic file writing: nothing is ever half-written.

Every file the package produces (NetCDF datasets, ``results.json``, cached models, executed
notebooks) goes through :func:`atomic_path`: the content is written to a temporary file in the
target's folder and renamed over the target only once complete, so an interrupted run leaves
either the old file or none, never a truncated one that a later build would trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Parameters
    ----------
    target
        The final path. Its parent folder is created if missing.
    suffix
        Suffix of the temporary file (defaults to the target's, so that writers that choose a
        format by extension, e.g. ``xarray.Dataset.to_netcdf``, behave the same).

    Examples
    --------
    >>> with atomic_path("out/results.json") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes it owner-only; give it the usual permissions
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def entry_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the entry ``path`` of a cache folder (other processes asking wait).

    For entries written with :func:`atomic_path`: a second process that wants the same entry
    waits, then finds it written, instead of computing it again. The lock lives in
    ``<folder>/.locks/``; the operating system releases it when the holder exits, so a killed
    worker never blocks the entry. Hidden temporary files a killed writer left beside the entry
    are removed once the lock is held.
    """
    path = Path(path)
    locks = path.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{path.name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for stale in path.parent.glob(f".{path.name}.*"):
                stale.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(target)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths: the things results usually contain
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON: {obj!r}")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; move it onto ``target`` on success.

    Used for run folders: a chapter executes into the temporary folder, and only a run that
    completed appears under ``target`` (an existing ``target`` is replaced). On an exception,
    including ``KeyboardInterrupt``, the temporary folder is deleted and ``target`` is untouched.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it owner-only
    try:
        yield tmp
        old = None
        if target.exists():
            # os.replace cannot overwrite a non-empty folder: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

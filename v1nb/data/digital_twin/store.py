"""Simulated twins on disk: each configuration is simulated once and read back by every chapter.

Simulating the default twin (1,000 neurons, 6,000 trials) costs seconds of CPU in every chapter
that opens it, and a book opens it in nearly every chapter, often several at once in a parallel
build. :func:`cached_twin` stores the dataset as NetCDF under ``<cache>/twins/`` (the model
cache's folder, :func:`v1nb.data.locations.cache_dir`) and reads it back instead.

The file name carries a key (:func:`twin_key`): SHA-256 of the profile, the overrides as given,
the full configuration they resolve to, the seed, a fingerprint of the simulation code (all of
``v1nb/data``, :func:`simulation_fingerprint`) and the versions of the libraries the simulation
calls. Any change to one of them simulates afresh; a read-back dataset is identical to a fresh
simulation (values, dtypes, coordinates, provenance) except for the provenance's creation time,
which is when the stored twin was simulated.

Entries are written atomically under a per-entry lock (:func:`v1nb.io.entry_lock`): chapters
starting together simulate a configuration once; the others wait and read it. A stored file that
cannot be read is reported with a :class:`TwinCacheWarning` and simulated again (and replaced); a
cache folder that cannot be written is reported the same way and the fresh twin is returned
unstored — the cache never stops a chapter.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import xarray as xr

from v1nb.data.locations import cache_dir
from v1nb.fingerprint import package_fingerprint
from v1nb.io import entry_lock

#: Bump when the stored layout changes; older files are then simulated again.
FORMAT_VERSION = 1
#: Libraries whose versions can change what the simulation draws or reads (photographs, RNG streams).
LIBRARIES = ("numpy", "scipy", "scikit-image", "xarray")


class TwinCacheWarning(UserWarning):
    """A stored twin could not be read, or the twin folder could not be written."""


def twin_cache_dir() -> Path:
    """The folder of stored twins: ``<cache>/twins``."""
    return cache_dir() / "twins"


@functools.cache  # the sources do not change within a process; parsing them costs ~0.3 s per open
def simulation_fingerprint() -> str:
    """Fingerprint of the code a twin's bytes depend on: every Python file of ``v1nb/data``."""
    data = Path(__file__).resolve().parents[1]
    return package_fingerprint([data], root=data.parent)


@functools.cache
def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def twin_key(profile: str = "default", seed: int = 0, **overrides: Any) -> str:
    """The key of a twin configuration (hex SHA-256).

    Raises
    ------
    ValueError, TypeError
        Unknown profile or option, or a value of the wrong type (from
        :func:`~v1nb.data.digital_twin.config.make_config`).
    """
    from v1nb.data.digital_twin.config import make_config
    from v1nb.data.digital_twin.simulate import check_seed

    config = make_config(profile, **overrides)
    record = {"profile": profile, "seed": check_seed(seed), "overrides": overrides, "config": config.to_dict(),
              "format": FORMAT_VERSION, "code": simulation_fingerprint(), "libraries": _library_versions()}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=repr).encode()).hexdigest()


def twin_path(profile: str = "default", seed: int = 0, **overrides: Any) -> Path:
    """Where the twin of this configuration is stored (whether or not it is there yet)."""
    return twin_cache_dir() / f"{profile}-{twin_key(profile, seed, **overrides)[:32]}.nc"


def cached_twin(profile: str = "default", seed: int = 0, **overrides: Any) -> xr.Dataset:
    """:func:`v1nb.data.twin` of this configuration, simulated once and then read from disk.

    Parameters
    ----------
    profile, seed, **overrides
        As for :func:`v1nb.data.twin` (checked before anything is read or written).

    Returns
    -------
    xarray.Dataset
        The twin, validated against the schema.
    """
    from v1nb.data.digital_twin import twin
    from v1nb.data.digital_twin.simulate import check_seed
    from v1nb.data.schema import SchemaError, read_netcdf, to_netcdf

    seed = check_seed(seed)
    path = twin_path(profile, seed, **overrides)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(entry_lock(path))
        except OSError as err:
            warnings.warn(f"twin cache {path.parent} cannot be written ({err}); simulating without storing it",
                          TwinCacheWarning, stacklevel=2)
            return twin(profile, seed=seed, **overrides)
        if path.is_file():
            try:
                return read_netcdf(path)
            except (OSError, SchemaError) as err:
                warnings.warn(f"stored twin {path} cannot be read ({err}); simulating it again",
                              TwinCacheWarning, stacklevel=2)
        ds = twin(profile, seed=seed, **overrides)
        try:
            to_netcdf(ds, path)
        except OSError as err:
            warnings.warn(f"twin cache {path.parent}: could not store {path.name} ({err})",
                          TwinCacheWarning, stacklevel=2)
        return ds

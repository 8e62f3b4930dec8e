"""``open_dataset(spec, **options)``: the one way chapters get data.

``spec`` is one of

- ``"twin"`` or ``"twin:<profile>"``: the digital twin (:func:`v1nb.data.twin`), options are its
  overrides (e.g. ``seed=1``); simulated once per configuration and then read back from the
  cache (:mod:`v1nb.data.digital_twin.store`);
- a NetCDF file written by :func:`v1nb.data.to_netcdf`;
- a path in one of the public formats of :mod:`v1nb.data.formats` (Antolik, Allen, Stringer,
  Sensorium, nat60k, Cowley), recognised from file names and folder content; options are the
  keyword arguments of that format's ``load`` (e.g. ``region=2`` for Antolik).

A relative path that does not exist from the working directory is also looked up from the
repository root, so ``"../shared/data/antolik2016"`` works from a chapter's run folder too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from v1nb.data import formats
from v1nb.data.locations import repository_root
from v1nb.data.schema import SchemaError

TWIN = "twin"


def open_dataset(spec: str | os.PathLike, **options: Any) -> xr.Dataset:
    """Open a dataset in the v1nb schema.

    Parameters
    ----------
    spec : str or path
        ``"twin"``, ``"twin:<profile>"``, a ``.nc`` file, or a path in a supported format.
    **options
        Passed to the twin or to the format's reader; unknown names are rejected.

    Returns
    -------
    xarray.Dataset
        Validated against :mod:`v1nb.data.schema`.

    Raises
    ------
    FileNotFoundError
        The path (or a file the format needs) does not exist.
    formats.UnrecognisedFormatError
        The path exists but is no supported format (the message lists them).
    TypeError
        An option the format does not have (the message lists the valid ones).
    formats.FormatError
        A file has the wrong shape or is corrupt (the message names it and the expectation).
    SchemaError
        The data break the schema, e.g. infinite responses (the message names the path, the
        variable and the count).

    Examples
    --------
    >>> ds = open_dataset("twin:quick")  # doctest: +SKIP
    >>> ds = open_dataset("../shared/data/antolik2016", region=2)  # doctest: +SKIP
    """
    if isinstance(spec, str) and (spec == TWIN or spec.startswith(TWIN + ":")):
        # imported lazily: the twin pulls in scikit-image
        from v1nb.data.digital_twin.store import cached_twin

        profile = spec.partition(":")[2] or "default"
        return cached_twin(profile, **options)
    path = _resolve(spec)
    fmt = formats.detect(path)
    valid = formats.options(fmt)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none"
        raise TypeError(f"unknown option(s) {unknown} for {fmt.NAME} ({path}); valid options: {listing}")
    try:
        return fmt.load(path, **options)
    except SchemaError as err:
        # The schema check names the dataset's source label; name the file the user gave too.
        if str(path) in str(err):
            raise
        raise SchemaError(f"{path}: {err}") from err


def _resolve(spec: str | os.PathLike) -> Path:
    path = Path(spec).expanduser()
    if not path.exists() and not path.is_absolute():
        candidate = repository_root() / path
        if candidate.exists():
            return candidate
    return path

"""Readers for the on-disk formats of public recordings, all returning the v1nb schema.

Each format is one module with

- ``NAME``: short name (also the prefix of the dataset's ``source`` attribute);
- ``DESCRIPTION``: what a path of this format looks like (shown in error messages);
- ``matches(path) -> bool``: recognises the format from file names / folder content, reading
  at most an archive's table of contents;
- ``load(path, **options) -> xarray.Dataset``: reads it; the keyword arguments of ``load`` are
  the format's options (see each module's docstring for its schema mapping).

The list below is explicit (no plug-in registry): adding a format means adding a module and
one line here.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from types import ModuleType

from v1nb.data.formats import allen, antolik, cowley, nat60k, netcdf, sensorium, stringer
from v1nb.data.formats.reading import FormatError

#: Every supported format, in detection order.
FORMATS: tuple[ModuleType, ...] = (netcdf, antolik, allen, stringer, sensorium, nat60k, cowley)

__all__ = ["FORMATS", "FormatError", "UnrecognisedFormatError", "by_name", "detect", "describe", "options"]


class UnrecognisedFormatError(ValueError):
    """A path exists but matches none of :data:`FORMATS`."""


def describe() -> str:
    """One line per format: its name and what its paths look like."""
    return "\n".join(f"  {f.NAME}: {f.DESCRIPTION}" for f in FORMATS)


def detect(path: str | os.PathLike) -> ModuleType:
    """The format module that reads ``path``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    UnrecognisedFormatError
        If no format recognises it (the message lists the recognised formats).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (recognised formats:\n{describe()})")
    for fmt in FORMATS:
        if fmt.matches(path):
            return fmt
    raise UnrecognisedFormatError(f"{path}: not a recognised dataset; recognised formats:\n{describe()}")


def by_name(name: str) -> ModuleType:
    """The format module called ``name`` (e.g. ``"antolik2016"``)."""
    for fmt in FORMATS:
        if fmt.NAME == name:
            return fmt
    raise ValueError(f"format={name!r} is not one of {[f.NAME for f in FORMATS]}")


def options(fmt: ModuleType) -> dict[str, object]:
    """The options of a format's ``load`` with their defaults."""
    params = list(inspect.signature(fmt.load).parameters.values())[1:]
    return {p.name: p.default for p in params}

"""A NetCDF file written by :func:`v1nb.data.schema.to_netcdf` (any source, already in the schema)."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from v1nb.data.schema import read_netcdf

NAME = "netcdf"
DESCRIPTION = "NetCDF file in the v1nb schema (*.nc)"


def matches(path: Path) -> bool:
    return path.suffix in (".nc", ".nc4") and path.is_file()


def load(path: Path) -> xr.Dataset:
    """Read and validate a v1nb NetCDF file (see :func:`v1nb.data.schema.read_netcdf`)."""
    return read_netcdf(path)

"""Datasets in one schema: the digital twin (default) and loaders for real recordings.

Entry points
------------
open_dataset(spec, **options)
    ``"twin"`` / ``"twin:<profile>"``, a NetCDF file in the v1nb schema, or a path in one of the
    supported public formats (see :mod:`v1nb.data.formats`).
twin(profile="default", seed=0, **overrides)
    The simulated V1 population with ground truth (:mod:`v1nb.data.digital_twin`).

The schema itself is documented in :mod:`v1nb.data.schema`.
"""

from __future__ import annotations

import importlib
from typing import Any

from v1nb.data.schema import (
    BLANK,
    TIERS,
    UNKNOWN_IMAGE,
    SchemaError,
    build_dataset,
    provenance_of,
    read_netcdf,
    to_netcdf,
    validate,
)
from v1nb.data.views import repeat_array, select_tier

# Imported on first use: the twin and the loaders pull in scikit-image and scipy.io.
_LAZY = {"open_dataset": "v1nb.data.open", "twin": "v1nb.data.digital_twin"}

__all__ = [
    "BLANK", "TIERS", "UNKNOWN_IMAGE", "SchemaError", "build_dataset", "open_dataset",
    "provenance_of", "read_netcdf", "repeat_array", "select_tier", "to_netcdf", "twin", "validate",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'v1nb.data' has no attribute {name!r}")

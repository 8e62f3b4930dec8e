"""What produced a result: package versions, machine, time. Recorded by every dataset and chapter."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
from typing import Any

#: Packages whose versions can change a number in the book.
TRACKED_PACKAGES = ("numpy", "scipy", "xarray", "scikit-learn", "scikit-image", "torch", "pandas")


def versions() -> dict[str, str]:
    """Versions of v1nb, Python and the tracked packages (absent ones are skipped)."""
    from v1nb import __version__

    out = {"v1nb": __version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def provenance(**extra: Any) -> dict[str, Any]:
    """Versions plus UTC creation time plus any ``extra`` fields (config, seed, source files)."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        **extra,
    }

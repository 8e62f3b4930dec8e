"""The machine a computation runs on: the cores it may use and what to quote beside a timing.

Timings in this project are always quoted with the CPU model, core count and load average
(``bench/`` scripts record :func:`machine`): the same fit runs 1.5-3x faster on one CPU family than
on another, and a loaded machine makes any figure an upper bound.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


#: Environment variable that caps the cores a run may use, below its affinity mask: a sweep running
#: several chapter runs at once on one machine gives each its share (``v1nb.book.sweep``).
CORES_VARIABLE = "V1NB_CORES"


def available_cores() -> int:
    """The CPU cores this process may use, at least 1.

    Its affinity mask (``os.sched_getaffinity``, else ``os.cpu_count()``), not ``os.cpu_count()``:
    under ``taskset``, a container or a SLURM allocation the process may use fewer cores than the
    machine has. ``V1NB_CORES`` (a positive integer) lowers it further.

    Raises
    ------
    ValueError
        If ``V1NB_CORES`` is set to anything but a positive integer.
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    share = os.environ.get(CORES_VARIABLE, "").strip()
    if share:
        if not share.isdigit() or int(share) < 1:
            raise ValueError(f"{CORES_VARIABLE}={share!r}: expected a positive integer (the cores a run may use)")
        cores = min(cores, int(share))
    return cores


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, core count and the 1/5/15-minute load average now (what a timing is quoted with)."""
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}

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


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``), at least 1.

    The affinity mask, not ``os.cpu_count()``: under ``taskset``, a container or a SLURM allocation
    the process may use fewer cores than the machine has.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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

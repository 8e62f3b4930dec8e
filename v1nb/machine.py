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


#: Environment variable with the niceness a process and the processes it starts run at: set by a
#: parallel book build for the chapters beside its longest one (``v1nb.book.executor``).
NICENESS_VARIABLE = "V1NB_NICENESS"


def follow_niceness() -> None:
    """Run this process at (at least) the niceness ``V1NB_NICENESS`` names; nothing if it is unset.

    A niceness alone is not enough: Linux schedules each session's *autogroup* as one unit
    (``/proc/sys/kernel/sched_autogroup_enabled``), and a Jupyter kernel starts a session of its
    own, so a niced kernel would still get as much CPU as a whole session of normal-priority
    processes. A process that leads its session (a kernel) therefore raises the autogroup's nice
    value too (``/proc/self/autogroup``); any other leaves it alone, since the autogroup is shared
    with the rest of its session (e.g. the terminal ``v1nb book`` was started from). It only ever
    goes up: lowering it needs privileges. Called when :mod:`v1nb` is imported, so it reaches every
    chapter's kernel without the notebook doing anything.

    Raises
    ------
    ValueError
        If ``V1NB_NICENESS`` is set to anything but an integer from 0 to 19.
    """
    value = os.environ.get(NICENESS_VARIABLE, "").strip()
    if not value:
        return
    if not value.isdigit() or int(value) > 19:
        raise ValueError(f"{NICENESS_VARIABLE}={value!r}: expected an integer from 0 to 19 (a Unix niceness)")
    wanted = int(value)
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < wanted:
            os.setpriority(os.PRIO_PROCESS, 0, wanted)
    except (AttributeError, OSError):  # not on Unix, or not allowed: priority is an optimisation only
        return
    group = Path("/proc/self/autogroup")
    if os.getsid(0) != os.getpid():
        return
    try:
        current = int(group.read_text().split("nice")[1])
        if current < wanted:
            group.write_text(str(wanted))
    except (OSError, IndexError, ValueError):  # no autogroups (other kernels, containers): niceness suffices
        pass


def _first_processor(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """The fields of the first processor in ``cpuinfo`` (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    return _first_processor().get("model name") or platform.processor() or "unknown"


def cpu_generation(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU family, model number and whether AVX-512 is there (``/proc/cpuinfo``; empty elsewhere).

    Two boxes that both call themselves "AMD EPYC" have trained the same network 2x apart (a Zen 3,
    family 25 model 1, without AVX-512, against a Zen 4, family 25 model 17, with it): the model name
    alone does not say which figures are comparable.
    """
    info = _first_processor(cpuinfo)  # the first processor is enough
    fields: dict[str, Any] = {}
    if info.get("cpu family", "").isdigit():
        fields["cpu_family"] = int(info["cpu family"])
    if info.get("model", "").isdigit():
        fields["cpu_model_number"] = int(info["model"])
    if "flags" in info:
        fields["avx512"] = "avx512f" in info["flags"].split()
    return fields


def machine() -> dict[str, Any]:
    """CPU model (name, family, model number, AVX-512), core count and the 1/5/15-minute load average
    now (what a timing is quoted with)."""
    return {"cpu_model": cpu_model(), **cpu_generation(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}

"""Benchmark: wall time of ``v1nb book`` from a cold cache with ``--jobs 1`` and ``--jobs N``, then a warm rebuild.

The book (``_config.yml``, ``_toc.yml``, ``references.bib``, ``book/``) and the ``v1nb`` package
are copied once (so that every build times the same chapters and code while the repository
changes: the package's fingerprint keys the run cache, so the warm rebuild needs the same code;
the copy is put first on ``PYTHONPATH``), and for each ``--jobs`` value
that copy is copied into a fresh temporary folder, so that its ``runs/`` cache starts empty, with an empty
model cache (``$V1NB_CACHE`` in the same folder: the fitted networks are most of a cold build),
and the repository's own caches and ``_build/`` are left alone; ``v1nb book --jobs N`` then runs
there in a subprocess, as a user would run it. After the last cold build, the same command runs
again in the same folder with nothing changed: the warm rebuild (every chapter from the run
cache, then the render).

Reports for each build the total wall time, each chapter's execution time (from its
``run.json``), the remainder (staging and the Jupyter Book render, plus start-up), the peak
resident memory of the largest child process, and the ratio of every cold build to the
``--jobs 1`` one; with the CPU model, core count and load average (a loaded machine makes the
figures unreliable).

Usage: ``python bench/book.py [--profile quick|default] [--jobs 1 2]`` (default: ``default``,
jobs 1 and 2). Writes ``bench/results/book.json`` (one entry per profile, others kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from v1nb.io import write_json
from v1nb.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "book.json"


def machine() -> dict:
    """CPU model, cores and the 1/5/15-minute load average now."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def copy_book(source: Path, root: Path) -> None:
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(source / name, root / name)
    shutil.copytree(source / "book", root / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"),
                    dirs_exist_ok=True)


def build(root: Path, profile: str, jobs: int, package: Path) -> dict:
    """Run ``v1nb book`` in ``root`` with the ``v1nb`` package copied to ``package``; return its
    wall time and the chapters' times from run.json."""
    env = {**os.environ, "V1NB_CACHE": str(root / "model-cache"),
           # the snapshot's package shadows the editable install, in v1nb and in every kernel
           "PYTHONPATH": os.pathsep.join(filter(None, [str(package), os.environ.get("PYTHONPATH")]))}
    shared = REPO.parent / "shared" / "data"  # where the real recordings are, seen from the repository
    if "V1NB_SHARED_DATA" not in env and shared.is_dir():
        env["V1NB_SHARED_DATA"] = str(shared)
    load_before = machine()["loadavg"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "v1nb.book.cli", "book", "--profile", profile, "--root", str(root),
                    "--jobs", str(jobs)], check=True, env=env)
    total = time.perf_counter() - start
    chapters = {}
    for record in sorted((root / "runs").glob("*/*/run.json")):
        run = json.loads(record.read_text())
        chapters[run["chapter"]] = run["wall_time_s"]
    return {
        "jobs": jobs,
        "wall_time_s": round(total, 1),
        "chapters_s": chapters,
        # chapters overlap when jobs > 1, so this is only "the rest" for jobs 1
        "render_and_overhead_s": round(total - sum(chapters.values()), 1) if jobs == 1 else None,
        "loadavg_before": load_before,
        "loadavg_after": machine()["loadavg"],
    }


def bench_book(profile: str, jobs_list: list[int]) -> dict:
    """Cold builds for each ``jobs`` value, then a warm rebuild of the last one."""
    cold = []
    warm = None
    with tempfile.TemporaryDirectory(prefix="v1nb-bench-book-snapshot-") as snap:
        # one snapshot of the book for every build: the repository may change while this runs
        snapshot = Path(snap)
        copy_book(REPO, snapshot)
        # and of the package: its code fingerprint keys the run cache, and others may edit it meanwhile
        package = snapshot / "package"
        shutil.copytree(REPO / "v1nb", package / "v1nb", ignore=shutil.ignore_patterns("__pycache__"))
        for k, jobs in enumerate(jobs_list):
            with tempfile.TemporaryDirectory(prefix="v1nb-bench-book-") as tmp:
                root = Path(tmp)
                copy_book(snapshot, root)
                cold.append(build(root, profile, jobs, package))
                if k == len(jobs_list) - 1:
                    warm = build(root, profile, jobs, package)
                    warm.pop("render_and_overhead_s")
        chapters = sorted(cold[0]["chapters_s"])
    base = next((c["wall_time_s"] for c in cold if c["jobs"] == 1), None)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "profile": profile,
        "chapters": chapters,
        "cold": cold,
        "cold_ratio_to_jobs_1": {str(c["jobs"]): round(c["wall_time_s"] / base, 3) for c in cold} if base else None,
        "warm_rebuild": warm,
        "peak_rss_mb_largest_process": round(peak_mb, 1),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "default"), default="default")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="cold builds to time (default: 1 2)")
    args = parser.parse_args()
    if any(j < 1 for j in args.jobs):
        parser.error("--jobs values must be at least 1")
    result = bench_book(args.profile, args.jobs)
    print(json.dumps(result, indent=2))
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    profiles = previous.get("profiles", {})
    profiles[args.profile] = result
    write_json(RESULTS, provenance(benchmark="book", profiles=profiles))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()

"""Benchmark: an 8-point sweep of a quick chapter on Dask vs the same points one after another.

Both start from an empty run cache, each in its own temporary copy of the book: first the points
run one after another in this process (:func:`v1nb.book.executor.execute_locally`, what a shell
loop over ``v1nb run`` does, without its start-up), then ``v1nb sweep`` runs them on a
:class:`distributed.LocalCluster` with ``--jobs`` workers (default: the number of cores), start-up
of the cluster included. Target (issue 15): the sweep takes at most 0.6 x the serial time on 2 cores.

Usage: ``python bench/sweep.py [--chapter data] [--points 8] [--jobs N]``.
Writes ``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from v1nb.book.chapters import find_chapter
from v1nb.book.executor import Task, default_jobs, execute_locally
from v1nb.book.sweep import plan_sweep, run_sweep
from v1nb.io import write_json
from v1nb.machine import machine
from v1nb.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sweep.json"


def copy_book(root: Path) -> None:
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="data")
    parser.add_argument("--points", type=int, default=8, help="seeds 0..points-1 on twin:quick")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    args = parser.parse_args()
    grid = {"data": ["twin:quick"], "seed": [str(s) for s in range(args.points)]}
    out: dict = {"chapter": args.chapter, "points": args.points, "jobs": args.jobs, "grid": grid,
                 "machine_before": machine()}

    with tempfile.TemporaryDirectory(prefix="v1nb-bench-sweep-serial-") as tmp:
        root = Path(tmp)
        copy_book(root)
        chapter = find_chapter(args.chapter, root)
        points = plan_sweep(chapter, grid, root=root)
        tasks = [Task(chapter.path.resolve(), chapter.name, p.parameters, p.folder, root, p.label) for p in points]
        start = time.perf_counter()
        outcomes = execute_locally(tasks, desc="serial")
        out["serial_s"] = round(time.perf_counter() - start, 1)
        out["serial_points_s"] = [round(o.wall_time, 1) for o in outcomes]
        if not all(o.ok for o in outcomes):
            raise SystemExit(f"a serial point failed: {[o.message for o in outcomes if not o.ok]}")

    with tempfile.TemporaryDirectory(prefix="v1nb-bench-sweep-dask-") as tmp:
        root = Path(tmp)
        copy_book(root)
        chapter = find_chapter(args.chapter, root)
        start = time.perf_counter()
        result = run_sweep(chapter, grid, root=root, jobs=args.jobs)
        out["sweep_s"] = round(time.perf_counter() - start, 1)
        out["sweep_points_s"] = [round(o.wall_time, 1) for o in result.outcomes]
        if result.failures:
            raise SystemExit(f"a sweep point failed: {result.failures}")

    out["ratio_sweep_to_serial"] = round(out["sweep_s"] / out["serial_s"], 3)
    out["target_ratio"] = 0.6
    out["machine_after"] = machine()
    print(json.dumps(out, indent=2))
    write_json(RESULTS, provenance(benchmark="sweep", **out))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()

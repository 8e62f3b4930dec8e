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

``--before PATH`` also times a cold build of an earlier source tree (e.g. a ``git worktree`` of the
commit before a change: its own book, ``v1nb`` package and command line), first, on the same
machine. ``--toc FILE`` gives this tree's builds another table of contents, e.g.
``bench/toc_parts_I-III.yml`` (the book without Parts IV and V: the chapters the tree before issues
11-15 had, so that both sides build the same chapters).

Usage: ``python bench/book.py [--profile quick|default] [--jobs 1 2] [--before PATH] [--toc FILE] [--name KEY]``
(default: ``default``, jobs 1 and 2). Writes ``bench/results/book.json`` (one entry per profile, and
``<profile>_vs_before`` with ``--before``, or the entry ``--name`` gives; others kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from v1nb.io import write_json
from v1nb.machine import machine
from v1nb.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "book.json"


def copy_book(source: Path, root: Path, toc: Path | None = None) -> None:
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(toc if name == "_toc.yml" and toc is not None else source / name, root / name)
    shutil.copytree(source / "book", root / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"),
                    dirs_exist_ok=True)


def build(root: Path, profile: str, jobs: int | None, package: Path, cli: str = "v1nb.book.cli") -> dict:
    """Run ``v1nb book`` in ``root`` with the ``v1nb`` package copied to ``package``; return its
    wall time, the chapters' times from run.json and their scalar results.json values. ``jobs=None``: a tree whose command line has
    no ``--jobs`` (``cli`` names its module)."""
    env = {**os.environ, "V1NB_CACHE": str(root / "model-cache"),
           # the snapshot's package shadows the editable install, in v1nb and in every kernel
           "PYTHONPATH": os.pathsep.join(filter(None, [str(package), os.environ.get("PYTHONPATH")]))}
    shared = REPO.parent / "shared" / "data"  # where the real recordings are, seen from the repository
    if "V1NB_SHARED_DATA" not in env and shared.is_dir():
        env["V1NB_SHARED_DATA"] = str(shared)
    load_before = machine()["loadavg"]
    start = time.perf_counter()
    command = [sys.executable, "-m", cli, "book", "--profile", profile, "--root", str(root)]
    # cwd=root: ``python -m`` puts the working directory first on sys.path, and run from the repository
    # it would import the repository's live v1nb instead of the snapshot (so the builds would time
    # whatever the tree holds at that moment, and the warm rebuild would miss when it changed)
    subprocess.run(command + ([] if jobs is None else ["--jobs", str(jobs)]), check=True, env=env, cwd=root)
    total = time.perf_counter() - start
    chapters, values = {}, {}
    for record in sorted((root / "runs").glob("*/*/run.json")):
        run = json.loads(record.read_text())
        chapters[run["chapter"]] = run["wall_time_s"]
        # the numbers the chapter recorded, so that a change's "same numbers" is checked on the same builds
        results = json.loads((record.parent / "results.json").read_text()).get("values", {})
        values[run["chapter"]] = {k: v for k, v in results.items() if isinstance(v, (int, float, str, bool))}
    return {
        "jobs": jobs,
        "wall_time_s": round(total, 1),
        "chapters_s": chapters,
        # chapters overlap when jobs > 1, so this is only "the rest" for jobs 1
        "render_and_overhead_s": round(total - sum(chapters.values()), 1) if jobs == 1 else None,
        "loadavg_before": load_before,
        "loadavg_after": machine()["loadavg"],
        "values": values,
    }


def bench_before(tree: Path, profile: str) -> dict:
    """A cold build of an earlier source tree's book with its own package and command line."""
    with tempfile.TemporaryDirectory(prefix="v1nb-bench-book-before-") as tmp:
        root = Path(tmp)
        copy_book(tree, root)
        package = root / "package"
        shutil.copytree(tree / "v1nb", package / "v1nb", ignore=shutil.ignore_patterns("__pycache__"))
        # before issue 15 the command line was v1nb/cli.py
        cli = "v1nb.book.cli" if (tree / "v1nb" / "book" / "cli.py").is_file() else "v1nb.cli"
        result = build(root, profile, None, package, cli=cli)
    result.pop("jobs")
    return {"tree": str(tree), "commit": _commit(tree), **result}


def _commit(tree: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def bench_book(profile: str, jobs_list: list[int], toc: Path | None = None) -> dict:
    """Cold builds for each ``jobs`` value, then a warm rebuild of the last one."""
    cold = []
    warm = None
    with tempfile.TemporaryDirectory(prefix="v1nb-bench-book-snapshot-") as snap:
        # one snapshot of the book for every build: the repository may change while this runs
        snapshot = Path(snap)
        copy_book(REPO, snapshot, toc)
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
        "toc": str(toc) if toc is not None else None,
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
    parser.add_argument("--before", type=Path, help="an earlier source tree to time first (with its own toc)")
    parser.add_argument("--toc", type=Path, help="table of contents for this tree's builds")
    parser.add_argument("--name", help="entry of bench/results/book.json to write (default: the profile, "
                                       "with '_vs_before' after it for --before), e.g. to keep another CPU's")
    args = parser.parse_args()
    if any(j < 1 for j in args.jobs):
        parser.error("--jobs values must be at least 1")
    if args.before is not None and not (args.before / "v1nb" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no v1nb package there")
    for name, path in (("--toc", args.toc), ("--before", args.before and args.before / "_toc.yml")):
        if path is not None and not path.is_file():
            parser.error(f"{name}: {path} is not a file (expected a _toc.yml)")
    toc = args.toc.resolve() if args.toc is not None else None
    before = bench_before(args.before, args.profile) if args.before is not None else None
    result = bench_book(args.profile, args.jobs, toc)
    if before is not None:
        result["before"] = before
        result["cold_ratio_to_before"] = {str(c["jobs"]): round(c["wall_time_s"] / before["wall_time_s"], 3)
                                          for c in result["cold"]}
    print(json.dumps(result, indent=2))
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    profiles = previous.get("profiles", {})
    profiles[args.name or args.profile + ("_vs_before" if before is not None else "")] = result
    write_json(RESULTS, provenance(benchmark="book", profiles=profiles))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()

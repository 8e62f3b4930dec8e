"""Benchmark: wall time of ``v1nb book`` from a cold cache.

The book (``_config.yml``, ``_toc.yml``, ``references.bib``, ``book/``) is copied into a temporary
folder so that its ``runs/`` cache starts empty, with an empty model cache (``$V1NB_CACHE`` in the
same folder: the fitted networks are most of a cold build), and the repository's own caches and
``_build/`` are left alone; ``v1nb book`` then runs there in a subprocess, as a user would run it. Reports the
total wall time, each chapter's execution time (from its ``run.json``), the remainder (staging and
the Jupyter Book render, plus start-up), and the peak resident memory of the largest process
(a chapter's kernel, usually).

Usage: ``python bench/book.py [--profile quick|default]`` (default: ``default``).
Writes ``bench/results/book.json`` (one entry per profile, others kept).
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
from v1nb.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "book.json"


def bench_book(profile: str) -> dict:
    """Build the book from a cold cache in a temporary copy; return the timings."""
    with tempfile.TemporaryDirectory(prefix="v1nb-bench-book-") as tmp:
        root = Path(tmp)
        for name in ("_config.yml", "_toc.yml", "references.bib"):
            shutil.copy2(REPO / name, root / name)
        shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        start = time.perf_counter()
        env = {**os.environ, "V1NB_CACHE": str(root / "model-cache")}
        subprocess.run([sys.executable, "-m", "v1nb.book.cli", "book", "--profile", profile, "--root", str(root)],
                       check=True, env=env)
        total = time.perf_counter() - start
        chapters = {}
        for record in sorted((root / "runs").glob("*/*/run.json")):
            run = json.loads(record.read_text())
            chapters[run["chapter"]] = run["wall_time_s"]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "profile": profile,
        "wall_time_s": round(total, 1),
        "chapters_s": chapters,
        "render_and_overhead_s": round(total - sum(chapters.values()), 1),
        "peak_rss_mb_largest_process": round(peak_mb, 1),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "default"), default="default")
    args = parser.parse_args()
    result = bench_book(args.profile)
    print(json.dumps(result, indent=2))
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    profiles = previous.get("profiles", {})
    profiles[args.profile] = result
    write_json(RESULTS, provenance(benchmark="book", profiles=profiles))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()

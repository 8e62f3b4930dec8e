"""Benchmark: wall time of a book part's chapters run one after another, cold, then re-run with cached models.

Issues 12 and 13 set time targets per part: Part IV's six chapters and Part V's four, cold on 2 cores
(each ``≤ 15 minutes beyond the models they share with Part III`` on the default twin, ``≤ 3 minutes
for all`` on the quick profile), and a re-run of one chapter with its models cached ``≤ 2 minutes``.

Each chapter runs with :func:`v1nb.book.runner.run_chapter` in this process's working copy of the
book, into a temporary run folder, against a fresh model cache (``$V1NB_CACHE`` in a temporary
folder), in the order given: the first chapter that needs a model fits it, the later ones load it,
as in a book build. ``--shared-first CHAPTER`` runs that chapter first without counting it (e.g.
``models`` for "beyond the models they share with Part III"); ``--keep DIR`` keeps the run folders and the
model cache under DIR. ``--seed-cache DIR`` copies a model cache kept from an earlier run (its networks
and twins, e.g. the cache of one ``v1nb run models`` into an empty ``$V1NB_CACHE``) into the fresh one
first, in place of re-running the chapter that fitted them (on the Zen 1 the models chapter takes
18 minutes); the results record what was copied. The networks are keyed by their settings and data, so a
copy made by other training code would be refitted, not reused. ``--interaction-baselines`` fits Part V's shared baselines (every seed, on the
interacting and on the control twin) first without counting them, for "beyond the shared baseline
models". Then every chapter runs once more
(new run folders, same model cache): the warm re-run (``--no-warm`` skips it). Times are wall-clock seconds; the CPU model,
core count and load average are recorded beside them (a loaded machine makes them upper bounds).
The machine's busy core-seconds over the cold run are sampled (``cold_cpu``: busy against cores × wall,
and the busy fraction every 10 s): where the cores were busy throughout, only less work shortens it.
The models the cold chapters fitted are listed with the CPU seconds each took (``cold_fits``: by kind,
their total, and that total over the cores: the floor of the part's time on this machine).

Usage::

    python bench/chapters.py --part embeddings [--profile quick|default] [--shared-first models]
    python bench/chapters.py --chapters attention who_gains --profile quick
    python bench/chapters.py --part interactions --profile default --interaction-baselines
    python bench/chapters.py --part embeddings --profile default --shared-first models --jobs 2

``--jobs N`` runs the cold chapters at once, as ``v1nb book --jobs N`` does (the book's executor; the
part's total is then the wall time of the whole call, not the sum of the chapters). The cold run's
``timeline`` says when each chapter and each fit started and ended (seconds from the cold start; a fit's
end is its cache file's time, its start that minus its wall time): where the cores idled.

Writes ``bench/results/chapters_<part or "custom">_<profile>[_jobs<N>][_<name>].json`` (``--name``: e.g. the
CPU, so that a run on another machine does not replace the last one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

from v1nb.book.build import chapter_overrides
from v1nb.book.chapters import book_chapters
from v1nb.book.runner import run_chapter
from v1nb.io import write_json
from v1nb.machine import available_cores, machine
from v1nb.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def run_all(chapters: dict, names: list[str], profile: str, out: Path, tag: str,
            spans: dict | None = None) -> dict[str, float]:
    """Run the named chapters (of ``chapters``, name → Chapter) in order into ``out/<tag>/<chapter>``; their wall
    times. ``spans`` (if given) receives each chapter's (start, end) in :func:`time.time` seconds."""
    times = {}
    for name in names:
        chapter = chapters[name]
        start, began = time.perf_counter(), time.time()
        run_chapter(chapter, chapter_overrides(chapter, profile, {}), out / tag / name, root=REPO, reuse=False)
        times[name] = round(time.perf_counter() - start, 1)
        if spans is not None:
            spans[name] = (began, time.time())
        print(f"{tag:>6} {name:<24} {times[name]:8.1f} s", flush=True)
    return times


def run_together(chapters: dict, names: list[str], profile: str, out: Path, tag: str, jobs: int,
                 spans: dict | None = None) -> tuple[dict, float]:
    """Run the named chapters at once, as ``v1nb book --jobs N`` does (:func:`v1nb.book.executor.run_chapters`:
    a local Dask cluster of ``jobs`` workers, the first chapter at normal priority, the others niced),
    into ``out/<tag>/runs/<chapter>/...``; each chapter's wall time and the wall time of the whole call.
    ``spans`` (if given) receives each chapter's (start, end) in :func:`time.time` seconds (the end is
    its ``run.json``'s modification time, the start that minus its wall time)."""
    from v1nb.book.executor import run_chapters

    selected = [chapters[n] for n in names]
    start = time.perf_counter()
    runs = run_chapters(out / tag, selected, [chapter_overrides(c, profile, {}) for c in selected], jobs=jobs,
                        progress=False)
    total = round(time.perf_counter() - start, 1)
    times = {r.chapter: round(float(r.wall_time), 1) for r in runs}
    if spans is not None:
        for r in runs:
            end = (Path(r.folder) / "run.json").stat().st_mtime
            spans[r.chapter] = (end - float(r.wall_time), end)
    for name in names:
        print(f"{tag:>6} {name:<24} {times[name]:8.1f} s (at once, --jobs {jobs})", flush=True)
    print(f"{tag:>6} {'all together':<24} {total:8.1f} s", flush=True)
    return times, total


def fit_interaction_baselines(chapter, profile: str) -> float:
    """Fit Part V's baselines (both twins, the chapter's default ``seeds``) into the model cache; wall seconds."""
    from v1nb.analysis import interactions as inter
    from v1nb.models.budgets import budget_seeds, budget_settings, resolve_budget

    data = str(chapter_overrides(chapter, profile, {}).get("data", chapter.parameters["data"].default))
    budget = resolve_budget("auto", data)
    start = time.perf_counter()
    ds, control = inter.open_twins(data, 0)
    twins = {"interacting": (ds, ())} | ({"control": (control, ())} if control is not None else {})
    inter.fit_interaction_models_on(twins, budget_seeds(range(int(chapter.parameters["seeds"].default)), budget), budget_settings(budget, data))
    wall = round(time.perf_counter() - start, 1)
    print(f"shared interaction baselines ({data}) {wall:8.1f} s", flush=True)
    return wall


def fits_in(cache: Path, skip: set[str]) -> list[dict]:
    """What each model file in ``cache`` (but those named in ``skip``) cost to fit, from its history.

    The cold chapters' fits, summed by kind, say how much of a part's time is training and what its
    floor is on this machine: their process CPU seconds over the cores (every core busy, nothing else).
    """
    from v1nb.models import ResponseModel

    rows = []
    for path in sorted(cache.glob("*.pt")):
        if path.name in skip:
            continue
        model = ResponseModel.load(path)
        h = model.history_
        rows.append({"file": path.name, "core": model.core, "head": model.head, "interaction": model.interaction,
                     "kind": "fine-tune" if h.get("parent") else "pre-trained",
                     "trainable": model.settings.get("trainable", "all"), "epochs": len(h["epochs"]) - 1,
                     "cpu_s": round(float(h.get("cpu_seconds", float("nan"))), 1),
                     "wall_s": round(float(h.get("wall_seconds", float("nan"))), 1),
                     "ended_at": path.stat().st_mtime})
    return rows


def timeline(spans: dict, fits: list[dict], start: float) -> dict:
    """Chapters' and fits' (start, end) in seconds from ``start``, each list sorted by start."""
    def span(a: float, b: float) -> list[float]:
        return [round(a - start, 1), round(b - start, 1)]
    chapters = sorted(({"chapter": n, "span_s": span(*ab)} for n, ab in spans.items()), key=lambda r: r["span_s"][0])
    fitted = sorted(({"file": f["file"], "kind": f["kind"], "core": f["core"], "trainable": f["trainable"],
                      "span_s": span(f["ended_at"] - f["wall_s"], f["ended_at"])} for f in fits),
                    key=lambda r: r["span_s"][0])
    return {"chapters": chapters, "fits": fitted}


def fit_summary(rows: list[dict], cores: int) -> dict:
    """CPU seconds of the fits by kind and core, their total, and that total over ``cores``."""
    groups: dict[str, dict] = {}
    for r in rows:
        key = f"{r['kind']} {r['core']}" + (f" ({r['trainable']})" if r["kind"] == "fine-tune" else "")
        g = groups.setdefault(key, {"n": 0, "cpu_s": 0.0})
        g["n"] += 1
        g["cpu_s"] = round(g["cpu_s"] + r["cpu_s"], 1)
    total = round(sum(r["cpu_s"] for r in rows), 1)
    return {"by_kind": groups, "cpu_s": total, "floor_s": round(total / max(cores, 1), 1), "cores": cores}


class CpuSampler:
    """The machine's CPU time, busy and idle, sampled every ``interval`` seconds while a ``with`` block runs.

    A fit's own CPU seconds say what training cost; this says whether the cores were busy at all
    (whatever ran: fits, the chapters' analyses, worker start-up): where the busy core-seconds reach
    the cores × wall, only less work shortens the part, and no start order can. ``summary()``: busy
    and niced core-seconds, the capacity (cores × wall) and the busy fraction per interval.
    """

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.samples: list[tuple[float, tuple]] = []  # (time.time(), psutil.cpu_times())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), psutil.cpu_times()))
            if self._stop.wait(self.interval):
                self.samples.append((time.time(), psutil.cpu_times()))
                return

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _busy(t) -> float:
        # all but idle and I/O wait; Linux counts guest time inside user and nice already (as psutil does)
        skip = ("idle", "iowait", "guest", "guest_nice")
        return sum(getattr(t, name) for name in t._fields if name not in skip)

    def summary(self) -> dict:
        (t0, first), (t1, last) = self.samples[0], self.samples[-1]
        cores = psutil.cpu_count() or 1
        busy = self._busy(last) - self._busy(first)
        series = [round((self._busy(tb) - self._busy(ta)) / max((b - a) * cores, 1e-9), 2)
                  for (a, ta), (b, tb) in zip(self.samples, self.samples[1:])]
        return {"cores": cores, "wall_s": round(t1 - t0, 1), "capacity_core_s": round((t1 - t0) * cores, 1),
                "busy_core_s": round(busy, 1), "niced_core_s": round(last.nice - first.nice, 1),
                "busy_fraction": round(busy / max((t1 - t0) * cores, 1e-9), 3),
                "interval_s": self.interval, "busy_fraction_series": series}


def scalar_values(path: Path) -> dict:
    """The scalar values (numbers, strings, booleans) a chapter's ``results.json`` recorded; empty if it has none."""
    if not path.exists():
        return {}
    values = json.loads(path.read_text()).get("values", {})
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool)) or v is None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--part", help="a folder under book/ (embeddings, interactions, population ...)")
    group.add_argument("--chapters", nargs="+", help="chapter names, run in this order")
    parser.add_argument("--profile", choices=("quick", "default"), default="quick")
    parser.add_argument("--no-warm", action="store_true", help="skip the re-run with the models cached")
    parser.add_argument("--shared-first", nargs="*", default=[], metavar="CHAPTER",
                        help="chapters run first and not counted (their models are then cached)")
    parser.add_argument("--interaction-baselines", action="store_true",
                        help="fit Part V's baselines (both twins) first, not counted")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cold chapters one after another (1, default) or at once on this many workers, as "
                             "`v1nb book --jobs N` runs them (the warm re-run stays one after another)")
    parser.add_argument("--name", default="", help="suffix of the results file (e.g. the CPU: zen1)")
    parser.add_argument("--seed-cache", type=Path, metavar="DIR",
                        help="copy this model cache (networks and twins) into the fresh one first, e.g. one "
                             "that holds the models chapter's networks, instead of --shared-first models")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run folders and model cache under DIR (kept) instead of a temporary folder")
    args = parser.parse_args()
    known = {c.name: c for c in book_chapters(REPO)}
    if args.part is not None:
        names = [c.name for c in known.values() if c.path.parent.name == args.part]
        if not names:
            parser.error(f"--part {args.part}: no chapter of _toc.yml lives in book/{args.part}/")
    else:
        names = args.chapters
    unknown = [n for n in [*names, *args.shared_first] if n not in known]
    if unknown:
        parser.error(f"unknown chapter(s) {', '.join(unknown)}; the book has {', '.join(known)}")
    if args.seed_cache is not None and not any(args.seed_cache.glob("*.pt")):
        parser.error(f"--seed-cache {args.seed_cache}: no model files (*.pt) there")
    with tempfile.TemporaryDirectory(prefix="v1nb-bench-chapters-") as tmp:
        tmp = Path(tmp) if args.keep is None else args.keep.resolve()
        os.environ["V1NB_CACHE"] = str(tmp / "model-cache")  # read by every kernel the runner starts
        seeded = []
        if args.seed_cache is not None:
            shutil.copytree(args.seed_cache, tmp / "model-cache", ignore=shutil.ignore_patterns(".locks"),
                            dirs_exist_ok=True)
            seeded = sorted(str(p.relative_to(args.seed_cache)) for p in args.seed_cache.rglob("*")
                            if p.is_file() and ".locks" not in p.parts)
        before = machine()
        shared = run_all(known, args.shared_first, args.profile, tmp, "shared") if args.shared_first else {}
        if args.interaction_baselines:
            shared["interaction_baselines"] = fit_interaction_baselines(known["attention"], args.profile)
        cache = tmp / "model-cache"
        cached_before = {p.name for p in cache.glob("*.pt")}
        spans: dict = {}
        cold_start = time.time()
        with CpuSampler() as cpu:
            if args.jobs > 1:
                cold, cold_together = run_together(known, names, args.profile, tmp, "cold", args.jobs, spans)
            else:
                cold, cold_together = run_all(known, names, args.profile, tmp, "cold", spans), None
        cold_fits = fits_in(cache, cached_before)
        cold_timeline = timeline(spans, cold_fits, cold_start)
        for row in cold_fits:
            row.pop("ended_at")
        warm = {} if args.no_warm else run_all(known, names, args.profile, tmp, "warm")
        # what each cold run answered, beside its time: a target met slowly and a target missed fast
        # are read from the same record
        folders = {name: (tmp / "cold" / name if args.jobs <= 1
                          else next((tmp / "cold" / "runs" / name).glob("*/results.json")).parent) for name in names}
        values = {name: scalar_values(folders[name] / "results.json") for name in names}
    result = {
        "profile": args.profile, "chapters": names, "shared_first_s": shared,
        "seeded_cache": {"from": str(args.seed_cache), "files": seeded} if seeded else None,
        "jobs": args.jobs, "cold_s": cold,
        # one after another: the sum of the chapters; at once: the wall time of the whole build
        "cold_total_s": round(sum(cold.values()), 1) if cold_together is None else cold_together,
        "cold_fits": fit_summary(cold_fits, available_cores()), "cold_fit_list": cold_fits, "timeline": cold_timeline,
        "cold_cpu": cpu.summary(),
        "warm_s": warm, "warm_max_s": max(warm.values(), default=None), "values": values,
        "machine_before": before, "machine_after": machine(),
    }
    print(json.dumps(result, indent=2))
    suffix = (f"_jobs{args.jobs}" if args.jobs > 1 else "") + (f"_{args.name}" if args.name else "")
    path = RESULTS / f"chapters_{args.part or 'custom'}_{args.profile}{suffix}.json"
    write_json(path, provenance(benchmark="chapters", **result))
    print(f"saved {path}")


if __name__ == "__main__":
    main()

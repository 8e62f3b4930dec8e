"""Benchmark of the population analyses (v1nb.analysis).

1. Every analysis on the default twin (1,000 neurons), timed.
2. cvPCA and reduced-rank regression on a twin of 10,000 neurons × 5,600 trials (cvPCA: 2,800
   test images × 2 repeats, as in Stringer's recordings; RRR: 5,600 train + validation trials),
   timed with their peak memory (numpy allocations, tracemalloc) and the process's peak RSS.

Targets (issue 5): each analysis on the default twin ≤ 2 min on 2 cores; cvPCA and RRR at
10,000 × 5,600 in ≤ 2 min and ≤ 8 GB. The machine may be shared: the load average (before and
after each step) and the CPU time are recorded next to the wall time. One extra entry times
logistic decoding with two BLAS threads, the reason the analyses default to one.

Usage: ``python bench/analysis.py [--skip-default] [--skip-large]``; threads per process from
``V1NB_BENCH_THREADS`` (default 1); writes bench/results/analysis.json.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from v1nb.io import write_json
from v1nb.provenance import provenance

RESULTS = Path(__file__).parent / "results" / "analysis.json"


def timed(name: str, fn: Callable[[], Any], record: dict, summary: Callable[[Any], dict] | None = None,
          memory: bool = False) -> Any:
    """Run ``fn`` once, store wall time (and peak memory) under ``record[name]``, print a line."""
    load = os.getloadavg()
    if memory:
        tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    out = fn()
    seconds = time.perf_counter() - start
    # CPU time of this process (all its threads): with one thread it is close to the wall time
    # the run takes on an idle machine, whatever else the shared machine was doing.
    entry: dict[str, Any] = {"seconds": round(seconds, 2), "cpu_seconds": round(time.process_time() - cpu_start, 2),
                             "load_before": [round(x, 2) for x in load],
                             "load_after": [round(x, 2) for x in os.getloadavg()]}
    if memory:
        entry["peak_numpy_gb"] = round(tracemalloc.get_traced_memory()[1] / 1e9, 3)
        tracemalloc.stop()
        entry["process_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)
    if summary is not None:
        entry.update(summary(out))
    record[name] = entry
    print(f"{name:28s} {seconds:7.1f} s  {entry}", flush=True)
    return out


def default_twin(record: dict, threads: int) -> None:
    import v1nb.analysis as A
    from v1nb.data import twin

    ds = timed("twin_default", lambda: twin("default", seed=0), record)
    timed("cvpca", lambda: A.cvpca(ds), record, lambda r: {"alpha": r.alpha, "signal_fraction": r.signal_fraction})
    # Square root: variance-stabilises the spike counts before distances are taken.
    test = ds["responses"].values[ds["tier"].values.astype(str) == "test"]
    spont = ds["responses"].values[ds["tier"].values.astype(str) == "spontaneous"]
    for method in ("graph", "twonn", "correlation"):
        timed(f"dimension_{method}_stimulus", lambda: A.intrinsic_dimension(np.sqrt(test), method), record,
              lambda r: {"dimension": r.dimension, "goodness_of_fit": r.goodness_of_fit})
    timed("dimension_graph_spontaneous", lambda: A.intrinsic_dimension(np.sqrt(spont), "graph"), record,
          lambda r: {"dimension": r.dimension})
    for method in ("rrr", "rwa"):
        timed(f"receptive_fields_{method}", lambda: A.receptive_fields(ds, method=method, features="both"), record,
              lambda r: {"rank": r.attrs.get("rank"), "max_explained_variance":
                         float(r["explained_variance"].max()) if "explained_variance" in r else None})
    timed("identify", lambda: A.identify(ds), record, lambda r: {"accuracy": r.accuracy, "chance": r.chance})
    for model in ("logistic", "forest", "boosting", "mlp"):
        timed(f"decode_category_{model}", lambda: A.decode_category(ds, model=model, n_threads=threads), record,
              lambda r: {"balanced_accuracy": r.balanced_accuracy, "ci": list(r.ci), "chance": r.chance,
                         "n_splits": r.details["n_splits"], "threads": threads})
    # Why the analyses default to one thread: the same fit with two BLAS/OpenMP threads.
    timed("decode_category_logistic_2_threads", lambda: A.decode_category(ds, model="logistic", n_threads=2), record,
          lambda r: {"balanced_accuracy": r.balanced_accuracy, "threads": 2})
    for method in ("kmeans", "bicluster"):
        timed(f"cluster_{method}", lambda: A.cluster_responses(ds, 10, method), record,
              lambda r: {"agreement": r.agreement, "chance": r.chance, "ari": r.ari})
    # The settings of book/population/spatial.ipynb (3,000 of the 5,500 trials, 15 epochs).
    timed("spatial_decoding", lambda: A.spatial_decoding(ds, max_trials=3000, n_threads=threads), record,
          lambda r: {"scores": r.scores, "chance": r.chance, "max_trials": 3000, "epochs": 15})


def large_twin(record: dict) -> None:
    import v1nb.analysis as A
    from v1nb.data import twin

    ds = timed("twin_large", lambda: twin("large", seed=0, n_train=5100, n_validation=500, n_test=2800,
                                            n_test_repeats=2, n_spontaneous=0), record,
               lambda d: {"sizes": dict(d.sizes)})
    timed("cvpca_10k_neurons_5600_trials", lambda: A.cvpca(ds), record,
          lambda r: {"alpha": r.alpha, "n_components": int(r.spectrum.size)}, memory=True)
    timed("rrr_10k_neurons_5600_trials", lambda: A.receptive_fields(ds, method="rrr"), record,
          lambda r: {"rank": r.attrs["rank"], "n_trials": r.attrs["n_trials"]}, memory=True)


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP/torch thread: on a shared, oversubscribed machine multithreaded LAPACK and
    # OpenMP loops spin and run several times slower than one thread.
    threads = int(os.environ.get("V1NB_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    record: dict[str, Any] = {}
    with threadpool_limits(threads):
        if "--skip-default" not in sys.argv:
            default_twin(record, threads)
        if "--skip-large" not in sys.argv:
            large_twin(record)
    # A partial run (--skip-*) updates its own entries and keeps the others' last measurements.
    partial = any(a.startswith("--skip") for a in sys.argv[1:])
    previous = json.loads(RESULTS.read_text()).get("results", {}) if partial and RESULTS.is_file() else {}
    write_json(RESULTS, provenance(benchmark="analysis", results={**previous, **record}, cpu_count=os.cpu_count(),
                                   threads=threads, argv=sys.argv[1:]))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

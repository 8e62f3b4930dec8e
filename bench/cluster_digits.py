"""Clustering accuracy on sklearn's digits (N = 1797, D = 64, c = 10), five seeds per method.

Scaling: pixel values divided by 16 (to [0, 1]); SEC and LDMGI are scale-invariant by
construction (their ridge parameters are relative), k-means and spectral clustering only see a
global rescaling, and the autoencoders of DEC/IDEC want inputs of order 1.

Run:  .venv/bin/python bench/cluster_digits.py     (→ bench/results/cluster_digits.json)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from v1nb.cluster import make_clusterer, metrics
from v1nb.io import write_json
from v1nb.provenance import provenance

SEEDS = range(5)
METHODS = {
    "kmeans": {},
    "spectral": {},
    "sec": {},
    "ldmgi": {},
    "dec": {},
    "idec": {},
}


def main(methods=tuple(METHODS)) -> dict:
    # One thread: the machine is shared and oversubscribed torch/OpenMP threads stall.
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    load_before = os.getloadavg()
    runs = []
    for name in methods:
        for seed in SEEDS:
            est = make_clusterer(name, 10, random_state=seed, **METHODS[name])
            t = time.perf_counter()
            labels = est.fit_predict(X)
            dt = time.perf_counter() - t
            row = dict(method=name, seed=seed, seconds=dt, **metrics.summary(y, labels))
            runs.append(row)
            print(f"{name:9s} seed {seed}: acc {row['acc']:.3f}  nmi {row['nmi']:.3f}  "
                  f"ari {row['ari']:.3f}  ({dt:.1f} s)", flush=True)
    # A run of some methods updates their entries and keeps the others' from the last full run.
    path = Path(__file__).parent / "results" / "cluster_digits.json"
    if path.exists():
        kept = [x for x in json.loads(path.read_text()).get("runs", []) if x["method"] not in methods]
        runs = kept + runs
    summary = {}
    for name in dict.fromkeys(x["method"] for x in runs):
        r = [x for x in runs if x["method"] == name]
        summary[name] = {m: {"median": float(np.median([x[m] for x in r])),
                             "min": float(np.min([x[m] for x in r])),
                             "max": float(np.max([x[m] for x in r]))}
                         for m in ("acc", "nmi", "ari", "seconds")}
    print("\nmethod     ACC median [min, max]    NMI median   ARI median   s/run")
    for name, s in summary.items():
        print(f"{name:9s}  {s['acc']['median']:.3f} [{s['acc']['min']:.3f}, {s['acc']['max']:.3f}]"
              f"     {s['nmi']['median']:.3f}        {s['ari']['median']:.3f}        "
              f"{s['seconds']['median']:.1f}")
    out = dict(dataset="sklearn load_digits, X/16", n_samples=int(X.shape[0]), seeds=list(SEEDS),
               params={k: v for k, v in METHODS.items()}, runs=runs, summary=summary,
               loadavg_before=load_before, loadavg_after=os.getloadavg(),
               provenance=provenance(script="bench/cluster_digits.py"))
    write_json(path, out)
    return out


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or tuple(METHODS))

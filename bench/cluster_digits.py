"""Clustering accuracy on sklearn's digits (N = 1797, D = 64, c = 10), five seeds per method.

Scaling: pixel values divided by 16 (to [0, 1]); SEC and LDMGI are scale-invariant by
construction (their ridge parameters are relative), k-means and spectral clustering only see a
global rescaling, and the autoencoders of DEC/IDEC want inputs of order 1.

DEC/IDEC pretrain their autoencoder for at least 2,100 steps (``min_pretrain_steps``; 300 epochs
here) with the rate annealed from 3e-3 to 0: with the papers' 200 epochs at a constant 1e-3 (1,400
steps on 1,797 images) the codes were no better for k-means than the pixels and IDEC's median ACC
fell to k-means' level (see v1nb/cluster/dec.py; ``bench/idec_pretraining.py`` compares this
default with the earlier 10,500 constant-rate steps over 15 seeds).

Run:  .venv/bin/python bench/cluster_digits.py [method ...] [--seeds 0,1,2]
      (→ bench/results/cluster_digits.json, rewritten after every run so a partial run is kept)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import digits  # bench/digits.py (this folder is on sys.path)
from v1nb.cluster import make_clusterer, metrics
from v1nb.io import write_json
from v1nb.machine import cpu_model
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


def _summarise(runs: list[dict]) -> dict:
    summary = {}
    for name in dict.fromkeys(x["method"] for x in runs):
        r = [x for x in runs if x["method"] == name]
        summary[name] = {m: {"median": float(np.median([x[m] for x in r])),
                             "min": float(np.min([x[m] for x in r])),
                             "max": float(np.max([x[m] for x in r]))}
                         for m in ("acc", "nmi", "ari", "seconds")}
        summary[name]["n_seeds"] = len(r)
    return summary


def main(methods=tuple(METHODS), seeds=tuple(SEEDS)) -> dict:
    # One thread: the machine is shared and oversubscribed torch/OpenMP threads stall.
    torch.set_num_threads(1)
    X, y = digits.load()
    load_before = os.getloadavg()
    path = Path(__file__).parent / "results" / "cluster_digits.json"
    # A run of some methods replaces their entries and keeps the others' from the last full run.
    kept = ([x for x in json.loads(path.read_text()).get("runs", []) if x["method"] not in methods]
            if path.exists() else [])
    runs: list[dict] = []
    out: dict = {}
    for name in methods:
        for seed in seeds:
            est = make_clusterer(name, 10, random_state=seed, **METHODS[name])
            t = time.perf_counter()
            labels = est.fit_predict(X)
            dt = time.perf_counter() - t
            row = dict(method=name, seed=seed, seconds=dt, **metrics.summary(y, labels))
            if hasattr(est, "n_pretrain_epochs_"):
                row["pretrain_epochs"] = est.n_pretrain_epochs_
            runs.append(row)
            print(f"{name:9s} seed {seed}: acc {row['acc']:.3f}  nmi {row['nmi']:.3f}  "
                  f"ari {row['ari']:.3f}  ({dt:.1f} s)", flush=True)
            all_runs = kept + runs
            out = dict(dataset="sklearn load_digits, X/16", n_samples=int(X.shape[0]), seeds=list(seeds),
                       params={k: v for k, v in METHODS.items()}, runs=all_runs, summary=_summarise(all_runs),
                       loadavg_before=load_before, loadavg_after=os.getloadavg(),
                       cpu=cpu_model(), provenance=provenance(script="bench/cluster_digits.py"))
            write_json(path, out)  # after every run: a partial run is kept
    print("\nmethod     ACC median [min, max]    NMI median   ARI median   s/run   seeds")
    for name, s in out.get("summary", {}).items():
        print(f"{name:9s}  {s['acc']['median']:.3f} [{s['acc']['min']:.3f}, {s['acc']['max']:.3f}]"
              f"     {s['nmi']['median']:.3f}        {s['ari']['median']:.3f}        "
              f"{s['seconds']['median']:.1f}   {s['n_seeds']}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", metavar="method", help=f"any of {', '.join(METHODS)} (default: all)")
    parser.add_argument("--seeds", type=digits.seed_list, default=list(SEEDS), help="e.g. 0-4 or 0,1,2")
    args = parser.parse_args()
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    main(tuple(args.methods) or tuple(METHODS), tuple(args.seeds))

"""Two default fits side by side in worker processes against one fit alone (issue 11's parallel target).

Fits the default CNN + Gaussian readout on the default twin, cold (a fresh temporary model cache),
for a fixed number of epochs (``early_stopping=False``, so every fit does the same work): first one
seed alone (``fit_many`` with one job: in this process, one thread), then two seeds with
``fit_seeds(..., n_jobs=2)`` (two workers forked from a fork server, one thread each; the wall time includes starting
them and loading the results from the cache). Target: the pair takes at most 1.25 × the wall time
of the single fit. Also reports the load average around each part.

Usage: .venv/bin/python bench/parallel.py [--profile default] [--epochs 10]
Writes bench/results/parallel.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from v1nb.data import twin
from v1nb.io import write_json
from v1nb.machine import cpu_model
from v1nb.models import fit_many, fit_seeds

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per fit (fixed: early stopping off)")
    args = parser.parse_args()

    ds = twin(args.profile, seed=0)
    settings = {"max_epochs": args.epochs, "early_stopping": False}
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as cache:
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        (single,) = fit_many(ds, [{"core": "cnn", "seed": 10, **settings}], n_jobs=1, cache_dir=cache)
        one = time.perf_counter() - t0
        load1 = os.getloadavg()
        t0 = time.perf_counter()
        pair = fit_seeds(ds, "cnn", "gaussian", seeds=[11, 12], n_jobs=2, cache_dir=cache, **settings)
        two = time.perf_counter() - t0
        load2 = os.getloadavg()
    out = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "profile": args.profile, "settings": settings,
        "one_fit_wall_seconds": one, "two_fits_parallel_wall_seconds": two, "ratio": two / one, "target_ratio": 1.25,
        "epochs": [len(single.history_["epochs"]) - 1] + [len(m.history_["epochs"]) - 1 for m in pair],
        "train_seconds": [single.history_["train_seconds"]] + [m.history_.get("train_seconds") for m in pair],
        "loadavg_before_single": load0, "loadavg_before_pair": load1, "loadavg_after": load2,
    }
    print(out)
    print(f"wrote {write_json(RESULTS / 'parallel.json', out)}")


if __name__ == "__main__":
    main()

"""Benchmark the response models on the default twin (issue 3 targets).

Measures, for the CNN, LN and rotation-equivariant cores (Gaussian readout) and the CNN with the
factorised readout: mean FEVE (neurons with FEV ≥ 0.15), mean correlation to average and
single-trial correlation against the ground-truth ceiling (the twin's rates scored with the same
metrics), parameter counts, training time to early stopping, training throughput (images/s,
forward + backward) and peak memory; plus a learning curve (training images vs FEVE) for the CNN.

Usage: .venv/bin/python bench/models.py [--profile default] [--threads 1] [--quick] [--models ...] [--tag T] [--set NAME VALUE ...]
Writes bench/results/models<_quick><_T>.json (e.g. run ``--models cnn+gaussian ln+gaussian --tag cnn_ln``,
``--models rotation+gaussian cnn+factorized --tag rotation_factorized`` and ``--models curve --tag
curve`` as three processes; the curve's full-size point is the cached CNN fit). Fits are cached
(``V1NB_CACHE``): a cached fit reports the timings of the run that trained it (``"cached": true``). ``--set rotation_features 2 --set rotation_hidden_features 4 --models rotation+gaussian --tag rotation_small`` times a variant.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from v1nb import metrics
from v1nb.data import select_tier, twin
from v1nb.io import write_json
from v1nb.models import fit
from v1nb.models.curves import learning_curve

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def score(model, ds) -> dict:
    test = select_tier(ds, "test")
    m = metrics.evaluate(test["responses"], model.predict(ds, "test"))
    h = model.history_
    return {
        "mean_feve": m.attrs["mean_feve"], "n_reliable": m.attrs["n_reliable"],
        "correlation_to_average": float(m["correlation_to_average"].mean()),
        "single_trial_correlation": float(m["single_trial_correlation"].mean()),
        "parameters": model.n_parameters(), "core_parameters": model.n_parameters("core"),
        "readout_parameters": model.n_parameters("readout"),
        "epochs": len(h["epochs"]) - 1, "best_epoch": h["best_epoch"], "lr_decays": h["lr_decays"],
        "stopped": h["stopped"], "train_seconds": h["train_seconds"], "wall_seconds": h.get("wall_seconds"),
        "cpu_seconds": h.get("cpu_seconds"),
        "images_per_second": h["images_per_second"], "best_val_corr": h["best_val_corr"],
        "images_per_cpu_second": h.get("images_per_cpu_second"),
        "val_curve": [e["val_corr"] for e in h["epochs"]],
        "loadavg_after": os.getloadavg(),
    }


def _parse(value: str) -> int | float | bool | str:
    """A command-line value as the type it reads as (int, float, bool or text)."""
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def name_of(args: argparse.Namespace) -> str:
    return "models" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="twin:quick and few epochs (smoke test)")
    parser.add_argument("--models", nargs="*", default=["cnn+gaussian", "ln+gaussian", "rotation+gaussian",
                                                         "cnn+factorized", "curve"],
                        help="what to run (run subsets in parallel processes with different --tag)")
    parser.add_argument("--tag", default="", help="suffix of the result file: models<_tag>.json")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a model setting for every fit, e.g. --set rotation_features 2 (repeatable)")
    args = parser.parse_args()
    profile = "quick" if args.quick else args.profile
    extra = dict(max_epochs=5) if args.quick else {}
    extra |= {name: _parse(value) for name, value in args.set}  # make_config checks names and types
    torch.set_num_threads(args.threads)
    out: dict = {"profile": profile, "threads": args.threads, "cpu_count": os.cpu_count(), "settings": extra,
                 "loadavg_start": os.getloadavg(), "argv": sys.argv[1:]}
    start = time.perf_counter()
    ds = twin(profile, seed=0)
    out["data_seconds"] = time.perf_counter() - start
    ceiling = metrics.ceiling(ds)
    out["ceiling"] = {"mean_feve": ceiling.attrs["mean_feve"], "n_reliable": ceiling.attrs["n_reliable"],
                      "correlation_to_average": float(ceiling["correlation_to_average"].mean()),
                      "single_trial_correlation": float(ceiling["single_trial_correlation"].mean())}
    print(f"twin:{profile}: {dict(ds.sizes)}; ceiling {out['ceiling']}", flush=True)
    out["models"] = {}
    for name in args.models:
        if name == "curve":
            continue
        core, readout = name.split("+")
        rss_before = peak_rss_mb()
        # cached fits keep the history (timings) of the run that trained them; "cached" says which
        model = fit(ds, core, readout, seed=0, progress=False, num_threads=args.threads, **extra)
        result = score(model, ds)
        result["cached"] = model.history_.get("cached")
        result["peak_rss_mb"] = peak_rss_mb()
        result["peak_rss_before_mb"] = rss_before
        for name in ("correlation_to_average", "single_trial_correlation"):
            result[f"{name}_fraction_of_ceiling"] = result[name] / out["ceiling"][name]
        out["models"][f"{core}+{readout}"] = result
        write_json(RESULTS / f"{name_of(args)}.json", out)  # partial results survive an interrupted run
        print(f"{core}+{readout}: FEVE {result['mean_feve']:.3f}, corr-to-avg {result['correlation_to_average']:.3f} "
              f"({result['correlation_to_average_fraction_of_ceiling']:.2f} of ceiling), "
              f"{result['parameters']} params ({result['core_parameters']} core), "
              f"{result['train_seconds']:.0f} s, {result['epochs']} epochs, "
              f"{result['images_per_second']:.0f} img/s, load {os.getloadavg()[0]:.1f}", flush=True)
    models = out["models"]
    if "cnn+gaussian" in models and "ln+gaussian" in models:
        out["feve_cnn_minus_ln"] = models["cnn+gaussian"]["mean_feve"] - models["ln+gaussian"]["mean_feve"]
    if "curve" in args.models:
        n_train = int(((ds["tier"].values == "train") & (ds["image_id"].values >= 0)).sum())
        sizes = sorted({max(50, n_train // 8), n_train // 4, n_train // 2, n_train})
        curve = learning_curve(ds, sizes, "cnn", "gaussian", seed=0, use_cache=True, progress=False,
                               num_threads=args.threads, **extra)
        out["learning_curve"] = {k: curve[k].values.tolist() for k in curve.data_vars} | {
            "n_train": curve["n_train"].values.tolist()}
        print("learning curve:", out["learning_curve"], flush=True)
    out["total_seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = peak_rss_mb()
    out["loadavg_end"] = os.getloadavg()
    path = write_json(RESULTS / f"{name_of(args)}.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

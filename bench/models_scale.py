"""Does the model code fit a Sensorium-sized problem in memory? (issue 3)

Trains the default CNN core + Gaussian readout for a few epochs on a twin with ≈8,000 neurons,
36×64 images and a few thousand training trials, and records peak resident memory (must stay well
under 24 GB), time per epoch and throughput.

Usage: .venv/bin/python bench/models_scale.py [--neurons 8000] [--epochs 3] [--threads 1]
Writes bench/results/models_scale.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import torch

from v1nb import metrics
from v1nb.data import select_tier, twin
from v1nb.io import write_json
from v1nb.models import ResponseModel

RESULTS = Path(__file__).parent / "results"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=8000)
    parser.add_argument("--train", type=int, default=4000, help="training images (one trial each)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"args": vars(args), "loadavg_start": os.getloadavg()}
    start = time.perf_counter()
    ds = twin("default", seed=0, n_neurons=args.neurons, n_train=args.train)
    out["data_seconds"] = time.perf_counter() - start
    out["sizes"] = dict(ds.sizes)
    out["peak_rss_gb_after_data"] = peak_rss_gb()
    print(f"twin: {out['sizes']} in {out['data_seconds']:.0f} s, peak RSS {out['peak_rss_gb_after_data']:.2f} GB",
          flush=True)
    model = ResponseModel("cnn", "gaussian", random_state=0, max_epochs=args.epochs, progress=True).fit(ds)
    h = model.history_
    out["epochs"] = h["epochs"]
    out["train_seconds"] = h["train_seconds"]
    out["seconds_per_epoch"] = h["train_seconds"] / max(len(h["epochs"]) - 1, 1)
    out["images_per_second"] = h["images_per_second"]
    out["parameters"] = model.n_parameters()
    test = select_tier(ds, "test")
    m = metrics.evaluate(test["responses"], model.predict(ds, "test"))
    out["correlation_to_average"] = float(m["correlation_to_average"].mean())
    out["mean_feve"] = m.attrs["mean_feve"]
    out["embeddings_shape"] = list(model.embeddings().shape)
    out["peak_rss_gb"] = peak_rss_gb()
    out["loadavg_end"] = os.getloadavg()
    out["total_seconds"] = time.perf_counter() - start
    print(f"{args.epochs} epochs: {out['seconds_per_epoch']:.0f} s/epoch, {out['images_per_second']:.0f} img/s, "
          f"peak RSS {out['peak_rss_gb']:.2f} GB, corr-to-avg {out['correlation_to_average']:.3f} "
          f"(after {args.epochs} epochs only)", flush=True)
    print(f"wrote {write_json(RESULTS / 'models_scale.json', out)}")


if __name__ == "__main__":
    main()

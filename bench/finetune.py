"""Frozen-core fine-tunes: the core's output stored once per image against the core run on every batch.

A fine-tune whose core does not train (``trainable`` ``"no_core"``, ``"readout"`` or ``"readout+head"``:
Part IV's frozen-core and DEC-only fine-tunes, Part V's stage fine-tunes) can read the core's output
for each image from memory (:class:`v1nb.models.training.ImageSource`) instead of running the core
forward on every batch. This bench fine-tunes the same parent both ways on the default twin, one torch
thread, and reports wall seconds per epoch, the speed-up, the memory the stored output takes and the
largest difference in the resulting weights (the two must agree up to floating-point rounding).

The parent is a default CNN + Gaussian readout trained for ``--parent-epochs`` (its quality does not
matter for speed). Each fine-tune runs ``--epochs`` epochs without early stopping.

Usage: .venv/bin/python bench/finetune.py [--epochs 3] [--parent-epochs 1] [--trainable no_core readout]
Writes bench/results/finetune.json.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from v1nb.data import twin
from v1nb.io import write_json
from v1nb.machine import machine
from v1nb.models import ResponseModel
from v1nb.models import training
from v1nb.provenance import provenance

RESULTS = Path(__file__).parent / "results"


def fine_tune(ds, parent: ResponseModel, trainable: str, epochs: int, store: bool,
              **settings) -> tuple[ResponseModel, float]:
    """One fine-tune of ``parent`` (stored core output or not); the model and its wall seconds.
    ``settings``: further model settings (e.g. ``device``)."""
    saved = training.FEATURE_CACHE_BYTES
    training.FEATURE_CACHE_BYTES = saved if store else 0  # no room: the core runs on every batch
    try:
        start = time.perf_counter()
        model = ResponseModel(parent.core, "gaussian", 1, trainable=trainable, max_epochs=epochs, early_stopping=False,
                              **{"num_threads": 1, "progress": False, **settings}).fit(ds, parent=parent)
        return model, time.perf_counter() - start
    finally:
        training.FEATURE_CACHE_BYTES = saved


def max_weight_difference(a: ResponseModel, b: ResponseModel) -> float:
    """Largest absolute difference between the two fitted networks' weights and buffers."""
    sa, sb = a.network_.state_dict(), b.network_.state_dict()
    return max(float((sa[k].double().cpu() - sb[k].double().cpu()).abs().max()) for k in sa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parent-epochs", type=int, default=1)
    parser.add_argument("--trainable", nargs="+", default=["no_core", "readout"])
    parser.add_argument("--cores", nargs="+", default=["cnn", "rotation"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    ds = twin("default", seed=0)
    before = machine()
    rows = []
    for core in args.cores:
        rows += compare(ds, core, args)
    out = {"benchmark": "finetune", "data": "twin:default", "threads": 1, "parent_epochs": args.parent_epochs,
           "rows": rows, "machine_before": before, "machine_after": machine(), "provenance": provenance()}
    write_json(RESULTS / "finetune.json", out)


def compare(ds, core: str, args) -> list[dict]:
    """Per-batch against stored core output for each ``args.trainable``, one parent of ``core``."""
    parent = ResponseModel(core, "gaussian", 0, max_epochs=args.parent_epochs, early_stopping=False, num_threads=1,
                           progress=False).fit(ds)
    rows = []
    for trainable in args.trainable:
        per_batch, t_batch = fine_tune(ds, parent, trainable, args.epochs, store=False)
        stored, t_stored = fine_tune(ds, parent, trainable, args.epochs, store=True)
        diff = max_weight_difference(stored, per_batch)
        with torch.no_grad():
            shape = stored.network_.core_features(torch.zeros(1, 1, *stored.image_shape_)).shape[1:]
        stored_mb = ds.sizes["image"] * int(np.prod(shape)) * 4 / 2 ** 20
        row = {"core": core, "trainable": trainable, "epochs": args.epochs,
               "seconds_per_batch_core": round(t_batch, 2), "seconds_stored_core": round(t_stored, 2),
               "seconds_per_epoch_per_batch_core": round(t_batch / args.epochs, 2),
               "seconds_per_epoch_stored_core": round(t_stored / args.epochs, 2),
               "speedup": round(t_batch / t_stored, 2), "stored_output_mb": round(stored_mb, 1),
               "core_output_shape": list(shape), "max_weight_difference": diff,
               "core_output_stored": [per_batch.history_["core_output_stored"], stored.history_["core_output_stored"]]}
        rows.append(row)
        print(f"{core:<9} {trainable:<10} per batch {t_batch:7.1f} s  stored {t_stored:7.1f} s  ×{t_batch / t_stored:.2f}  "
              f"({stored_mb:.0f} MB stored, max weight difference {diff:.1e})", flush=True)
    return rows


if __name__ == "__main__":
    main()

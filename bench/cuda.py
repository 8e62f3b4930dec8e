"""The CUDA path of training, checked in one short run on a GPU machine (issue 11: "and on a GPU when one is present").

Every check runs in order and records its outcome; a failing check records its error and the rest
still run, so one pass on a lent GPU answers every question at once:

``fit``
    The default CNN + Gaussian readout (and, on the default twin, the rotation core) fitted on the
    device with the budget of the twin's profile: time, images per second, mean FEVE (the issue's
    ranges on the CPU: CNN 0.72-0.73, rotation 0.745-0.76), and on the quick twin the same fit on
    the CPU beside it (a GPU's sums run in another order, so the two fits agree in quality, not
    bit for bit).
``frozen_core``
    A frozen-core fine-tune with the core's output stored once (``ImageSource.freeze``) against the
    core run on every batch: largest weight difference (the stored path must be the same fit).
``fit_seeds``
    :func:`v1nb.models.fit_seeds` with a GPU present (fits run one after another in this process)
    and a second call that must load both from the cache without training.
``finetunes``
    A DEC fine-tune and a fine-tune of each interaction stage (attention, normalisation,
    temporal: the one that reads the model's own earlier predictions) on the device.
``portable``
    A model fitted on the device, saved, loaded on the CPU: its CPU predictions against the
    device's.
``attention_memory``
    One training step of the attention stage over 8,000 neurons: peak device memory (target on
    the CPU: 4 GB).

Usage (on the GPU machine, from the repository root; PyTorch, xarray, scikit-learn, scikit-image,
scipy, pandas, seaborn and tqdm come with its image)::

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 bench/cuda.py --out $OUT/cuda.json

``--device cpu --profiles quick`` runs the same checks on the CPU (what the test of this script and
a session without a GPU can do). Writes ``bench/results/cuda.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "cuda.json"


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "cuda_available": torch.cuda.is_available()}
    if device.type == "cuda":
        info |= {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version()}
    return info


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_fit(ds, device: torch.device, core: str = "cnn", **settings: Any):
    """A fit on ``device``, not cached; the model and a record of its time and quality."""
    from v1nb.models import ResponseModel

    synchronise(device)
    start = time.perf_counter()
    model = ResponseModel(core, "gaussian", 0, device=device.type, progress=False, **settings).fit(ds)
    synchronise(device)
    seconds = time.perf_counter() - start
    scores = model.evaluate(ds, "test")
    epochs = len(model.history_["epochs"]) - 1
    n_train = int(model.history_.get("n_train", 0))
    return model, {"core": core, "device": device.type, "seconds": round(seconds, 2), "epochs": epochs,
                   "images_per_second": round(epochs * n_train / seconds, 1) if n_train else None,
                   "mean_feve": float(scores.attrs["mean_feve"]),
                   "single_trial_correlation": float(np.nanmean(scores["single_trial_correlation"].values))}


def check_fit(twins: dict, device: torch.device) -> dict:
    from v1nb.models.budgets import budget_settings

    out = {}
    for profile, ds in twins.items():
        training = budget_settings("quick" if profile == "quick" else "standard", f"twin:{profile}")
        _, out[f"{profile}_cnn"] = timed_fit(ds, device, "cnn", **training)
        if profile == "quick" and device.type != "cpu":
            _, out["quick_cnn_cpu"] = timed_fit(ds, torch.device("cpu"), "cnn", **training)
            out["quick_feve_device_minus_cpu"] = out["quick_cnn"]["mean_feve"] - out["quick_cnn_cpu"]["mean_feve"]
        if profile != "quick":
            _, out[f"{profile}_rotation"] = timed_fit(ds, device, "rotation", **training)
    return out


def check_frozen_core(ds, device: torch.device) -> dict:
    from finetune import fine_tune, max_weight_difference  # bench/finetune.py (this folder is on sys.path)

    from v1nb.models import ResponseModel

    parent = ResponseModel("cnn", "gaussian", 0, device=device.type, max_epochs=2, early_stopping=False,
                           progress=False).fit(ds)
    stored, _ = fine_tune(ds, parent, "no_core", 2, store=True, device=device.type)
    per_batch, _ = fine_tune(ds, parent, "no_core", 2, store=False, device=device.type)
    diff = max_weight_difference(stored, per_batch)
    return {"max_weight_difference": diff, "same_fit": diff < 1e-4}


def check_fit_seeds(ds, device: torch.device, cache: Path) -> dict:
    from v1nb.models import fit_seeds, stack_embeddings

    start = time.perf_counter()
    models = fit_seeds(ds, "cnn", "gaussian", [0, 1], cache_dir=cache, device=device.type, max_epochs=3)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = fit_seeds(ds, "cnn", "gaussian", [0, 1], cache_dir=cache, device=device.type, max_epochs=3)
    second = time.perf_counter() - start
    same = all(torch.equal(m.network_.embedding().cpu(), n.network_.embedding().cpu()) for m, n in zip(models, again))
    return {"first_seconds": round(first, 2), "cached_seconds": round(second, 2), "loaded_the_same_fits": same,
            "embeddings_shape": list(stack_embeddings(models).shape)}


def check_finetunes(ds, device: torch.device, cache: Path) -> dict:
    from v1nb.models import fit
    from v1nb.models.dec import finetune_dec

    parent = fit(ds, "cnn", "gaussian", 0, cache_dir=cache, device=device.type, max_epochs=3)
    out = {}
    dec = finetune_dec(ds, parent, n_clusters=4, beta=1.0, epochs=2, cache_dir=cache)
    out["dec"] = {"labels": int(len(np.unique(dec.labels_))), "loss_dec_last": float(dec.history_["epochs"][-1]["loss_dec"])}
    for stage in ("attention", "normalisation", "temporal"):
        model = fit(ds, "cnn", "gaussian", 0, interaction=stage, parent=parent, cache_dir=cache, device=device.type,
                    trainable="no_core", max_epochs=2, lr=0.005)
        out[stage] = {"mean_feve": float(model.evaluate(ds, "test").attrs["mean_feve"]),
                      "epochs": len(model.history_["epochs"]) - 1}
    return out


def check_portable(ds, device: torch.device, folder: Path) -> dict:
    from v1nb.models import ResponseModel

    model = ResponseModel("cnn", "gaussian", 0, device=device.type, max_epochs=2, progress=False).fit(ds)
    on_device = model.predict(ds, "test").values
    path = model.save(folder / "portable.pt")
    loaded = ResponseModel.load(path, ds)  # the cache's loader maps every tensor to the CPU
    on_cpu = loaded.predict(ds, "test").values
    return {"max_prediction_difference": float(np.max(np.abs(on_device - on_cpu)))}


def check_attention_memory(device: torch.device, n: int = 8000, batch: int = 128) -> dict:
    from v1nb.models import ResponseModel
    from v1nb.models.context import Context
    from v1nb.models.network import build_network

    from interactions import cortical_positions  # bench/interactions.py: the positions its CPU memory bench uses

    config = ResponseModel("cnn", "gaussian", 0, interaction="attention").validate()
    positions = cortical_positions(n)
    net = build_network("cnn", "gaussian", config, n, (36, 64), positions=positions, interaction="attention").to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, 36, 64, device=device), torch.rand(batch, n, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronise(device)
    start = time.perf_counter()
    for _ in range(3):
        opt.zero_grad()
        out = net(x, Context())
        (out - y * torch.log(out + 1e-8)).mean().backward()
        opt.step()
    synchronise(device)
    record = {"neurons": n, "batch": batch, "seconds_per_step": round((time.perf_counter() - start) / 3, 4)}
    if device.type == "cuda":
        record["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return record


def run_checks(checks: dict[str, Callable[[], dict]]) -> dict:
    """Each check's result, or its error and traceback; the others run either way."""
    out = {}
    for name, check in checks.items():
        start = time.perf_counter()
        try:
            out[name] = {"ok": True, **check()}
        except Exception as error:  # noqa: BLE001 - a GPU run must report every check, not stop at the first
            out[name] = {"ok": False, "error": f"{type(error).__name__}: {error}",
                         "traceback": traceback.format_exc(limit=6)}
        out[name]["wall_s"] = round(time.perf_counter() - start, 2)
        print(f"{name:<18} {'ok' if out[name]['ok'] else 'FAILED: ' + out[name]['error']} ({out[name]['wall_s']} s)",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--profiles", nargs="+", default=["quick", "default"], choices=["quick", "default"],
                        help="twins to fit in the 'fit' check (the other checks use the quick twin)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here (torch.cuda.is_available() is False); use --device cpu")
    warnings.simplefilter("ignore")
    from v1nb.data import twin
    from v1nb.io import write_json
    from v1nb.machine import machine

    twins = {p: twin(p, seed=0) for p in args.profiles}
    quick = twins.get("quick") or twin("quick", seed=0)
    with tempfile.TemporaryDirectory(prefix="v1nb-cuda-") as tmp:
        tmp = Path(tmp)
        checks = {
            "fit": lambda: check_fit(twins, device),
            "frozen_core": lambda: check_frozen_core(quick, device),
            "fit_seeds": lambda: check_fit_seeds(quick, device, tmp / "cache-seeds"),
            "finetunes": lambda: check_finetunes(quick, device, tmp / "cache-finetunes"),
            "portable": lambda: check_portable(quick, device, tmp),
            "attention_memory": lambda: check_attention_memory(device),
        }
        results = run_checks(checks)
    record = {"benchmark": "cuda", "profiles": args.profiles, "info": device_info(device), "machine": machine(),
              "all_ok": all(r["ok"] for r in results.values()), "checks": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)
    print(f"wrote {args.out}; all checks ok: {record['all_ok']}")


if __name__ == "__main__":
    main()

"""Benchmark the interaction stages (issue 13): memory and time of attention at 8,000 neurons, training cost.

``memory``: a whole network (default CNN core, Gaussian readout, optional stage) over N neurons,
one training step (forward + backward + Adam) on a batch of 128 images of the default twin's size,
each configuration in its own subprocess so that the peak RSS (``ru_maxrss``) is its own.
Target: attention over 8,000 neurons ≤ 4 GB.

``training``: the cost of fine-tuning each stage from the pre-trained baseline on the default twin
against the baseline's own training (process CPU seconds from the fits' histories, which do not
depend on how loaded the machine is; wall seconds too). Target: ≤ 2× the baseline. Fits are
cached (``V1NB_CACHE``), so a second run reads the timings of the run that trained them.

Usage: .venv/bin/python bench/interactions.py [--neurons 8000] [--batch 128] [--steps 3] [--training]
       [--stages attention,normalisation,temporal] [--epochs 10] [--lr 0.005]
Writes bench/results/interactions.json (and interactions_training.json with --training).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from v1nb.machine import machine

RESULTS = Path(__file__).parent / "results"


def cortical_positions(n: int, seed: int = 0):
    """``(n, 3)`` cortical positions (µm) on 3 planes over a field of view scaled with ``n``, at the
    default twin's density (1,000 neurons on 800 × 500 µm)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    side = (n / 1000) ** 0.5
    return torch.stack([torch.rand(n, generator=g) * 800 * side, torch.rand(n, generator=g) * 500 * side,
                        torch.randint(0, 3, (n,), generator=g).float() * 50 + 200], 1)


def one_step(n: int, stage: str, batch: int, steps: int, chunk: int, neighbours: int) -> dict:
    """Time and peak memory of training steps of a network over ``n`` neurons (run in a subprocess)."""
    import torch

    from v1nb.models.context import Context
    from v1nb.models.model import ResponseModel
    from v1nb.models.network import build_network

    torch.set_num_threads(1)
    torch.manual_seed(0)
    # neighbours = 0: each stage's own default (attention 48, normalisation 96)
    extra = {"attention": {"attention_chunk": chunk, **({"attention_neighbours": neighbours} if neighbours else {})},
             "normalisation": {"norm_neighbours": neighbours} if neighbours else {}, "temporal": {}, "none": {}}[stage]
    config = ResponseModel("cnn", "gaussian", 0, interaction=stage, **extra).validate()  # extras with defaults
    positions = cortical_positions(n)
    start = time.perf_counter()
    net = build_network("cnn", "gaussian", config, n, (36, 64), positions=positions, interaction=stage)
    build_seconds = time.perf_counter() - start
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 36, 64)
    y = torch.rand(batch, n)
    lags = net.history_lags
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        ctx = Context(trial=torch.arange(batch), history=torch.rand(batch, lags, n) if lags else None)
        rates = net(x, ctx) if stage != "none" else net(x)
        loss = (rates - y * torch.log(rates + 1e-8)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return {"neurons": n, "stage": stage, "batch": batch, "chunk": chunk, "neighbours": neighbours,
            "build_seconds": build_seconds, "step_seconds": min(times), "steps": steps,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def memory(args) -> list[dict]:
    rows = []
    configs = [("none", 0), ("attention", 0), ("attention", 1000), ("normalisation", 0), ("temporal", 0)]
    for stage, chunk in configs:
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import interactions as b; "
                f"print(json.dumps(b.one_step({args.neurons}, {stage!r}, {args.batch}, {args.steps}, {chunk}, "
                f"{args.neighbours})))")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            rows.append({"stage": stage, "chunk": chunk, "error": out.stderr[-2000:]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1] if "error" not in rows[-1] else f"{stage} chunk={chunk}: FAILED\n{rows[-1]['error']}", flush=True)
    return rows


def training(args) -> dict:
    from v1nb.analysis.interactions import model_scores
    from v1nb.data import twin
    from v1nb.models import fit, fit_many

    ds = twin("default", seed=0)
    base = fit(ds, "cnn", "gaussian", 0, progress=False)
    stages = args.stages.split(",")
    jobs = [{"core": "cnn", "readout": "gaussian", "seed": 0, "interaction": s, "parent": base, "lr": args.lr,
             "max_epochs": args.epochs, "progress": False} for s in stages]
    models = fit_many(ds, jobs)
    out = {"baseline": {"cpu_seconds": base.history_["cpu_seconds"], "train_seconds": base.history_["train_seconds"],
                        "epochs": len(base.history_["epochs"]) - 1, **model_scores(base, ds)}}
    for s, m in zip(stages, models):
        h = m.history_
        out[s] = {"cpu_seconds": h["cpu_seconds"], "train_seconds": h["train_seconds"],
                  "epochs": len(h["epochs"]) - 1, "best_epoch": h["best_epoch"],
                  "cost_ratio_cpu": h["cpu_seconds"] / base.history_["cpu_seconds"], **model_scores(m, ds)}
        print(s, out[s], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=0, help="0: each stage's default")
    parser.add_argument("--training", action="store_true")
    parser.add_argument("--stages", default="attention,normalisation,temporal")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.005)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    from v1nb.io import write_json

    if args.training:
        result = {"machine": machine(), "training": training(args), "machine_after": machine()}
        write_json(RESULTS / "interactions_training.json", result)
        return
    rows = memory(args)
    attention = [r for r in rows if r.get("stage") == "attention" and "peak_rss_mb" in r]
    result = {"machine": machine(), "neurons": args.neurons, "batch": args.batch, "rows": rows,
              "attention_peak_rss_mb": min((r["peak_rss_mb"] for r in attention), default=None),
              "target_mb": 4096, "machine_after": machine()}
    result["meets_target"] = result["attention_peak_rss_mb"] is not None and result["attention_peak_rss_mb"] <= 4096
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}), flush=True)
    write_json(RESULTS / "interactions.json", result)


if __name__ == "__main__":
    main()

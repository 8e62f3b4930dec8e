"""Training throughput of the default CNN, the rotation-equivariant core and the Sensorium-sized core, optionally beside another source tree.

Each measurement trains a fresh model for ``--epochs`` epochs on the default twin (early stopping off
by a large patience) in its own subprocess with a fixed torch thread count, and reads
``images_per_second`` (forward + backward, wall time of the training steps) from the history. With
``--compare PATH`` the same measurements run alternately on the v1nb package found in PATH (e.g. a
``git worktree`` of an earlier commit), so "before" and "after" share one machine and one load.

Configurations: ``cnn`` — the default model (1 and 2 threads); ``rotation`` — the default rotation-equivariant
core with the Gaussian readout (1 thread, as the book's parallel fits run it); ``sensorium`` —
``downsample=1, layers=4, hidden_channels=64, input_kernel=9, hidden_kernel=7, depth_separable=True,
padding=False``, batch 128, 2 threads, 1,000 neurons, 36×64 images.

Usage: .venv/bin/python bench/throughput.py [--compare PATH] [--repeats 2] [--epochs 2] [--configs cnn rotation sensorium]
Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from v1nb.machine import cpu_model

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
CONFIGS = {  # name: (core, settings, thread counts)
    "cnn": ("cnn", {}, (1, 2)),
    "rotation": ("rotation", {}, (1,)),
    "sensorium": ("cnn", dict(downsample=1, layers=4, hidden_channels=64, input_kernel=9, hidden_kernel=7,
                       depth_separable=True, padding=False, batch_size=128), (2,)),
}
CHILD = """
import json, sys, warnings
warnings.simplefilter("ignore")
import torch
import v1nb
from v1nb.data import twin
from v1nb.models import ResponseModel
core, settings = sys.argv[1], json.loads(sys.argv[2])
threads = int(sys.argv[3])
epochs = int(sys.argv[4])
torch.set_num_threads(threads)
ds = twin("default", seed=0)
model = ResponseModel(core, "gaussian", 0, num_threads=threads, max_epochs=epochs, patience=100, progress=False,
                      **settings).fit(ds)
h = model.history_
print(json.dumps({"images_per_second": h["images_per_second"], "images_per_cpu_second": h["images_per_cpu_second"],
                  "train_seconds": h["train_seconds"], "package": v1nb.__file__}))
"""


def measure(tree: Path, core: str, settings: dict, threads: int, epochs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    load = os.getloadavg()[0]
    run = subprocess.run([sys.executable, "-c", CHILD, core, json.dumps(settings), str(threads), str(epochs)],
                         env=env, capture_output=True, text=True, cwd=tree, timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"measurement in {tree} failed:\n{run.stderr[-3000:]}")
    out = json.loads(run.stdout.strip().splitlines()[-1])
    if not Path(out["package"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"expected the v1nb of {tree}, imported {out['package']}")
    return {**out, "loadavg_1min_before": load, "loadavg_1min_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another source tree holding a v1nb package")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    trees = {"this": REPO}
    if args.compare is not None:
        if not (args.compare / "v1nb" / "__init__.py").is_file():
            parser.error(f"--compare {args.compare}: no v1nb package there")
        trees["compare"] = args.compare
    runs = []
    for repeat in range(args.repeats):
        for name in args.configs:
            core, settings, thread_counts = CONFIGS[name]
            for threads in thread_counts:
                for label, tree in trees.items():  # alternate the trees: same load for both
                    result = {"config": name, "threads": threads, "tree": label, "repeat": repeat,
                              **measure(tree, core, settings, threads, args.epochs)}
                    print(json.dumps(result), flush=True)
                    runs.append(result)
    summary = {}
    for name in args.configs:
        for threads in CONFIGS[name][2]:
            for label in trees:
                rates = [r["images_per_second"] for r in runs if (r["config"], r["threads"], r["tree"]) == (name, threads, label)]
                summary[f"{name}/{threads}t/{label}"] = max(rates)
    out = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "epochs": args.epochs, "trees": {k: str(v) for k, v in trees.items()},
           "best_images_per_second": summary, "runs": runs}
    from v1nb.io import write_json

    print(json.dumps(summary, indent=1))
    print(f"wrote {write_json(RESULTS / 'throughput.json', out)}")


if __name__ == "__main__":
    main()

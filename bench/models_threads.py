"""Training throughput of the default model with 1 and 2 torch threads (choice of ``num_threads``).

Times 30 forward + backward steps (batch = the default batch size) of the default CNN + Gaussian
readout on the default twin, alternating 1 and 2 threads ``--repeats`` times, and records the load
average around each measurement: on a shared machine the answer depends on the load.

Usage: .venv/bin/python bench/models_threads.py [--profile default] [--repeats 2]
Writes bench/results/models_threads.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from v1nb.data import twin
from v1nb.io import write_json
from v1nb.models.config import make_config
from v1nb.models.data import initial_bias, prepare
from v1nb.models.network import build_network
from v1nb.models.training import poisson_loss

RESULTS = Path(__file__).parent / "results"


def throughput(data, config, threads: int, steps: int = 30) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network("cnn", "gaussian", config, data.n_neurons, data.image_shape,
                        bias=initial_bias(data.train_responses), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    b = config.batch_size

    def step(i: int) -> None:
        idx = slice(i * b, (i + 1) * b)
        loss = poisson_loss(net(data.images[data.train_images[idx]]), data.train_responses[idx]) + net.regularizer()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)  # warm-up (allocations, kernel selection)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        step(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"threads": threads, "images_per_second": steps * b / wall, "cpu_per_wall": cpu / wall,
            "wall_seconds": wall, "loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = make_config()
    data = prepare(twin(args.profile, seed=0), config, 0)
    runs = []
    for _ in range(args.repeats):
        for threads in (1, 2):
            runs.append(throughput(data, config, threads))
            print(runs[-1], flush=True)
    out = {"profile": args.profile, "cpu_count": os.cpu_count(), "batch_size": config.batch_size, "runs": runs}
    print(f"wrote {write_json(RESULTS / 'models_threads.json', out)}")


if __name__ == "__main__":
    main()

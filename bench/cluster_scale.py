"""Scale of SEC and LDMGI: N = 50,000, D = 64 (budget ≤ 60 s and ≤ 4 GB each), plus the dense
reference (bench/dense_reference.py) against the sparse versions at N = 5,000.

Each measurement runs in its own subprocess, so peak RSS (ru_maxrss) belongs to that method
alone; the time covers ``fit`` only (data generation excluded), as wall time and as process CPU
time (user + sys; on an oversubscribed machine the wall time mostly measures the neighbours). Data: 10 Gaussian clusters in a
10-dimensional latent space, embedded in 64 dimensions by a random orthonormal map plus isotropic
noise (structure of low intrinsic dimension, as embeddings have). The machine is shared: the
load average is recorded with every run.

Run:  .venv/bin/python bench/cluster_scale.py     (→ bench/results/cluster_scale.json)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASES = [("sec", 50_000), ("ldmgi", 50_000), ("sec", 5_000), ("ldmgi", 5_000),
         ("dense_sec", 5_000), ("dense_ldmgi", 5_000)]


def make_data(n: int, d: int = 64, c: int = 10, latent: int = 10, seed: int = 0):
    from sklearn.datasets import make_blobs
    Z, y = make_blobs(n, n_features=latent, centers=c, cluster_std=1.0, center_box=(-8, 8),
                      random_state=seed)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, latent)))
    return Z @ Q.T + 0.1 * rng.standard_normal((n, d)), y


def child(method: str, n: int) -> None:
    sys.path.insert(0, str(HERE))
    from sklearn.metrics import adjusted_rand_score

    X, y = make_data(n)
    if method == "sec":
        from v1nb.cluster import SEC
        fit = lambda: SEC(10, random_state=0).fit_predict(X)  # noqa: E731
    elif method == "ldmgi":
        from v1nb.cluster import LDMGI
        fit = lambda: LDMGI(10, random_state=0).fit_predict(X)  # noqa: E731
    elif method == "dense_sec":
        from dense_reference import dense_sec
        fit = lambda: dense_sec(X, 10)  # noqa: E731
    else:
        from dense_reference import dense_ldmgi
        fit = lambda: dense_ldmgi(X, 10)  # noqa: E731
    load = os.getloadavg()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    labels = fit()
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps(dict(method=method, n=n, d=X.shape[1], seconds=dt, cpu_seconds=cpu,
                          peak_rss_bytes=rss,
                          peak_rss_gb=rss / 1e9, ari=float(adjusted_rand_score(y, labels)),
                          loadavg_start=load, loadavg_end=os.getloadavg(),
                          labels_head=labels[:5].tolist())))


def main() -> dict:
    from v1nb.io import write_json
    from v1nb.provenance import provenance

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    rows = []
    for method, n in CASES:
        p = subprocess.run([sys.executable, __file__, "--child", method, str(n)], env=env,
                           capture_output=True, text=True, check=True)
        row = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{method:12s} N={n:6d}: {row['seconds']:7.2f} s wall, {row['cpu_seconds']:7.2f} s CPU"
              f"  peak RSS {row['peak_rss_gb']:.2f} GB"
              f"  ARI {row['ari']:.3f}  load {row['loadavg_start'][0]:.1f}", flush=True)
    by = {(r["method"], r["n"]): r for r in rows}
    ratios = {m: by[(f"dense_{m}", 5000)]["seconds"] / by[(m, 5000)]["seconds"] for m in ("sec", "ldmgi")}
    cpu_ratios = {m: by[(f"dense_{m}", 5000)]["cpu_seconds"] / by[(m, 5000)]["cpu_seconds"]
                  for m in ("sec", "ldmgi")}
    mem_ratios = {m: by[(f"dense_{m}", 5000)]["peak_rss_gb"] / by[(m, 5000)]["peak_rss_gb"]
                  for m in ("sec", "ldmgi")}
    for m in ratios:
        print(f"dense/sparse at N=5000, {m}: wall {ratios[m]:.1f}x, CPU {cpu_ratios[m]:.1f}x, "
              f"peak RSS {mem_ratios[m]:.1f}x")
    out = dict(runs=rows, dense_over_sparse_time_at_5000=ratios,
               dense_over_sparse_cpu_at_5000=cpu_ratios,
               dense_over_sparse_peak_rss_at_5000=mem_ratios,
               budget=dict(seconds=60, peak_rss_gb=4), cpu_count=os.cpu_count(),
               within_budget={m: by[(m, 50000)]["seconds"] <= 60 and by[(m, 50000)]["peak_rss_gb"] <= 4
                              for m in ("sec", "ldmgi")},
               provenance=provenance(script="bench/cluster_scale.py"))
    write_json(HERE / "results" / "cluster_scale.json", out)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()

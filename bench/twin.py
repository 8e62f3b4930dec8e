"""Benchmark: digital-twin generation time and peak memory per profile.

Each profile runs in a fresh subprocess so that peak memory (``ru_maxrss``) is that profile's
alone. "cold" includes loading the bundled photographs (cached per process afterwards); "warm"
is a second generation with another seed in the same process (skipped for ``large``).

Usage: ``python bench/twin.py [profile ...]`` (default: quick default large).
Writes ``bench/results/twin.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from v1nb.io import write_json
from v1nb.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results" / "twin.json"

_CHILD = r"""
import json, resource, sys, time
profile, warm = sys.argv[1], sys.argv[2] == "1"
t0 = time.perf_counter()
from v1nb.data import twin
t1 = time.perf_counter()
rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ds = twin(profile, seed=0)
t2 = time.perf_counter()
out = dict(profile=profile, import_s=t1 - t0, cold_s=t2 - t1,
           rss_after_imports_mb=rss_imports, n_neurons=ds.sizes["neuron"], n_trials=ds.sizes["trial"],
           n_images=ds.sizes["image"], image_shape=[ds.sizes["y"], ds.sizes["x"]],
           dataset_mb=ds.nbytes / 2**20)
if warm:
    del ds
    t3 = time.perf_counter()
    twin(profile, seed=1)
    out["warm_s"] = time.perf_counter() - t3
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(profile: str) -> dict:
    """Generate one profile in a subprocess and return its measurements."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run([sys.executable, "-c", _CHILD, profile, "0" if profile == "large" else "1"],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"twin profile {profile!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(profiles: list[str]) -> None:
    results = {}
    for profile in profiles:
        r = run(profile)
        results[profile] = r
        warm = f", warm {r['warm_s']:.1f} s" if "warm_s" in r else ""
        print(f"{profile:8s} {r['n_neurons']:6d} neurons × {r['n_trials']} trials: "
              f"cold {r['cold_s']:.1f} s{warm} (imports {r['import_s']:.1f} s), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (after imports {r['rss_after_imports_mb']:.0f} MB), "
              f"dataset {r['dataset_mb']:.0f} MB", flush=True)
    write_json(RESULTS, {"benchmark": "twin", "results": results,
                         "cpu_count": os.cpu_count(), "provenance": provenance()})
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["quick", "default", "large"])

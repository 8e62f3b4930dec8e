"""How the divisive-normalisation stage must be trained to gain: fine-tuned or jointly from scratch.

Usage: ``PYTHONPATH=. python3 bench/normalisation_training.py [--finetunes]`` (default twin, model
seeds 0-2; fits cached in ``$V1NB_CACHE``, the book's cache by default, so the book's own fits are
reused and the book reuses these). Fits the normalisation stage and scores each against the
baseline of the same seed (mean test single-trial correlation, stage minus baseline):

* ``joint_k96`` — core, readout and stage trained together from the start (the baseline's schedule),
  pool over 96 cortical neighbours (the stage's default and
  :data:`v1nb.analysis.interactions.JOINT_SETTINGS`); ``joint_k96_control`` the same on the control
  twin (interactions off), where it must not lose;
* ``joint_k32`` — the same over 32 neighbours (the book's setting before the dense pool);
* with ``--finetunes``: ``finetune_no_core`` (core frozen, lr 0.005, 10 epochs: Part V's first
  design) and ``finetune_all`` (the core training too). Measured 2026-12-05 with the gathered pool:
  gain +0.0006 and +0.0008, pool amplitude 0.004 and 0.010 — the pool stays empty when fine-tuned.

With up to :data:`v1nb.models.interactions.normalisation.DENSE_MAX_NEURONS` neurons the pool runs as
one dense matrix product (the default twin has 1,000), which is what makes 96 neighbours cheap.

Records per variant: gain, its s.d. over seeds, the learned pool amplitude (the twin's is ≈ 0.5), the
median learned exponent, the weight b of embedding similarity in the pool, the Spearman correlation
of the first seed's pool with the twin's (pairs within the coupling radius, as in the attention_maps
chapter), and CPU seconds relative to the baseline's. Writes
``bench/results/normalisation_training.json``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from v1nb.analysis import interactions as inter
from v1nb.io import write_json
from v1nb.machine import machine
from v1nb.models import fit_many
from v1nb.models.budgets import budget_settings
from v1nb.models.interactions.normalisation import DENSE_MAX_NEURONS
from v1nb.provenance import versions

SEEDS = [0, 1, 2]


def correlations(ds, models) -> np.ndarray:
    return np.array([inter.model_scores(m, ds)["correlation"] for m in models])


def summarise(ds, baselines, base_corr, models, truth=None) -> dict:
    s = correlations(ds, models)
    stage = [m.network_.interaction for m in models]
    return {"gain": float((s - base_corr).mean()), "gain_sd": float((s - base_corr).std(ddof=1)),
            "baseline_spread": float(base_corr.std(ddof=1)), "correlation": s.tolist(),
            "pool_amplitude": [inter.pool_amplitude([m]) for m in models],
            "exponent_median": [float(st.log_exponent.detach().exp().median()) for st in stage],
            "cpu_ratio": [m.history_["cpu_seconds"] / base.history_["cpu_seconds"] for m, base in zip(models, baselines)],
            "epochs": [len(m.history_["epochs"]) - 1 for m in models],
            # the learned pool of the first seed against the twin's, pairs within the coupling radius
            # (as the attention_maps chapter measures it), and the learned embedding-similarity weight b
            "pool_spearman": inter.pool_spearman(inter.normalisation_pairs(models[0], ds, truth)) if truth is not None else float("nan"),
            "similarity_weight": [float(st.similarity.detach()) for st in stage]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finetunes", action="store_true",
                        help="also the two fine-tuned variants (12 more fits; see the module docstring)")
    args = parser.parse_args()
    t0 = time.time()
    ds, control = inter.open_twins("twin:default", 0)
    training = budget_settings("auto", "twin:default")
    norm = {"interaction": "normalisation", **training}
    pairs = ((ds, 96), (control, 96), (ds, 32))
    joint_jobs = [{"core": "cnn", "readout": "gaussian", "seed": s, "dataset": d, "norm_neighbours": k, **norm}
                  for d, k in pairs for s in SEEDS]
    base_jobs = [{"core": "cnn", "readout": "gaussian", "seed": s, "dataset": d, **training}
                 for d in (ds, control) for s in SEEDS]
    fitted = fit_many(ds, joint_jobs + base_jobs)  # the longest first
    joint96, joint96_control, joint32 = (fitted[i * 3:(i + 1) * 3] for i in range(3))
    base, base_control = fitted[9:12], fitted[12:15]
    truth = inter.ground_truth(ds)
    scored, scored_control = correlations(ds, base), correlations(control, base_control)  # once, not per variant
    variants = {}
    if args.finetunes:
        for trainable in ("no_core", "all"):
            tuned = fit_many(ds, [{"core": "cnn", "readout": "gaussian", "seed": b.random_state, "parent": b, **norm,
                                   **inter.FINETUNE, "trainable": trainable} for b in base])
            variants[f"finetune_{trainable}"] = summarise(ds, base, scored, tuned, truth)
    variants.update({"joint_k96": summarise(ds, base, scored, joint96, truth),
                     "joint_k96_control": summarise(control, base_control, scored_control, joint96_control),
                     "joint_k32": summarise(ds, base, scored, joint32, truth)})
    out = {"benchmark": "normalisation_training", "twin": "twin:default", "seeds": SEEDS,
           "dense_max_neurons": DENSE_MAX_NEURONS, "n_neurons": int(ds.sizes["neuron"]), "variants": variants,
           "seconds": time.time() - t0, "machine": machine(), "versions": versions()}
    for name, v in out["variants"].items():
        print(f"{name:18s} gain {v['gain']:+.4f} ± {v['gain_sd']:.4f} (spread {v['baseline_spread']:.4f}) "
              f"amplitude {np.mean(v['pool_amplitude']):.3f} pool Spearman {v['pool_spearman']:.3f} "
              f"cpu × {np.mean(v['cpu_ratio']):.2f}")
    write_json("bench/results/normalisation_training.json", out)

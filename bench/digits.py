"""What the two benchmarks on scikit-learn's digits share (``cluster_digits.py``, ``idec_pretraining.py``).

The data as both use it (pixels / 16, so in [0, 1]), k-means' median accuracy over five seeds (the
bar IDEC is held to, as in the slow test ``test_idec_beats_kmeans_on_digits_median_over_seeds``),
and the ``--seeds`` argument. Scripts in this folder import it as ``digits`` (Python puts a
script's folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
from typing import Iterable

import numpy as np

#: k-means seeds of the bar (each k-means keeps the best of 10 initialisations)
KMEANS_SEEDS = range(5)


def load() -> tuple[np.ndarray, np.ndarray]:
    """Digits ``X`` (1,797 × 64, pixels / 16) and labels ``y`` (0-9)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def kmeans_median_accuracy(X: np.ndarray, y: np.ndarray, seeds: Iterable[int] = KMEANS_SEEDS) -> float:
    """Median clustering accuracy of ``KMeans(10, n_init=10)`` over ``seeds``."""
    from sklearn.cluster import KMeans

    from v1nb.cluster import metrics

    return float(np.median([metrics.accuracy(y, KMeans(10, n_init=10, random_state=s).fit_predict(X))
                            for s in seeds]))


def seed_list(text: str) -> list[int]:
    """``--seeds`` as ``0-14`` (a range, both ends included) or ``0,1,2``; an argparse ``type``."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(v) for v in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected non-negative seeds as 0-14 or 0,1,2")
    return seeds

"""Input checks shared by the clustering estimators: finite values, enough samples, duplicates."""

from __future__ import annotations

import warnings

import numpy as np


class DuplicatePointsWarning(UserWarning):
    """X holds identical rows; nearest-neighbour graphs among copies are arbitrary ties."""


def check_n_clusters(n_clusters: int, n_samples: int, name: str = "n_clusters") -> int:
    """Return ``n_clusters`` as int after checking ``1 <= n_clusters <= n_samples``."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {n_clusters!r}")
    if n_clusters < 1:
        raise ValueError(f"{name} must be >= 1, got {n_clusters}")
    if n_clusters > n_samples:
        raise ValueError(
            f"{name}={n_clusters} is larger than the number of samples n_samples={n_samples}; "
            "cannot form more clusters than there are points"
        )
    return int(n_clusters)


def warn_duplicates(X: np.ndarray, n_neighbors: int | None = None) -> int:
    """Warn when ``X`` (N, D) has duplicate rows; return how many rows repeat an earlier one.

    Copies sit at distance zero, so a point with more than ``n_neighbors`` copies has a
    neighbourhood made only of itself: the kNN graph then splits it off as its own component.
    """
    if X.shape[0] < 2:
        return 0
    # Byte view of each row: np.unique on a void dtype is O(N log N) and exact.
    rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    _, counts = np.unique(rows.ravel(), return_counts=True)
    n_dup = int((counts - 1).sum())
    if n_dup:
        worst = int(counts.max())
        extra = ""
        if n_neighbors is not None and worst > n_neighbors:
            extra = (f"; one point occurs {worst} times, more than n_neighbors={n_neighbors}, "
                     "so its copies form an isolated clique in the kNN graph")
        warnings.warn(
            f"X has {n_dup} duplicate rows (of {X.shape[0]}){extra}. Consider removing duplicates "
            "or adding tiny jitter.",
            DuplicatePointsWarning, stacklevel=3,
        )
    return n_dup

"""Input checks shared by the clustering estimators: finite values, enough samples, duplicates.

Degenerate input is a design choice pinned by ``tests/test_cluster_bad_input.py``: when X has
fewer *distinct* rows than ``n_clusters`` every estimator raises a ``ValueError``
(:func:`check_distinct_rows`) rather than warning and returning fewer clusters. Identical points
cannot be told apart, so any split of them is arbitrary (SEC used to return three arbitrary
clusters of identical points; LDMGI failed deep inside ARPACK with LAPACK messages on stderr).
"""

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


def _row_counts(X: np.ndarray) -> np.ndarray:
    """How often each distinct row of ``X`` (N, ...) occurs: (n_distinct,) ints."""
    X = np.ascontiguousarray(X).reshape(X.shape[0], -1)
    if X.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    # +0.0 maps -0.0 to 0.0 so that equal values have equal bytes.
    X = X + X.dtype.type(0) if X.dtype.kind == "f" else X
    # Byte view of each row: np.unique on a void dtype is O(N log N) and exact.
    rows = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    return np.unique(rows.ravel(), return_counts=True)[1]


def check_distinct_rows(X: np.ndarray, n_clusters: int) -> int:
    """Raise unless ``X`` (N, ...) has at least ``n_clusters`` distinct rows; return their number.

    Raises
    ------
    ValueError
        ``"X has d distinct rows (of N), fewer than n_clusters=c ..."``.
    """
    n_distinct = len(_row_counts(X))
    if n_distinct < n_clusters:
        raise ValueError(
            f"X has {n_distinct} distinct rows (of {X.shape[0]}), fewer than n_clusters={n_clusters}: "
            f"identical points cannot be told apart, so any {n_clusters} clusters would be arbitrary. "
            f"Ask for at most {n_distinct} clusters, or check the input (constant features, "
            "a copy of one sample)."
        )
    return n_distinct


def warn_duplicates(X: np.ndarray, n_neighbors: int | None = None, n_clusters: int | None = None) -> int:
    """Warn when ``X`` (N, D) has duplicate rows; return how many rows repeat an earlier one.

    Copies sit at distance zero, so a point with more than ``n_neighbors`` copies has a
    neighbourhood made only of itself: the kNN graph then splits it off as its own component.
    With ``n_clusters`` given, first raise when there are fewer distinct rows than clusters
    (:func:`check_distinct_rows`).
    """
    if n_clusters is not None:
        check_distinct_rows(X, n_clusters)
    if X.shape[0] < 2:
        return 0
    counts = _row_counts(X)
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

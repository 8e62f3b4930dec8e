"""Clustering metrics: accuracy under the best label matching, NMI, ARI, AMI, consistency, silhouette.

All take label vectors of shape (N,) (any hashable labels); scores are symmetric in the two
vectors except :func:`accuracy`, which matches predicted clusters to true classes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"label vectors differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.size == 0:
        raise ValueError("label vectors are empty")
    return a, b


def contingency(labels_true, labels_pred) -> np.ndarray:
    """Contingency table C[i, j] = #{n: true = class i, pred = cluster j}; shape (n_true, n_pred)."""
    a, b = _pair(labels_true, labels_pred)
    return skm.cluster.contingency_matrix(a, b)


def accuracy(labels_true, labels_pred) -> float:
    """Clustering accuracy: fraction correct under the best one-to-one cluster→class matching.

    The matching maximises the matched counts of the contingency table (Hungarian algorithm,
    :func:`scipy.optimize.linear_sum_assignment`). With more clusters than classes the unmatched
    clusters count as errors (and vice versa).
    """
    C = contingency(labels_true, labels_pred)
    r, c = linear_sum_assignment(C, maximize=True)
    return float(C[r, c].sum() / C.sum())


def match_labels(labels_true, labels_pred) -> np.ndarray:
    """``labels_pred`` renamed to the classes of ``labels_true`` they best match (Hungarian).

    Predicted clusters left unmatched keep distinct labels not used by any class (max + 1, ...).
    """
    a, b = _pair(labels_true, labels_pred)
    classes, clusters = np.unique(a), np.unique(b)
    C = contingency(a, b)
    r, c = linear_sum_assignment(C, maximize=True)
    mapping = {clusters[j]: classes[i] for i, j in zip(r, c)}
    out = np.empty(b.shape, dtype=a.dtype if np.issubdtype(a.dtype, np.integer) else object)
    spare = (classes.max() + 1) if np.issubdtype(a.dtype, np.integer) else None
    for j, cl in enumerate(clusters):
        if cl in mapping:
            out[b == cl] = mapping[cl]
        else:
            out[b == cl] = spare if spare is not None else f"unmatched_{cl}"
            spare = spare + 1 if spare is not None else None
    return out


def nmi(labels_true, labels_pred, average_method: str = "arithmetic") -> float:
    """Normalised mutual information; ``average_method`` "arithmetic" (sklearn's default,
    I / mean(H_a, H_b)) or "geometric" (I / √(H_a H_b), Strehl & Ghosh 2002; used by DEC papers)."""
    if average_method not in ("arithmetic", "geometric", "min", "max"):
        raise ValueError("average_method must be 'arithmetic', 'geometric', 'min' or 'max', "
                         f"got {average_method!r}")
    a, b = _pair(labels_true, labels_pred)
    return float(skm.normalized_mutual_info_score(a, b, average_method=average_method))


def ari(labels_true, labels_pred) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 0 for chance, 1 for identical partitions."""
    a, b = _pair(labels_true, labels_pred)
    return float(skm.adjusted_rand_score(a, b))


def ami(labels_true, labels_pred, average_method: str = "arithmetic") -> float:
    """Adjusted mutual information (Vinh et al. 2010)."""
    a, b = _pair(labels_true, labels_pred)
    return float(skm.adjusted_mutual_info_score(a, b, average_method=average_method))


def consistency(labels_a, labels_b) -> float:
    """Cross-fit consistency: ARI between two clusterings of the *same* items (e.g. neurons
    clustered by two model fits or seeds). Symmetric; 1 means the same partition."""
    return ari(labels_a, labels_b)


def silhouette(X, labels, metric: str = "euclidean", sample_size: int | None = None,
               random_state=None) -> float:
    """Mean silhouette coefficient of ``labels`` on ``X`` (N, D); NaN when fewer than 2 or more
    than N − 1 clusters (undefined). ``sample_size`` subsamples for large N (O(N²) otherwise)."""
    X = np.asarray(X)
    labels = np.asarray(labels).ravel()
    if X.shape[0] != labels.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but labels has {labels.shape[0]} entries")
    k = np.unique(labels).size
    if k < 2 or k > X.shape[0] - 1:
        return float("nan")
    return float(skm.silhouette_score(X, labels, metric=metric, sample_size=sample_size,
                                      random_state=random_state))


def summary(labels_true, labels_pred) -> dict[str, float]:
    """All label-comparison scores at once: acc, nmi, nmi_geometric, ari, ami."""
    return {"acc": accuracy(labels_true, labels_pred), "nmi": nmi(labels_true, labels_pred),
            "nmi_geometric": nmi(labels_true, labels_pred, "geometric"),
            "ari": ari(labels_true, labels_pred), "ami": ami(labels_true, labels_pred)}

"""Naive dense SEC and LDMGI, as in the published code: O(N²) memory, O(N³) time.

Kept in bench/ only, as the reference the sparse package versions are timed and checked against.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances


def _knn_dense(X: np.ndarray, k: int) -> np.ndarray:
    D = pairwise_distances(X)
    np.fill_diagonal(D, np.inf)
    return np.argsort(D, axis=1)[:, :k]


def _discretise(F: np.ndarray, c: int, seed: int) -> np.ndarray:
    F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    return KMeans(c, n_init=10, random_state=seed).fit_predict(F)


def dense_sec(X: np.ndarray, c: int, n_neighbors: int = 10, mu: float = 1.0, gamma: float = 1.0,
              seed: int = 0) -> np.ndarray:
    """SEC with dense N × N Laplacian and L_g = γ H (X_c X_cᵀ + γI)⁻¹ H, full eigendecomposition."""
    n, d = X.shape
    Xc = X - X.mean(0)
    g = gamma * (Xc ** 2).sum() / d
    idx = _knn_dense(X, n_neighbors)
    D = pairwise_distances(X)
    sig = np.sort(D, 1)[:, n_neighbors]
    W = np.zeros((n, n))
    rows = np.repeat(np.arange(n), n_neighbors)
    W[rows, idx.ravel()] = np.exp(-D[rows, idx.ravel()] ** 2 / (sig[rows] * sig[idx.ravel()]))
    W = np.maximum(W, W.T)
    dinv = 1 / np.sqrt(W.sum(1))
    L = np.eye(n) - dinv[:, None] * W * dinv[None]
    H = np.eye(n) - 1.0 / n
    Lg = g * H @ np.linalg.solve(Xc @ Xc.T + g * np.eye(n), H)
    _, vecs = np.linalg.eigh(L + mu * Lg)
    return _discretise(vecs[:, :c], c, seed)


def dense_ldmgi(X: np.ndarray, c: int, k: int = 5, lam: float = 1e-2, seed: int = 0) -> np.ndarray:
    """LDMGI with a dense N × N global Laplacian accumulated clique by clique."""
    n = X.shape[0]
    cl = np.hstack([np.arange(n)[:, None], _knn_dense(X, k - 1)])
    Hk = np.eye(k) - 1.0 / k
    spread = np.mean([((X[c_] - X[c_].mean(0)) ** 2).sum() for c_ in cl])
    L = np.zeros((n, n))
    for c_ in cl:
        Xi = Hk @ X[c_]
        L[np.ix_(c_, c_)] += Hk @ np.linalg.inv(Xi @ Xi.T + lam * spread * np.eye(k)) @ Hk
    _, vecs = np.linalg.eigh(L)
    return _discretise(vecs[:, :c], c, seed)

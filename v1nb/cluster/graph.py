"""Sparse k-nearest-neighbour graphs, their connectivity, and normalised Laplacians.

Everything here stays sparse: O(N·k) memory, so graphs over 50,000 points are cheap.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import NearestNeighbors


class DisconnectedGraphWarning(UserWarning):
    """The kNN graph has more connected components than requested clusters."""


def knn_indices(X: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances of each point's ``n_neighbors`` nearest other points.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    n_neighbors : int
        Neighbours per point, excluding the point itself; clipped to N − 1.

    Returns
    -------
    dist, idx : ndarray, shape (N, k)
        Euclidean distances and indices, nearest first; the point itself is never included
        (ties with duplicates are broken so that row i never lists i).
    """
    n = X.shape[0]
    k = int(min(n_neighbors, n - 1))
    if k < 1:
        raise ValueError(f"need at least 2 samples to build a kNN graph, got n_samples={n}")
    # Brute force is the fast path in moderate D (BLAS-backed, chunked by sklearn); trees
    # degrade to brute force above D ≈ 20 anyway.
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X)
    dist, idx = nn.kneighbors(X)
    # Drop self: usually column 0, but with duplicates self may appear later or not at all.
    is_self = idx == np.arange(n)[:, None]
    has_self = is_self.any(axis=1)
    drop = np.where(has_self, is_self.argmax(axis=1), k)  # no self → drop the farthest
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    return dist[keep].reshape(n, k), idx[keep].reshape(n, k)


def knn_graph(X: np.ndarray, n_neighbors: int = 10, mode: str = "connectivity",
              symmetrize: str = "max") -> sp.csr_matrix:
    """Symmetric kNN affinity graph.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    n_neighbors : int
        Neighbours per point (self excluded).
    mode : {"connectivity", "heat"}
        Binary edges, or heat-kernel weights exp(−d²/σ_i σ_j) with σ_i the distance to the
        i-th point's k-th neighbour (self-tuning, Zelnik-Manor & Perona 2004).
    symmetrize : {"max", "mean"}
        How the directed kNN relation becomes undirected: ``max`` = union of edges.

    Returns
    -------
    W : csr_matrix, shape (N, N)
        Non-negative, symmetric, zero diagonal.
    """
    dist, idx = knn_indices(X, n_neighbors)
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    if mode == "connectivity":
        vals = np.ones(n * k)
    elif mode == "heat":
        sigma = np.maximum(dist[:, -1], np.finfo(float).tiny)
        vals = np.exp(-(dist ** 2) / (sigma[:, None] * sigma[idx])).ravel()
    else:
        raise ValueError(f"mode must be 'connectivity' or 'heat', got {mode!r}")
    W = sp.csr_matrix((vals, (rows, idx.ravel())), shape=(n, n))
    if symmetrize == "max":
        W = W.maximum(W.T)
    elif symmetrize == "mean":
        W = 0.5 * (W + W.T)
    else:
        raise ValueError(f"symmetrize must be 'max' or 'mean', got {symmetrize!r}")
    W.setdiag(0)
    W.eliminate_zeros()
    return W.tocsr()


def check_connectivity(W: sp.spmatrix, n_clusters: int, on_error: str = "warn",
                       what: str = "kNN graph") -> int:
    """Count connected components of ``W`` and complain when they exceed ``n_clusters``.

    With more components than clusters the smallest Laplacian eigenvectors are component
    indicators, so the clustering would report graph components instead of structure.

    Parameters
    ----------
    W : sparse matrix, shape (N, N)
    n_clusters : int
    on_error : {"warn", "raise", "ignore"}

    Returns
    -------
    n_components : int
    """
    n_comp, labels = connected_components(W, directed=False)
    if n_comp > n_clusters and on_error != "ignore":
        sizes = np.sort(np.bincount(labels))[::-1]
        msg = (f"the {what} has {n_comp} connected components but n_clusters={n_clusters}; "
               f"component sizes (largest first): {sizes[:10].tolist()}"
               f"{' ...' if n_comp > 10 else ''}. The spectral embedding will separate "
               "components rather than clusters: increase n_neighbors, remove duplicate or "
               "outlying points, or raise n_clusters.")
        if on_error == "raise":
            raise ValueError(msg)
        if on_error != "warn":
            raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', got {on_error!r}")
        warnings.warn(msg, DisconnectedGraphWarning, stacklevel=3)
    return int(n_comp)


def normalized_laplacian(W: sp.spmatrix) -> sp.csr_matrix:
    """Symmetric normalised Laplacian I − D^{−1/2} W D^{−1/2}; spectrum in [0, 2].

    Isolated vertices (degree 0) get a zero row, i.e. they are left out of the coupling.
    """
    W = sp.csr_matrix(W, dtype=float)
    deg = np.asarray(W.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        dinv = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
    Dm = sp.diags(dinv)
    L = sp.identity(W.shape[0], format="csr") - Dm @ W @ Dm
    return L.tocsr()


def component_indicators(W: sp.spmatrix) -> np.ndarray:
    """Orthonormal indicators of the connected components of ``W``; shape (N, n_components).

    Column j is 1/√|C_j| on component C_j and 0 elsewhere: a basis of the null space of any
    Laplacian-like operator that annihilates constants on each component.
    """
    n_comp, labels = connected_components(W, directed=False)
    sizes = np.bincount(labels, minlength=n_comp)
    Q = np.zeros((W.shape[0], n_comp))
    Q[np.arange(W.shape[0]), labels] = 1.0 / np.sqrt(sizes[labels])
    return Q

"""Local Discriminant Models and Global Integration (Yang, Xu, Nie, Yan & Zhuang 2010).

Each point i with its k − 1 nearest neighbours forms a clique N_i (k points). A local ridge
discriminant model on the centred clique X̃_i = H_k X_{N_i} (k × D) yields the local Laplacian

    L_i = H_k (X̃_i X̃_iᵀ + λ I_k)⁻¹ H_k          (k × k),

and the global Laplacian integrates them, L = Σ_i S_i L_i S_iᵀ (S_i selects the clique). L is
sparse with at most N·k² non-zeros, assembled here from a batched k × k inverse in one COO
build (duplicates summed), so memory is O(N·k²) rather than the O(N²) of the published dense code.
The c smallest eigenvectors of L (the constant vector among them) are discretised by spectral
rotation or k-means on row-normalised eigenvectors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from v1nb.cluster._base import SpectralDiscretizerMixin
from v1nb.cluster.graph import check_connectivity, component_indicators, knn_indices
from v1nb.cluster.spectral import smallest_eigenvectors


def local_discriminant_laplacian(X: np.ndarray, cliques: np.ndarray, lam: float,
                                 chunk: int = 20000) -> sp.csr_matrix:
    """Assemble L = Σ_i S_i H (X̃_i X̃_iᵀ + λI)⁻¹ H S_iᵀ sparsely.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    cliques : ndarray of int, shape (N, k)
        Row i lists the clique of point i (the point itself first).
    lam : float
        Ridge λ > 0 of the local models.
    chunk : int
        Cliques processed per batch (bounds the (chunk, k, D) temporary).

    Returns
    -------
    L : csr_matrix, shape (N, N)
        Symmetric PSD, at most N·k² non-zeros.
    """
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    n, k = cliques.shape
    H = np.eye(k) - 1.0 / k
    blocks = np.empty((n, k, k))
    for start in range(0, n, chunk):
        cl = cliques[start:start + chunk]
        Xi = X[cl]                                   # (b, k, D)
        Xi = Xi - Xi.mean(axis=1, keepdims=True)      # H_k X_i
        G = Xi @ Xi.transpose(0, 2, 1)                # (b, k, k) centred Gram
        G[:, np.arange(k), np.arange(k)] += lam
        Li = np.linalg.inv(G)
        blocks[start:start + chunk] = H @ Li @ H
    blocks = 0.5 * (blocks + blocks.transpose(0, 2, 1))
    rows = np.broadcast_to(cliques[:, :, None], (n, k, k)).ravel()
    cols = np.broadcast_to(cliques[:, None, :], (n, k, k)).ravel()
    L = sp.coo_matrix((blocks.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    L.sum_duplicates()
    return L


class LDMGI(SpectralDiscretizerMixin):
    """Local Discriminant Models and Global Integration (Yang et al. 2010), sparse.

    Parameters
    ----------
    n_clusters : int, default=8
    n_neighbors : int, default=5
        Clique size k *including* the point (the paper's k = 5: the point and 4 neighbours).
    lam : float, default=1e-2
        Ridge λ of the local discriminant models, *relative* to the mean squared distance of
        clique members to their clique mean (λ_abs = lam · that mean), so that rescaling X
        leaves the clustering unchanged. The paper sweeps λ over 1e-8 … 1e8.
    discretization : {"rotation", "kmeans"}, default="kmeans"
        k-means on row-normalised eigenvectors (Ng, Jordan & Weiss 2002) or spectral rotation
        (Yu & Shi 2003). k-means is the default: on digits it is the more accurate of the two
        (LDMGI 0.89 vs 0.82, SEC 0.85 vs 0.81), notably when a small graph component takes one
        eigenvector to itself.
    n_init : int, default=50
        Restarts of the discretisation. Many restarts make the labels robust to the last-bit
        differences that BLAS thread counts introduce in the eigenvectors (with 10, digits ACC
        moved between 0.82 and 0.89 with the thread count); they cost little next to the graph.
    on_disconnected : {"warn", "raise", "ignore"}, default="warn"
        What to do when the clique graph has more components than ``n_clusters``.
    random_state : int, RandomState or None

    Attributes
    ----------
    labels_ : ndarray of int, shape (N,)
    embedding_ : ndarray, shape (N, c)
        The c smallest eigenvectors of L.
    eigenvalues_ : ndarray, shape (c,)
    laplacian_ : csr_matrix, shape (N, N)
    n_components_graph_ : int

    Raises
    ------
    ValueError
        From :meth:`fit` when X holds NaN or infinity, has fewer samples than ``n_clusters``, or
        has fewer *distinct* rows than ``n_clusters`` ("X has d distinct rows (of N), fewer than
        n_clusters=c"): identical points cannot be told apart, so the estimator refuses rather
        than return arbitrary clusters (a design choice pinned by
        ``tests/test_cluster_bad_input.py``). Otherwise duplicate rows only warn
        (:class:`~v1nb.cluster.DuplicatePointsWarning`).

    Notes
    -----
    LDMGI is transductive (no ``predict``): the embedding exists only for the training points.
    """

    def __init__(self, n_clusters: int = 8, n_neighbors: int = 5, lam: float = 1e-2,
                 discretization: str = "kmeans", n_init: int = 50,
                 on_disconnected: str = "warn", random_state=None):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.lam = lam
        self.discretization = discretization
        self.n_init = n_init
        self.on_disconnected = on_disconnected
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster ``X`` of shape (N, D). ``y`` is ignored."""
        X = self._validate_input(X)
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)) \
                or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors (clique size incl. the point) must be an int >= 2, "
                             f"got {self.n_neighbors!r}")
        c = self._check_common(X, self.n_neighbors - 1)
        rng = check_random_state(self.random_state)
        n = X.shape[0]
        if c == 1:
            self._fit_one_cluster(n)
            return self
        _, idx = knn_indices(X, self.n_neighbors - 1)
        cliques = np.hstack([np.arange(n)[:, None], idx])
        spread = X[cliques] - X[cliques].mean(axis=1, keepdims=True) if n <= 20000 else None
        if spread is None:  # avoid the (N, k, D) temporary on large inputs: sample cliques
            sub = rng.choice(n, 20000, replace=False)
            spread = X[cliques[sub]] - X[cliques[sub]].mean(axis=1, keepdims=True)
        scale = float((spread ** 2).sum(axis=2).mean())
        lam_abs = self.lam * max(scale, np.finfo(float).tiny)
        L = local_discriminant_laplacian(X, cliques, lam_abs)
        self.laplacian_ = L
        self.n_components_graph_ = check_connectivity(L, c, self.on_disconnected,
                                                      what="clique graph")
        # With several components, L's null space (the component indicators) is degenerate and
        # Lanczos would miss most of it: hand it over explicitly.
        Q = component_indicators(L) if self.n_components_graph_ > 1 else None
        self.eigenvalues_, F = smallest_eigenvectors(L, c, random_state=rng, null_basis=Q)
        self.embedding_ = F
        self.labels_ = self._discretize_fit(F, rng)
        return self

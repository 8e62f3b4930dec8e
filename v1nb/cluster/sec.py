"""Spectral Embedded Clustering (Nie, Xu, Tsang & Zhang 2011).

Objective over the relaxed cluster indicator F (N × c, FᵀF = I), linear map W (D × c), offset b:

    min  tr(Fᵀ L̃ F) + μ (‖X W + 1 bᵀ − F‖² + γ ‖W‖²),

L̃ the normalised Laplacian of a kNN graph. With X centred (X_c = H X) the inner problem is
closed-form: b = Fᵀ1/N and W = (X_cᵀX_c + γI)⁻¹ X_cᵀ F. Substituting back leaves

    min tr(Fᵀ (L̃ + μ L_g) F),   L_g = H − X_c (X_cᵀX_c + γI)⁻¹ X_cᵀ  ( = γ H (X_cX_cᵀ + γI)⁻¹ H ),

whose c smallest eigenvectors are F. L_g is N × N and dense, so it is applied as a
LinearOperator: one product costs O(N·D) after one D × D Cholesky factorisation. Its spectrum is in
[0, 1] and L̃'s in [0, 2], so u = 2 + μ bounds the spectrum of the sum.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as sla
from sklearn.utils import check_random_state

from v1nb.cluster._base import SpectralDiscretizerMixin
from v1nb.cluster.graph import check_connectivity, knn_graph, normalized_laplacian
from v1nb.cluster.spectral import smallest_eigenvectors


def global_regression_operator(Xc: np.ndarray, gamma: float) -> sla.LinearOperator:
    """L_g = H − X_c (X_cᵀX_c + γI)⁻¹ X_cᵀ as a LinearOperator (never N × N).

    Parameters
    ----------
    Xc : ndarray, shape (N, D)
        Column-centred data.
    gamma : float
        Ridge penalty (> 0).

    Returns
    -------
    LinearOperator, shape (N, N)
        Symmetric PSD with spectrum in [0, 1]; the constant vector is in its null space.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    n, d = Xc.shape
    cho = la.cho_factor(Xc.T @ Xc + gamma * np.eye(d))

    def matmat(V):
        V = np.asarray(V, dtype=float)
        V2 = V.reshape(n, -1)
        HV = V2 - V2.mean(axis=0)
        out = HV - Xc @ la.cho_solve(cho, Xc.T @ V2)
        return out.reshape(V.shape)

    return sla.LinearOperator((n, n), matvec=matmat, matmat=matmat, rmatvec=matmat,
                              dtype=float)


class SEC(SpectralDiscretizerMixin):
    """Spectral Embedded Clustering (Nie et al. 2011), sparse and matrix-free.

    Parameters
    ----------
    n_clusters : int, default=8
    n_neighbors : int, default=10
        Neighbours per point in the kNN graph (self excluded).
    mu : float, default=1.0
        Weight μ of the linear-regression term.
    gamma : float, default=1.0
        Ridge penalty γ on W, *relative* to the mean per-feature sum of squares of the centred
        data (γ_abs = gamma · ‖X_c‖²_F / D), so that rescaling X leaves the clustering unchanged.
    graph : {"heat", "connectivity"}, default="heat"
        Edge weights (self-tuning heat kernel or binary); see :func:`v1nb.cluster.graph.knn_graph`.
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
        What to do when the kNN graph has more components than ``n_clusters``.
    random_state : int, RandomState or None
        Seeds the eigensolver start and the discretisation.

    Attributes
    ----------
    labels_ : ndarray of int, shape (N,)
    embedding_ : ndarray, shape (N, c)
        The relaxed indicator F.
    eigenvalues_ : ndarray, shape (c,)
    coef_ : ndarray, shape (D, c)
        W, the learned linear map used by :meth:`predict`.
    intercept_ : ndarray, shape (c,)
        b.
    mean_ : ndarray, shape (D,)
    n_components_graph_ : int
        Connected components of the kNN graph.

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
    ``predict`` embeds new points by (x − mean_) W + b and discretises them with the same rotation
    (or k-means) as the training embedding. For training points this regression embedding
    approximates F but is not identical, so ``predict(X_train)`` can differ from ``labels_`` on a
    few points.
    """

    def __init__(self, n_clusters: int = 8, n_neighbors: int = 10, mu: float = 1.0,
                 gamma: float = 1.0, graph: str = "heat", discretization: str = "kmeans",
                 n_init: int = 50, on_disconnected: str = "warn", random_state=None):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.mu = mu
        self.gamma = gamma
        self.graph = graph
        self.discretization = discretization
        self.n_init = n_init
        self.on_disconnected = on_disconnected
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster ``X`` of shape (N, D). ``y`` is ignored."""
        X = self._validate_input(X)
        c = self._check_common(X, self.n_neighbors)
        if not self.mu >= 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        rng = check_random_state(self.random_state)
        n, d = X.shape
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        scale = max(float((Xc ** 2).sum()) / d, np.finfo(float).tiny)
        gamma_abs = self.gamma * scale
        if c == 1:
            self._fit_one_cluster(n)
        else:
            G = knn_graph(X, self.n_neighbors, mode=self.graph)
            self.n_components_graph_ = check_connectivity(G, c, self.on_disconnected)
            L = sla.aslinearoperator(normalized_laplacian(G))
            Lg = global_regression_operator(Xc, gamma_abs)
            M = L + self.mu * Lg
            self.eigenvalues_, F = smallest_eigenvectors(
                M, c, upper_bound=2.0 + self.mu, random_state=rng)
            self.embedding_ = F
        F = self.embedding_
        # Closed-form W, b for the relaxed F (Nie et al. eq. 11)
        self.coef_ = la.solve(Xc.T @ Xc + gamma_abs * np.eye(d), Xc.T @ F, assume_a="pos")
        self.intercept_ = F.mean(axis=0)
        if c > 1:
            self.labels_ = self._discretize_fit(F, rng)
        return self

    def embed(self, X) -> np.ndarray:
        """Regression embedding (x − mean_) W + b, shape (N, c)."""
        self._fitted()
        X = self._validate_input(X, reset=False)
        return (X - self.mean_) @ self.coef_ + self.intercept_

    def predict(self, X) -> np.ndarray:
        """Labels for new points through the learned linear map; shape (N,)."""
        F = self.embed(X)
        if self.embedding_.shape[1] == 1:
            return np.zeros(F.shape[0], dtype=np.intp)
        return self._discretize_new(F)

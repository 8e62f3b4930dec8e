"""Rotation-invariant clustering of embeddings shaped neuron × rotation × feature (N, R, F).

Each neuron's embedding is only defined up to a cyclic shift along R (its preferred orientation,
Ustyuzhaninov et al. 2020). Three estimators of the clusters, all reporting the per-neuron shift:

``"align"``
    Joint alignment and clustering (shift-invariant k-means): each neuron takes the cluster j and
    shift r minimising ‖x_n − roll(μ_j, r)‖², templates are means of the aligned members.
    k-means++-style seeding with the shift-invariant distance, ``n_init`` restarts, best inertia.
``"dft"``
    Cheap invariants: |DFT over R| per feature (invariant to cyclic shifts), clustered by k-means;
    shifts are then recovered by aligning each cluster's members to its template.
``"marginal"``
    Rotation-marginalised Gaussian mixture: the shift is a latent variable with a uniform prior,
    p(x) = Σ_j π_j (1/R) Σ_r N(roll(x, −r); μ_j, σ_j² I), fitted by EM from the ``"align"``
    solution. Gives a likelihood for held-out neurons (:meth:`score`) and BIC/AIC.

Shift convention: ``X[n] ≈ roll(templates_[labels_[n]], shifts_[n], axis=0)``. Templates are only
defined up to a shift themselves, so compare recovered shifts to ground truth up to one constant
offset per cluster.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from v1nb.cluster._validation import check_n_clusters, warn_duplicates

METHODS = ("align", "dft", "marginal")


def rolled_stack(T: np.ndarray) -> np.ndarray:
    """All cyclic shifts of templates T (K, R, F): out[r, j] = roll(T[j], r, axis=0); (R, K, R, F)."""
    R = T.shape[1]
    return np.stack([np.roll(T, r, axis=1) for r in range(R)], axis=0)


def shift_distances(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Squared distances ‖x_n − roll(μ_j, r)‖², shape (N, R, K), for X (N, R, F), T (K, R, F)."""
    n, R, F = X.shape
    K = T.shape[0]
    Xf = X.reshape(n, -1)
    S = rolled_stack(T).reshape(R * K, -1)
    d = (Xf ** 2).sum(1)[:, None] - 2.0 * Xf @ S.T + (S ** 2).sum(1)[None]
    return np.maximum(d, 0.0).reshape(n, R, K)


def unroll(X: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Undo per-neuron shifts: out[n] = roll(X[n], −shifts[n], axis=0); shape (N, R, F)."""
    R = X.shape[1]
    idx = (np.arange(R)[None, :] + shifts[:, None]) % R
    return np.take_along_axis(X, idx[:, :, None], axis=1)


def dft_features(X: np.ndarray) -> np.ndarray:
    """Shift-invariant features |rfft over R| per feature, flattened; shape (N, (R//2+1)·F)."""
    return np.abs(np.fft.rfft(X, axis=1)).reshape(X.shape[0], -1)


class RotationInvariantClustering(ClusterMixin, BaseEstimator):
    """Cluster (N, R, F) embeddings up to a per-neuron cyclic shift along R.

    Parameters
    ----------
    n_clusters : int, default=8
    method : {"align", "dft", "marginal"}, default="align"
        See the module docstring.
    n_rotations : int or None, default=None
        R. Needed only to pass flattened input (N, R·F) (row-major: rotation outer, feature
        inner); 3-D input carries R itself and must agree when both are given.
    normalize : bool, default=True
        Scale each neuron's embedding to unit Frobenius norm first (Ustyuzhaninov et al.).
    n_init : int, default=10
        Restarts (best objective kept).
    max_iter : int, default=100
        Iterations per restart (alternations or EM steps).
    tol : float, default=1e-6
        Relative log-likelihood change that stops EM (``"marginal"``).
    random_state : int, RandomState or None

    Attributes
    ----------
    labels_ : ndarray of int, shape (N,)
    shifts_ : ndarray of int, shape (N,)
        Recovered shift: X[n] ≈ roll(templates_[labels_[n]], shifts_[n], axis=0).
    templates_ : ndarray, shape (K, R, F)
    aligned_ : ndarray, shape (N, R, F)
        Each (normalised) embedding rolled back by its shift.
    sigma2_ : ndarray, shape (K,)
        Per-cluster isotropic variance of the aligned residuals.
    weights_ : ndarray, shape (K,)
    inertia_ : float
        Σ_n ‖x_n − roll(μ, r)‖² at the solution.
    n_iter_ : int
        Iterations of the kept restart (EM iterations for ``"marginal"``).
    n_rotations_ : int
    """

    def __init__(self, n_clusters: int = 8, method: str = "align", n_rotations: int | None = None,
                 normalize: bool = True, n_init: int = 10, max_iter: int = 100,
                 tol: float = 1e-6, random_state=None):
        self.n_clusters = n_clusters
        self.method = method
        self.n_rotations = n_rotations
        self.normalize = normalize
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------ input
    def _to_3d(self, X, reset: bool) -> np.ndarray:
        X = validate_data(self, X, dtype=[np.float64, np.float32], allow_nd=True, reset=reset,
                          ensure_min_samples=2 if reset else 1)
        X = np.asarray(X, dtype=np.float64)
        R = self.n_rotations
        if R is not None and (isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 1):
            raise ValueError(f"n_rotations must be a positive int or None, got {R!r}")
        if X.ndim == 3:
            if R is not None and X.shape[1] != R:
                raise ValueError(f"X has R={X.shape[1]} rotations (axis 1) but n_rotations={R}")
        elif X.ndim == 2:
            if R is None:
                raise ValueError(
                    f"RotationInvariantClustering expects embeddings of shape (N, R, F) "
                    f"(neuron × rotation × feature); got a 2-D array {X.shape}. Pass a 3-D array "
                    "or set n_rotations=R to reshape flattened (N, R·F) input.")
            if X.shape[1] % R:
                raise ValueError(f"X has {X.shape[1]} columns, not divisible by n_rotations={R}")
            X = X.reshape(X.shape[0], R, X.shape[1] // R)
        else:
            raise ValueError(f"X must be (N, R, F) or flattened (N, R·F); got {X.ndim}-D array "
                             f"of shape {X.shape}")
        if not reset and X.shape[1:] != (self.n_rotations_, self.n_features_per_rotation_):
            raise ValueError(f"X has per-neuron shape {X.shape[1:]}, fitted on "
                             f"{(self.n_rotations_, self.n_features_per_rotation_)}")
        if self.normalize:
            norms = np.sqrt((X ** 2).sum(axis=(1, 2)))
            if reset and np.any(norms == 0):
                warnings.warn(f"{int((norms == 0).sum())} neurons have an all-zero embedding; "
                              "they cannot be normalised and are left at zero", UserWarning,
                              stacklevel=3)
            X = X / np.where(norms > 0, norms, 1.0)[:, None, None]
        return X

    # ------------------------------------------------------------- algorithms
    def _seed(self, X: np.ndarray, K: int, rng) -> np.ndarray:
        """k-means++ seeding under the shift-invariant distance; templates (K, R, F)."""
        n = X.shape[0]
        T = [X[rng.randint(n)]]
        for _ in range(1, K):
            d = shift_distances(X, np.asarray(T)).min(axis=(1, 2))
            total = d.sum()
            i = rng.choice(n, p=d / total) if total > 0 else rng.randint(n)
            T.append(X[i])
        return np.asarray(T)

    def _align_kmeans(self, X: np.ndarray, T: np.ndarray, max_iter: int,
                      fixed_labels: np.ndarray | None = None):
        """Alternate (cluster, shift) assignment and template means; returns labels, shifts, T, inertia."""
        n, R, F = X.shape
        K = T.shape[0]
        prev = None
        n_iter = 0
        for n_iter in range(1, max(1, max_iter) + 1):
            D = shift_distances(X, T)                          # (N, R, K)
            if fixed_labels is None:
                flat = D.reshape(n, -1).argmin(1)
                shifts, labels = np.divmod(flat, K)
            else:
                labels = fixed_labels
                shifts = D[np.arange(n), :, labels].argmin(1)
            state = np.stack([labels, shifts])
            if prev is not None and np.array_equal(state, prev):
                break
            prev = state
            A = unroll(X, shifts)
            counts = np.bincount(labels, minlength=K)
            T = np.zeros_like(T)
            np.add.at(T, labels, A)
            best = D[np.arange(n), shifts, labels]
            for j in np.flatnonzero(counts == 0):              # reseed empty clusters
                far = int(np.argmax(best))
                T[j], counts[j], best[far] = X[far], 1, 0.0
            T /= counts[:, None, None]
        D = shift_distances(X, T)
        inertia = float(D[np.arange(n), shifts, labels].sum())
        self._last_n_iter = n_iter
        return labels, shifts, T, inertia

    def _marginal_em(self, X, labels, shifts, T):
        n, R, F = X.shape
        K = T.shape[0]
        P = R * F
        A = unroll(X, shifts)
        resid = ((A - T[labels]) ** 2).sum((1, 2))
        counts = np.bincount(labels, minlength=K).astype(float)
        floor = 1e-6 * max(float((X ** 2).sum()) / (n * P), 1e-300)
        sigma2 = np.maximum(np.bincount(labels, resid, minlength=K) / np.maximum(counts, 1) / P, floor)
        pi = np.maximum(counts / n, 1e-12)
        ll_old = -np.inf
        it = 0
        for it in range(1, max(1, self.max_iter) + 1):
            logp = self._log_joint(X, T, sigma2, pi)          # (N, R, K)
            ll = float(logsumexp(logp.reshape(n, -1), axis=1).sum())
            post = np.exp(logp - logsumexp(logp.reshape(n, -1), axis=1)[:, None, None])
            Rk = post.sum(axis=(0, 1)) + 1e-12                 # (K,)
            rolled = np.stack([np.roll(X, -r, axis=1) for r in range(R)], 1)  # (N, R, R, F)
            T = np.einsum("nrk,nrtf->ktf", post, rolled) / Rk[:, None, None]
            D = shift_distances(X, T)
            sigma2 = np.maximum(np.einsum("nrk,nrk->k", post, D) / (Rk * P), floor)
            pi = Rk / n
            if abs(ll - ll_old) <= self.tol * abs(ll):
                break
            ll_old = ll
        logp = self._log_joint(X, T, sigma2, pi)
        lab = logsumexp(logp, axis=1).argmax(1)
        sh = logp[np.arange(n), :, lab].argmax(1)
        return lab, sh, T, sigma2, pi, it

    @staticmethod
    def _log_joint(X, T, sigma2, pi):
        """log π_j + log(1/R) + log N(roll(x, −r); μ_j, σ_j² I) for each (n, r, j); (N, R, K)."""
        n, R, F = X.shape
        P = R * F
        D = shift_distances(X, T)
        return (np.log(pi)[None, None] - np.log(R) - 0.5 * P * np.log(2 * np.pi * sigma2)[None, None]
                - 0.5 * D / sigma2[None, None])

    # -------------------------------------------------------------------- API
    def fit(self, X, y=None):
        """Cluster X of shape (N, R, F) (or (N, R·F) with ``n_rotations``). ``y`` is ignored."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        X = self._to_3d(X, reset=True)
        n, R, F = X.shape
        self.n_rotations_, self.n_features_per_rotation_ = R, F
        K = check_n_clusters(self.n_clusters, n)
        warn_duplicates(X.reshape(n, -1), n_clusters=K)
        rng = check_random_state(self.random_state)
        if self.method == "dft":
            km = KMeans(K, n_init=self.n_init, random_state=rng).fit(dft_features(X))
            self.kmeans_ = km
            labels = km.labels_
            # Templates from the first member of each cluster, then alignment with labels fixed.
            T = np.stack([X[np.flatnonzero(labels == j)[0]] for j in range(K)])
            labels, shifts, T, inertia = self._align_kmeans(X, T, self.max_iter, fixed_labels=labels)
            n_iter = self._last_n_iter
        else:
            best = None
            for _ in range(max(1, self.n_init)):
                out = self._align_kmeans(X, self._seed(X, K, rng), self.max_iter)
                if best is None or out[3] < best[3]:
                    best, n_iter = out, self._last_n_iter
            labels, shifts, T, inertia = best
        if self.method == "marginal":
            labels, shifts, T, sigma2, pi, n_iter = self._marginal_em(X, labels, shifts, T)
        else:
            A = unroll(X, shifts)
            resid = ((A - T[labels]) ** 2).sum((1, 2))
            counts = np.bincount(labels, minlength=K).astype(float)
            floor = 1e-6 * max(float((X ** 2).sum()) / (n * R * F), 1e-300)
            sigma2 = np.maximum(np.bincount(labels, resid, minlength=K)
                                / np.maximum(counts, 1) / (R * F), floor)
            pi = np.maximum(counts / n, 1e-12)
        # Contiguous labels: drop clusters left empty
        used = np.unique(labels)
        lut = np.full(K, -1)
        lut[used] = np.arange(used.size)
        self.labels_ = lut[labels].astype(np.intp)
        self.templates_, self.sigma2_ = T[used], sigma2[used]
        self.weights_ = pi[used] / pi[used].sum()
        self.shifts_ = shifts.astype(np.intp)
        self.n_iter_ = int(n_iter)
        self.aligned_ = unroll(X, self.shifts_)
        D = shift_distances(X, self.templates_)
        self.inertia_ = float(D[np.arange(n), self.shifts_, self.labels_].sum())
        if self.method == "dft":
            self._dft_map = lut
        return self

    def fit_predict(self, X, y=None, **kwargs):
        """Fit and return ``labels_``."""
        return self.fit(X, y, **kwargs).labels_

    def predict(self, X) -> np.ndarray:
        """Cluster of new embeddings (N, R, F): nearest template over shifts (``"dft"``: the
        k-means on |DFT| features; ``"marginal"``: highest posterior)."""
        check_is_fitted(self, "labels_")
        X = self._to_3d(X, reset=False)
        if self.method == "dft":
            lab = self._dft_map[self.kmeans_.predict(dft_features(X))]
            return np.where(lab < 0, self._predict_templates(X), lab).astype(np.intp)
        return self._predict_templates(X)

    def _predict_templates(self, X):
        if self.method == "marginal":
            logp = self._log_joint(X, self.templates_, self.sigma2_, self.weights_)
            return logsumexp(logp, axis=1).argmax(1).astype(np.intp)
        return shift_distances(X, self.templates_).min(1).argmin(1).astype(np.intp)

    def predict_shift(self, X) -> np.ndarray:
        """Shift of each new embedding relative to its predicted cluster's template, shape (N,)."""
        lab = self.predict(X)
        X = self._to_3d(X, reset=False)
        D = shift_distances(X, self.templates_)
        return D[np.arange(X.shape[0]), :, lab].argmin(1).astype(np.intp)

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood of each embedding under the rotation-marginalised mixture, shape (N,)."""
        check_is_fitted(self, "labels_")
        X = self._to_3d(X, reset=False)
        logp = self._log_joint(X, self.templates_, self.sigma2_, self.weights_)
        return logsumexp(logp.reshape(X.shape[0], -1), axis=1)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per embedding (use on held-out neurons to compare K)."""
        return float(self.score_samples(X).mean())

    def _n_parameters(self) -> int:
        K, R, F = self.templates_.shape
        return K * R * F + K + (K - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion of the mixture on X (lower is better)."""
        X3 = self._to_3d(X, reset=False)
        return float(-2 * self.score_samples(X).sum() + self._n_parameters() * np.log(X3.shape[0]))

    def aic(self, X) -> float:
        """Akaike information criterion of the mixture on X (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self._n_parameters())

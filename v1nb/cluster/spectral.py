"""Spectral building blocks: smallest eigenvectors of a PSD operator, and discretisation.

* :func:`smallest_eigenvectors` — the c smallest eigenpairs of a PSD matrix or LinearOperator M
  with spectrum in [0, u], found as the *largest* eigenpairs of u·I − M with ARPACK
  (``eigsh(which="LA")``). Largest-end Lanczos converges fast and needs only products with M,
  unlike ``which="SA"`` (slow) or shift-invert (needs a factorisation that fills in).
* :func:`spectral_rotation` — Yu & Shi (2003) multiclass discretisation: the rotation R of the
  row-normalised eigenvectors closest to a binary indicator matrix, alternating label and
  Procrustes steps, from several starting rotations.
* :func:`kmeans_rows` — the Ng, Jordan & Weiss (2002) alternative: k-means on row-normalised
  eigenvectors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state


def smallest_eigenvectors(M, n_components: int, upper_bound: float | None = None,
                          random_state=None, tol: float = 1e-6, maxiter: int | None = None,
                          null_basis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_components`` smallest eigenpairs of a symmetric PSD operator.

    Parameters
    ----------
    M : ndarray, sparse matrix or LinearOperator, shape (N, N)
        Symmetric positive semi-definite.
    n_components : int
        Number of eigenpairs (≤ N; dense solver when close to N or N ≤ 50).
    upper_bound : float, optional
        Any u ≥ λ_max(M). If omitted, λ_max is estimated by a short ARPACK run and padded by 1 %.
        A tight bound matters: the wanted eigenvalues of u·I − M are u − λ, and their relative
        gaps shrink as u grows.
    random_state : int, RandomState or None
        Seeds ARPACK's starting vector, making the result reproducible.
    tol, maxiter
        Passed to :func:`scipy.sparse.linalg.eigsh`.
    null_basis : ndarray, shape (N, m), optional
        Orthonormal vectors known to span (part of) the null space of M, e.g. the normalised
        indicators of a graph's connected components. Lanczos from one start vector finds only
        one vector of a repeated eigenvalue, so a null space of dimension m > 1 would be missed;
        these vectors are returned first and the remaining n_components − m are sought in their
        orthogonal complement.

    Returns
    -------
    eigenvalues : ndarray, shape (n_components,)
        Ascending.
    eigenvectors : ndarray, shape (N, n_components)
        Orthonormal columns, signs fixed so that each column's largest-magnitude entry is positive.
    """
    n = M.shape[0]
    if not 0 < n_components <= n:
        raise ValueError(f"n_components must be in [1, N] = [1, {n}], got {n_components}")
    rng = check_random_state(random_state)
    op = sla.aslinearoperator(M)
    if null_basis is not None and null_basis.shape[1] > 0:
        Q = np.asarray(null_basis, dtype=float)
        m = Q.shape[1]
        if m >= n_components:
            return np.zeros(n_components), Q[:, :n_components]
        if upper_bound is None:
            lam_max = sla.eigsh(op, k=1, which="LA", tol=1e-3, v0=rng.uniform(-1, 1, n),
                                return_eigenvectors=False)[0]
            upper_bound = 1.01 * float(lam_max) + 1e-12
        top = float(upper_bound)

        def deflated(v):
            # P M P + top·Q Qᵀ (P = I − Q Qᵀ): same eigenpairs as M on Q's complement, while Q
            # moves to the top of the spectrum, out of the way of the wanted smallest ones.
            c = Q.T @ v
            pv = v - Q @ c
            mv = op.matvec(pv)
            return mv - Q @ (Q.T @ mv) + top * (Q @ c)

        Dop = sla.LinearOperator((n, n), matvec=deflated, dtype=float)
        vals, vecs = smallest_eigenvectors(Dop, n_components - m, top, rng, tol, maxiter)
        vecs = vecs - Q @ (Q.T @ vecs)
        vecs /= np.linalg.norm(vecs, axis=0, keepdims=True)
        return np.concatenate([np.zeros(m), vals]), np.hstack([Q, vecs])
    if upper_bound is None:
        v0 = rng.uniform(-1, 1, n)
        lam_max = sla.eigsh(op, k=1, which="LA", tol=1e-3, v0=v0, return_eigenvectors=False)[0]
        upper_bound = 1.01 * float(lam_max) + 1e-12
    u = float(upper_bound)
    shifted = sla.LinearOperator((n, n), matvec=lambda v: u * v - op.matvec(v), dtype=float)
    if n_components >= n - 1 or n <= 50:
        # Tiny problems: ARPACK needs k < N - 1 and is pointless; do it densely.
        dense = op.matmat(np.eye(n))
        dense = 0.5 * (dense + dense.T)
        vals, vecs = np.linalg.eigh(dense)
        vals, vecs = vals[:n_components], vecs[:, :n_components]
    else:
        v0 = rng.uniform(-1, 1, n)
        # A generous Krylov space: fewer implicit restarts, which dominate when the wanted
        # eigenvalues are tightly clustered (kNN Laplacians over tens of thousands of points).
        ncv = min(n, max(2 * n_components + 1, 4 * n_components, 40))
        vals, vecs = sla.eigsh(shifted, k=n_components, which="LA", tol=tol, v0=v0, ncv=ncv,
                               maxiter=maxiter)
        vals = u - vals
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
    # Deterministic signs
    pivot = np.abs(vecs).argmax(axis=0)
    signs = np.sign(vecs[pivot, np.arange(vecs.shape[1])])
    signs[signs == 0] = 1
    return vals, vecs * signs


def _row_normalize(Y: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    return Y / np.where(norms > 0, norms, 1.0)


def spectral_rotation(Y: np.ndarray, n_restarts: int = 10, max_iter: int = 100,
                      random_state=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Yu & Shi (2003) discretisation of a continuous spectral embedding.

    Finds the orthogonal R (c × c) and binary indicator X (N × c, one 1 per row) minimising
    ‖X − Ỹ R‖_F with Ỹ the row-normalised ``Y``, by alternating labels (row-wise argmax of ỸR)
    and the Procrustes solution for R. Each restart starts from a different set of nearly
    orthogonal rows of Ỹ (the first one random); the best objective (trace of the singular values
    of Xᵀ Ỹ, larger is better) wins.

    Parameters
    ----------
    Y : ndarray, shape (N, c)
        Continuous embedding (e.g. the c smallest Laplacian eigenvectors).
    n_restarts : int
        Number of starting rotations.
    max_iter : int
        Alternations per restart.
    random_state : int, RandomState or None

    Returns
    -------
    labels : ndarray of int, shape (N,)
        Values in [0, c); clusters may be empty.
    rotation : ndarray, shape (c, c)
        The R of the best restart; label new rows y by argmax(normalise(y) @ R).
    objective : float
        Trace of the singular values at convergence (≤ N).
    """
    rng = check_random_state(random_state)
    Yn = _row_normalize(np.asarray(Y, dtype=float))
    n, c = Yn.shape
    best = (None, None, -np.inf)
    for _ in range(max(1, n_restarts)):
        R = np.zeros((c, c))
        R[:, 0] = Yn[rng.randint(n)]
        acc = np.zeros(n)
        for j in range(1, c):
            acc += np.abs(Yn @ R[:, j - 1])
            R[:, j] = Yn[np.argmin(acc)]
        last = -np.inf
        for _ in range(max_iter):
            labels = np.argmax(Yn @ R, axis=1)
            # Xᵀ Ỹ without forming X: sum rows of Ỹ per label
            XtY = np.zeros((c, c))
            np.add.at(XtY, labels, Yn)
            U, s, Vt = np.linalg.svd(XtY)
            obj = float(s.sum())
            if abs(obj - last) < 1e-10 * max(1.0, obj):
                break
            last = obj
            R = Vt.T @ U.T
        labels = np.argmax(Yn @ R, axis=1)
        if obj > best[2]:
            best = (labels, R, obj)
    return best


def kmeans_rows(Y: np.ndarray, n_clusters: int, n_init: int = 10, normalize: bool = True,
                random_state=None) -> tuple[np.ndarray, KMeans]:
    """k-means on the rows of an embedding (row-normalised by default, Ng–Jordan–Weiss).

    Returns
    -------
    labels : ndarray of int, shape (N,)
    kmeans : fitted :class:`sklearn.cluster.KMeans` (apply to rows normalised the same way)
    """
    Z = _row_normalize(Y) if normalize else np.asarray(Y, dtype=float)
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state).fit(Z)
    return km.labels_, km


def relabel_contiguous(labels: np.ndarray) -> np.ndarray:
    """Map labels onto 0..m−1 in order of first appearance of each sorted value (no gaps)."""
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.intp).ravel()

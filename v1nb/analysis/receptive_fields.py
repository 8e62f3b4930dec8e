"""Receptive fields from image–response pairs: reduced-rank regression and the response-weighted average.

Reduced-rank regression (RRR)
    Responses ``Y`` (trial, neuron) are regressed on stimuli ``X`` (trial, pixel) with a ridge
    penalty, and the coefficient matrix is constrained to rank ``r``: the ridge fit is projected
    onto the top ``r`` principal axes of its fitted values (Izenman 1975; the ridge variant of
    Mukherjee & Zhu 2011). All neurons then share ``r`` stimulus filters, which pools evidence
    across the population. The stimuli are expressed in their leading principal components first,
    which makes the fit cheap for 10,000 neurons (the PCA uses no responses, so including the
    held-out images in it leaks nothing). Rank and ridge strength are chosen by K-fold
    cross-validation of the explained variance (summed over z-scored neurons).
Response-weighted average (RWA)
    The correlation of each pixel with each neuron's response across trials (the spike-triggered
    average for graded responses). It is blurred by the correlations of natural images.

Both work on pixel features (the linear RF, signed), on local contrast-energy features
(``features="energy"``: squared high-pass image, blurred), whose RF is a positive blob at the RF
position of complex cells too (their linear RF averages to zero), or on both at once
(``features="both"``), the best choice to locate the RF centres of a mixed population: the centre
is taken from the summed squared weights of the two maps (both per standard deviation of a
feature, so they are comparable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import xarray as xr
from scipy import linalg, ndimage
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

__all__ = ["ReducedRankRegression", "image_features", "receptive_fields", "rf_centers", "rrr_cross_validate"]

FEATURES = ("pixels", "energy", "both")


def image_features(images: np.ndarray, features: str = "pixels", sigma: float | None = None) -> np.ndarray:
    """Per-image feature maps for RF estimation.

    Parameters
    ----------
    images : (image, y, x) array
    features : {"pixels", "energy"}
        ``"pixels"``: the images themselves. ``"energy"``: local contrast energy, the squared
        difference from a Gaussian-blurred copy (scale ``sigma``), blurred again by ``sigma``.
    sigma : float, optional
        Scale in pixels of the energy features; default 3 % of the image width (at least 1).

    Returns
    -------
    (image, y, x) float32 array
    """
    if features not in FEATURES[:2]:
        raise ValueError(f"features={features!r} is not one of {FEATURES[:2]}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be (image, y, x), got shape {images.shape}")
    if features == "pixels":
        return images
    sigma = max(1.0, 0.03 * images.shape[2]) if sigma is None else float(sigma)
    blur = (0, sigma, sigma)
    high = images - ndimage.gaussian_filter(images, blur)
    return ndimage.gaussian_filter(high ** 2, blur)


def _zscore(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (a - mean) / std


def _safe_std(a: np.ndarray) -> np.ndarray:
    s = a.std(axis=0)
    return np.where(s > 0, s, 1.0)


def _pca_basis(X: np.ndarray, n_components: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (feature, k) and variances (k,) of centred ``X`` (sample, feature)."""
    p = X.shape[1]
    # More components than samples would only add null directions.
    k = min(p, len(X) - 1) if n_components is None else min(int(n_components), p, len(X) - 1)
    # float64 for the eigensolver: LAPACK's single-precision path is slow and less accurate.
    cov = (X.T @ X).astype(np.float64)
    if k < p // 4:  # only the top k eigenpairs: faster when k ≪ p
        evals, vecs = linalg.eigh(cov, subset_by_index=(p - k, p - 1), driver="evr", check_finite=False)
    else:
        evals, vecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:k]
    return vecs[:, order].astype(X.dtype), np.clip(evals[order], 0, None) / len(X)


class ReducedRankRegression(BaseEstimator, RegressorMixin):
    """Ridge regression with the coefficient matrix constrained to a given rank.

    Parameters
    ----------
    rank : int
        Rank of the coefficient matrix (number of shared stimulus filters).
    alpha : float
        Ridge strength, relative to the mean variance of the stimulus components (so that it
        does not depend on the image size or units).
    n_components : int, optional
        Stimulus principal components kept (default: all).

    Attributes
    ----------
    coef_ : (feature, target) array
        Rank-``rank`` regression weights on the (centred) features.
    components_ : (feature, k) array, explained_variance_ : (k,) array
        Principal axes of the stimuli.
    filters_ : (target, rank) array
        Orthonormal axes of the fitted responses (the shared response subspace).
    """

    def __init__(self, rank: int = 10, alpha: float = 1.0, n_components: int | None = None):
        self.rank = rank
        self.alpha = alpha
        self.n_components = n_components

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "ReducedRankRegression":
        """Fit on stimuli ``X`` (sample, feature) and responses ``Y`` (sample, target)."""
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float32)
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
            raise ValueError(f"X (sample, feature) and Y (sample, target) must have matching rows, got {X.shape} and {Y.shape}")
        return self._fit(X, Y, None)

    def _fit(self, X: np.ndarray, Y: np.ndarray, basis: tuple[np.ndarray, np.ndarray] | None) -> "ReducedRankRegression":
        # ``basis`` lets rrr_cross_validate hand over the stimulus PCA it already computed.
        self.x_mean_, self.y_mean_ = X.mean(axis=0), Y.mean(axis=0)
        Xc, Yc = X - self.x_mean_, Y - self.y_mean_
        self.components_, self.explained_variance_ = basis if basis is not None else _pca_basis(Xc, self.n_components)
        Z = Xc @ self.components_
        reduced, self.filters_ = _rrr_solve(Z.T @ Z, Z.T @ Yc, self.alpha, self.rank)
        self.coef_ = self.components_ @ reduced @ self.filters_.T
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted responses (sample, target)."""
        return (np.asarray(X, dtype=np.float32) - self.x_mean_) @ self.coef_ + self.y_mean_


def _rrr_solve(gram: np.ndarray, ZtY: np.ndarray, alpha: float, max_rank: int,
               cross: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank-``max_rank`` RRR in stimulus-component space.

    Parameters
    ----------
    gram : (k, k) array, ``Z'Z`` of the centred stimulus components
    ZtY : (k, target) array, ``Z'Y``
    alpha : float, relative ridge strength
    max_rank : int
    cross : (k, k) array, optional
        ``ZtY ZtY'``, reused across ridge strengths (its cost grows with the number of targets).

    Returns
    -------
    reduced : (k, r) array
        ``coef @ filters``, the ridge coefficients seen through the response axes.
    filters : (target, r) array
        Orthonormal axes of the fitted values ``Ŷ = Z coef`` (top ``r``).
    """
    k = gram.shape[0]
    gram = gram.astype(np.float64)
    ridge = float(alpha) * np.trace(gram) / k
    inv = np.linalg.inv(gram + ridge * np.eye(k))  # k is small (hundreds)
    if cross is None:
        cross = (ZtY @ ZtY.T).astype(np.float64)
    # Ŷ'Ŷ = coef' gram coef with coef = inv ZtY; its top eigenvectors in target space come from
    # the k × k matrix L' inv cross inv L (L L' = gram), never forming a target × target matrix.
    g_vals, g_vecs = np.linalg.eigh(gram)
    chol = g_vecs * np.sqrt(np.clip(g_vals, 0, None))  # a square root of the (possibly singular) gram
    small = chol.T @ inv @ cross @ inv @ chol
    evals, q = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(evals)[::-1][:max_rank]
    s = np.sqrt(np.clip(evals[order], 1e-30, None))
    left = (inv @ chol @ q[:, order]) / s  # (k, r)
    filters = ZtY.T @ left.astype(ZtY.dtype)  # (target, r) orthonormal
    reduced = inv.astype(np.float32) @ (ZtY @ filters)
    return reduced.astype(np.float32), filters.astype(np.float32)


@dataclass(frozen=True)
class _CVResult:
    explained_variance: np.ndarray  # (alpha, fold, rank)
    ranks: np.ndarray
    alphas: np.ndarray
    basis: tuple[np.ndarray, np.ndarray]  # stimulus principal axes (feature, k) and variances (k,)


def rrr_cross_validate(
    X: np.ndarray,
    Y: np.ndarray,
    ranks: Sequence[int],
    alphas: Sequence[float] = (1.0,),
    n_splits: int = 5,
    n_components: int | None = None,
    random_state: int | None = 0,
) -> _CVResult:
    """Held-out explained variance of reduced-rank regression for every rank and ridge strength.

    Parameters
    ----------
    X : (sample, feature) array, Y : (sample, target) array
        Y should be z-scored per target for "explained variance" to weigh neurons equally.
    ranks : ints
        Ranks to score (all ranks up to ``max(ranks)`` cost the same as the largest one).
    alphas : floats
        Relative ridge strengths (see :class:`ReducedRankRegression`).
    n_splits : int
        K-fold splits (shuffled with ``random_state``).

    Returns
    -------
    object with ``explained_variance`` (alpha, fold, rank): ``1 − SSE/SST`` on the held-out fold,
    summed over targets, with SST about the training mean.
    """
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    ranks = np.asarray(sorted(set(int(r) for r in ranks)))
    if ranks.min() < 1:
        raise ValueError(f"ranks must be ≥ 1, got {ranks.tolist()}")
    x_mean = X.mean(axis=0)
    basis = _pca_basis(X - x_mean, n_components)
    max_rank = int(min(ranks.max(), Y.shape[1], basis[0].shape[1]))
    # A rank above min(targets, components) is the same model as that maximum: drop it.
    ranks = ranks[ranks <= max_rank]
    if len(ranks) == 0:
        raise ValueError(f"all ranks exceed the largest possible rank {max_rank} (targets × stimulus components)")
    Z_all = (X - x_mean) @ basis[0]
    ZtY_all = Z_all.T @ Y
    out = np.zeros((len(alphas), n_splits, len(ranks)))
    for f, (train, test) in enumerate(KFold(n_splits, shuffle=True, random_state=random_state).split(X)):
        z_mean, y_mean = Z_all[train].mean(axis=0), Y[train].mean(axis=0)
        Z_tr = Z_all[train] - z_mean
        # Z_tr' Y_tr from the full product minus the held-out part (cheap for many neurons).
        ZtY = ZtY_all - Z_all[test].T @ Y[test] - np.outer(z_mean, Y[train].sum(axis=0))
        Z_te, Y_te = Z_all[test] - z_mean, Y[test] - y_mean
        sst = float((Y_te ** 2).sum())
        gram, cross = Z_tr.T @ Z_tr, (ZtY @ ZtY.T).astype(np.float64)
        for a, alpha in enumerate(alphas):
            reduced, filters = _rrr_solve(gram, ZtY, alpha, max_rank, cross)
            A = Z_te @ reduced  # (test, r): predictions in the filter basis
            yw = Y_te @ filters
            # SSE_r = ‖Y‖² − 2 Σ_j⩽r ⟨Y w_j, a_j⟩ + Σ_j⩽r ‖a_j‖², since the filters are orthonormal.
            sse = sst - np.cumsum(2 * (yw * A).sum(axis=0) - (A ** 2).sum(axis=0))
            out[a, f] = 1 - sse[ranks - 1] / sst
    return _CVResult(out, ranks, np.asarray(alphas, dtype=float), basis)


def rf_centers(rf: np.ndarray, sigma: float = 1.0, radius: float | None = None, signed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Centres (x, y) in pixels of receptive-field maps.

    The map's energy (square, or the positive part when ``signed=False``) is blurred by
    ``sigma`` pixels; the centre is the energy-weighted centroid within ``radius`` of the
    energy maximum (re-centred on the centroid a few times), after subtracting the map's median
    energy (background).

    Parameters
    ----------
    rf : (neuron, y, x) array
    sigma : float
        Blur (pixels) before locating the maximum.
    radius : float, optional
        Window radius (pixels); default 10 % of the image width (at least 2).
    signed : bool
        True for signed (linear) maps, False for positive energy maps.

    Returns
    -------
    x, y : (neuron,) arrays
        Column and row of each centre.
    """
    rf = np.asarray(rf, dtype=np.float64)
    if rf.ndim != 3:
        raise ValueError(f"rf must be (neuron, y, x), got shape {rf.shape}")
    energy = rf ** 2 if signed else np.clip(rf, 0, None)
    energy = ndimage.gaussian_filter(energy, (0, sigma, sigma))
    radius = max(2.0, 0.1 * rf.shape[2]) if radius is None else float(radius)
    yy, xx = np.mgrid[:rf.shape[1], :rf.shape[2]]
    cx, cy = np.empty(len(rf)), np.empty(len(rf))
    for n, e in enumerate(energy):
        py, px = np.unravel_index(np.argmax(e), e.shape)
        w_all = np.clip(e - np.median(e), 0, None)
        x0, y0 = float(px), float(py)
        # A few mean-shift steps: re-centre the window on the centroid, so that a window cut
        # around the integer peak pixel does not pull the centre towards it.
        for _ in range(5):
            w = w_all * (((yy - y0) ** 2 + (xx - x0) ** 2) <= radius ** 2)
            total = w.sum()
            if total <= 0:
                break
            x0, y0 = (xx * w).sum() / total, (yy * w).sum() / total
        cx[n], cy[n] = x0, y0
    return cx, cy


def block_average(images: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` × ``factor`` pixel blocks of (image, y, x) (edges that do not fill a block are cropped)."""
    if factor == 1:
        return images
    n, h, w = images.shape
    h, w = h // factor * factor, w // factor * factor
    return images[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def _design(ds: xr.Dataset, tiers: Sequence[str], features: str, sigma: float | None,
            factor: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    if "images" not in ds:
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has no 'images': receptive fields need the stimuli")
    tier = ds["tier"].values.astype(str)
    ids = ds["image_id"].values
    keep = np.isin(tier, list(tiers)) & (ids >= 0)
    if keep.sum() < 50:
        raise ValueError(
            f"dataset {ds.attrs.get('source', '')!r} has only {int(keep.sum())} trials with known images in "
            f"tiers {list(tiers)}; receptive fields need at least 50 (are the training images missing?)"
        )
    kinds = ("pixels", "energy") if features == "both" else (features,)
    feats = np.concatenate([block_average(image_features(ds["images"].values, kind, sigma), factor)
                            for kind in kinds], axis=2)  # side by side along x
    X = feats[ids[keep]].reshape(int(keep.sum()), -1)
    Y = ds["responses"].values[keep].astype(np.float32)
    if not np.isfinite(Y).all():
        raise ValueError("responses contain missing values; receptive_fields needs complete trials")
    return X, Y, feats.shape[1:]


def receptive_fields(
    ds: xr.Dataset,
    method: str = "rrr",
    rank: int | None = None,
    *,
    features: str = "pixels",
    tiers: Sequence[str] = ("train", "validation"),
    ranks: Sequence[int] = (1, 2, 3, 5, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384),
    alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    n_splits: int = 5,
    n_components: int | None = 500,
    energy_sigma: float | None = None,
    downsample: int | None = None,
    random_state: int | None = 0,
) -> xr.Dataset:
    """Receptive fields of every neuron, their centres and (RRR) the explained variance per rank.

    Parameters
    ----------
    ds : xarray.Dataset
        Schema dataset with ``images``; trials of ``tiers`` with known images are used.
    method : {"rrr", "rwa"}
        Reduced-rank regression or response-weighted average (see the module docstring).
    rank : int, optional
        RRR rank; default: the cross-validated best among ``ranks``.
    features : {"pixels", "energy", "both"}
        Regress on pixels (linear RF), on local contrast energy, or on both (see the module
        docstring); ``"both"`` locates the RF centres of all cell types.
    ranks, alphas, n_splits
        Cross-validation grid (RRR). ``alphas`` are relative ridge strengths; the best is used.
    n_components : int, optional
        Stimulus principal components used by RRR (None: all pixels).
    energy_sigma : float, optional
        Scale of the energy features (pixels).
    downsample : int, optional
        Average blocks of this many pixels squared before fitting (fewer weights, faster, less
        noisy); default: the smallest factor that makes the image at most 32 pixels wide.
        Maps and centres are reported in pixels of the original image.

    Returns
    -------
    xarray.Dataset
        ``rf`` (neuron, y, x) — weights per z-scored response (RRR) or pixel–response
        correlations (RWA), on pixels (energy features for ``features="energy"``), and
        ``rf_energy`` (neuron, y, x) on energy features for ``features="both"``; ``rf_x``, ``rf_y`` (neuron) — centres in pixels; for RRR also
        ``explained_variance`` (rank) and ``explained_variance_sem`` (rank), the cross-validated
        fraction of response variance (mean and s.e.m. over folds, best alpha), with attributes
        ``rank`` and ``alpha``. Neuron coordinates of ``ds`` are kept.
    """
    if method not in ("rrr", "rwa"):
        raise ValueError(f"method={method!r} is not one of ('rrr', 'rwa')")
    if "images" in ds and downsample is None:
        downsample = max(1, int(np.ceil(ds.sizes["x"] / 32)))
    factor = int(downsample or 1)
    if factor < 1:
        raise ValueError(f"downsample must be ≥ 1, got {downsample}")
    X, Y, shape = _design(ds, tiers, features, energy_sigma, factor)
    X = _zscore(X, X.mean(axis=0), _safe_std(X))
    Y = _zscore(Y, Y.mean(axis=0), _safe_std(Y))
    data_vars: dict[str, tuple] = {}
    attrs: dict[str, object] = {"method": method, "features": features, "n_trials": len(X), "downsample": factor}
    if method == "rwa":
        maps = (X.T @ Y / len(X)).T
    else:
        grid = sorted(set(ranks) | ({int(rank)} if rank is not None else set()))
        cv = rrr_cross_validate(X, Y, grid, alphas, n_splits, n_components, random_state)
        mean = cv.explained_variance.mean(axis=1)  # (alpha, rank)
        if rank is None:
            a_best, r_best = np.unravel_index(np.argmax(mean), mean.shape)
            rank = int(cv.ranks[r_best])
        else:
            if int(rank) not in cv.ranks:
                raise ValueError(f"rank={rank} exceeds the largest possible rank {int(cv.ranks.max())}")
            a_best = int(np.argmax(mean[:, list(cv.ranks).index(int(rank))]))
        alpha = float(cv.alphas[a_best])
        model = ReducedRankRegression(rank=int(rank), alpha=alpha, n_components=n_components)._fit(X, Y, cv.basis)
        maps = model.coef_.T
        ev = cv.explained_variance[a_best]
        data_vars["explained_variance"] = (("rank",), ev.mean(axis=0))
        data_vars["explained_variance_sem"] = (("rank",), ev.std(axis=0, ddof=1) / np.sqrt(ev.shape[0]))
        attrs.update(rank=int(rank), alpha=alpha)
    maps = maps.reshape(-1, *shape)
    if features == "both":
        width = shape[1] // 2
        maps, energy_maps = maps[:, :, :width], maps[:, :, width:]
        shape = (shape[0], width)
        data_vars["rf_energy"] = (("neuron", "y", "x"), energy_maps.astype(np.float32))
        cx, cy = rf_centers(np.sqrt(maps ** 2 + energy_maps ** 2))
    else:
        cx, cy = rf_centers(maps, signed=features == "pixels")
    # Block centres in original pixels: block j covers pixels factor·j .. factor·j + factor − 1.
    offset = (factor - 1) / 2
    cx, cy = cx * factor + offset, cy * factor + offset
    data_vars.update(rf=(("neuron", "y", "x"), maps.astype(np.float32)), rf_x=(("neuron",), cx), rf_y=(("neuron",), cy))
    coords = {name: c for name, c in ds.coords.items() if c.dims == ("neuron",)}
    coords["neuron"] = ds["neuron"].values
    coords["y"] = np.arange(shape[0]) * factor + offset
    coords["x"] = np.arange(shape[1]) * factor + offset
    if method == "rrr":
        coords["rank"] = cv.ranks
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)

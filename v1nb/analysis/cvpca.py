"""Cross-validated PCA (Stringer et al. 2019): the stimulus-related variance of each principal component.

Two repeats of the same images, ``R0`` and ``R1`` (image, neuron), share the stimulus-driven
signal but have independent trial-to-trial noise. The principal directions ``V`` are fitted on
``R0``; projecting both repeats onto them, ``Σ_images (R0 V)_k (R1 V)_k`` estimates the signal
variance along component ``k`` without the noise bias of an ordinary eigenspectrum (the noise of
the two repeats is uncorrelated, so its product averages to zero).

The spectrum of V1 follows a power law ``λ_k ∝ k^−α``; α is fitted by weighted least squares of
``log λ_k`` on ``log k`` over a rank range with weights ``1/k`` (so that each octave counts equally,
as in Stringer's ``get_powerlaw``). Stringer et al. report α ≈ 1.0 for natural images.

Two conventions (``convention=``), which agree when the responses are centred both per neuron
and per image, and differ otherwise (e.g. raw, non-z-scored responses):

``"v1nb"`` (default): PCA with the images as samples, the usual PCA of a population response.
    Each neuron is centred by its mean over the images of repeat 0, ``X_r = R_r − 1 μᵀ`` with
    ``μ_n = mean_i R0[i, n]`` (the same μ for both repeats); ``V`` are the principal axes (neuron
    space) of ``X_0``, and ``λ_k = Σ_i (X_0 v_k)_i (X_1 v_k)_i``.
``"reference"``: Stringer et al.'s published Python code (``cvPCA`` in ``python/utils.py`` of
    MouseLand/stringer-pachitariu-et-al-2018b). Its axes come from scikit-learn's PCA fitted with
    the *neurons* as samples, which centres each image across neurons: ``C = R0 − m 1ᵀ`` with
    ``m_i = mean_n R0[i, n]``, ``Cᵀ = U S Wᵀ`` (``w_k`` in image space). The neuron-space axes are
    ``a_k = R0ᵀ w_k / s_k`` (``= u_k + 1 (m·w_k)/s_k``), and the *uncentred* repeats are
    projected: ``λ_k = Σ_i (R0 a_k)_i (R1 a_k)_i``. The reference keeps min(1024, images)
    components; its notebook fits α with ``get_powerlaw(ss, np.arange(11, 500))``, 0-based, i.e.
    ranks 12–500 (``fit_range=(12, 500)`` here), where the MATLAB code uses ranks 11–500.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from v1nb.analysis._inputs import two_repeats

__all__ = ["CONVENTIONS", "CVPCAResult", "cvpca", "cvpca_spectrum", "fit_power_law"]

#: The centring conventions of :func:`cvpca_spectrum` (see the module docstring).
CONVENTIONS = ("v1nb", "reference")

#: Rank range of the power-law fit in Stringer et al. (ranks 11..500, 1-based).
STRINGER_FIT_RANGE = (11, 500)


@dataclass(frozen=True)
class CVPCAResult:
    """The cvPCA spectrum and its power-law fit.

    Attributes
    ----------
    spectrum : xarray.DataArray (component,)
        Signal variance per component, coordinate ``rank`` (1-based). Can be negative at high
        ranks where the signal is below the noise (an unbiased estimate of a small number).
    alpha : float
        Power-law exponent fitted over ``fit_range``.
    intercept : float
        ``log λ`` of the fit at rank 1.
    fit_range : (int, int)
        First and last rank (1-based, inclusive) used in the fit.
    signal_fraction : float
        Sum of the spectrum over the total variance of repeat 0 (the share of the variance that
        is stimulus-related and reproducible). The total is that of the centred repeat 0 the
        axes are fitted on: each neuron centred over images (``"v1nb"``), each image centred
        over neurons (``"reference"``).
    convention : {"v1nb", "reference"}
        How the repeats were centred (see the module docstring).
    """

    spectrum: xr.DataArray
    alpha: float
    intercept: float
    fit_range: tuple[int, int]
    signal_fraction: float
    convention: str = "v1nb"

    def power_law(self, ranks: np.ndarray | None = None) -> np.ndarray:
        """The fitted power law ``exp(intercept) · rank^−alpha`` at ``ranks`` (default: all)."""
        ranks = self.spectrum["rank"].values if ranks is None else np.asarray(ranks, dtype=float)
        return np.exp(self.intercept) * ranks ** (-self.alpha)

    def normalized(self) -> xr.DataArray:
        """The spectrum divided by its sum (fraction of the signal variance per component)."""
        return self.spectrum / float(self.spectrum.sum())


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: expected one of {', '.join(map(repr, CONVENTIONS))} "
                         "(see v1nb.analysis.cvpca)")
    return convention


def cvpca_spectrum(rep0: np.ndarray, rep1: np.ndarray, n_components: int | None = None,
                   convention: str = "v1nb") -> np.ndarray:
    """Signal variance per principal component of ``rep0``, cross-validated against ``rep1``.

    Parameters
    ----------
    rep0, rep1 : (image, neuron) arrays
        The same images in the same order, two independent presentations.
    n_components : int, optional
        Number of components (default: all: ``min(image, neuron) − 1`` for ``"v1nb"``,
        ``min(image, neuron − 1)`` for ``"reference"``, the ranks of the centred repeat 0).
    convention : {"v1nb", "reference"}
        ``"v1nb"``: centre each neuron over images, axes = principal axes of repeat 0.
        ``"reference"``: Stringer et al.'s code (each image centred across neurons for the axes,
        raw repeats projected). Formulas in the module docstring.

    Returns
    -------
    (n_components,) array
        ``Σ_i p0[i, k] · p1[i, k]`` with ``p = (R − mean(R0)) V`` and ``V`` the principal axes of
        ``R0`` (``"v1nb"``), or ``p = R a`` with the reference's axes ``a`` (``"reference"``).
    """
    _check_convention(convention)
    rep0 = np.asarray(rep0, dtype=np.float64)
    rep1 = np.asarray(rep1, dtype=np.float64)
    if rep0.shape != rep1.shape or rep0.ndim != 2:
        raise ValueError(f"rep0 and rep1 must be (image, neuron) arrays of one shape, got {rep0.shape} and {rep1.shape}")
    if convention == "reference":
        return _reference_spectrum(rep0, rep1, n_components)
    mean = rep0.mean(axis=0)
    # Centre both repeats with one mean: the signal's mean is shared, and a separate mean for
    # rep1 would leak its noise into the cross product.
    x0 = rep0 - mean
    x1 = rep1 - mean
    max_k = min(x0.shape) - 1
    k = max_k if n_components is None else int(n_components)
    if not 1 <= k <= max_k:
        raise ValueError(f"n_components={n_components} must be between 1 and {max_k} for data of shape {rep0.shape}")
    # The thin SVD through the smaller Gram matrix: images × images when neurons outnumber
    # images (the usual case), which keeps 10,000 neurons cheap.
    if x0.shape[0] <= x0.shape[1]:
        evals, u = np.linalg.eigh(x0 @ x0.T)
        order = np.argsort(evals)[::-1][:k]
        u = u[:, order]
        s = np.sqrt(np.clip(evals[order], 1e-300, None))
        v = (x0.T @ u) / s  # (neuron, k) principal axes
    else:
        evals, v = np.linalg.eigh(x0.T @ x0)
        v = v[:, np.argsort(evals)[::-1][:k]]
    p0 = x0 @ v
    p1 = x1 @ v
    return np.einsum("ik,ik->k", p0, p1)


def _reference_spectrum(rep0: np.ndarray, rep1: np.ndarray, n_components: int | None) -> np.ndarray:
    """The ``"reference"`` convention (module docstring), computed without scikit-learn."""
    n_images, n_neurons = rep0.shape
    # Each image centred across neurons: the rows of C sum to 0, so rank C ≤ neurons − 1.
    c0 = rep0 - rep0.mean(axis=1, keepdims=True)
    max_k = min(n_images, n_neurons - 1)
    k = max_k if n_components is None else int(n_components)
    if not 1 <= k <= max_k:
        raise ValueError(f"n_components={n_components} must be between 1 and {max_k} for data of shape "
                         f"{rep0.shape} (convention='reference')")
    # W (image space, the PCA components of Cᵀ) and the singular values s, through the smaller Gram.
    if n_images <= n_neurons:
        evals, w = np.linalg.eigh(c0 @ c0.T)
        order = np.argsort(evals)[::-1][:k]
        w = w[:, order]
        s = np.sqrt(np.clip(evals[order], 1e-300, None))
    else:
        evals, u = np.linalg.eigh(c0.T @ c0)
        order = np.argsort(evals)[::-1][:k]
        s = np.sqrt(np.clip(evals[order], 1e-300, None))
        w = (c0 @ u[:, order]) / s
    axes = (rep0.T @ w) / s  # (neuron, k): the uncentred repeat 0 maps W to neuron space
    return np.einsum("ik,ik->k", rep0 @ axes, rep1 @ axes)


def fit_power_law(spectrum: np.ndarray, fit_range: tuple[int, int] = STRINGER_FIT_RANGE) -> tuple[float, float]:
    """Weighted log-log fit of ``spectrum[k] ∝ k^−α`` over 1-based ranks ``fit_range`` (inclusive).

    Weights ``1/k`` (Stringer's ``get_powerlaw``); negative values enter through their magnitude,
    as in the reference code.

    Returns
    -------
    alpha, intercept : float
        ``log |spectrum[k]| ≈ intercept − alpha · log k``.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    lo, hi = int(fit_range[0]), int(min(fit_range[1], len(spectrum)))
    if lo < 1 or hi - lo < 2:
        raise ValueError(
            f"fit_range={fit_range} must start at rank ≥ 1 and span at least 3 ranks within the "
            f"{len(spectrum)} components available"
        )
    ranks = np.arange(lo, hi + 1, dtype=np.float64)
    y = np.log(np.abs(spectrum[lo - 1:hi]) + 1e-300)
    design = np.column_stack([-np.log(ranks), np.ones_like(ranks)])
    w = 1.0 / ranks
    alpha, intercept = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * y))
    return float(alpha), float(intercept)


def cvpca(
    data: Any,
    *,
    tier: str = "test",
    repeats: tuple[int, int] = (0, 1),
    n_components: int | None = None,
    fit_range: tuple[int, int] = STRINGER_FIT_RANGE,
    n_shuffles: int = 0,
    random_state: int | None = 0,
    convention: str = "v1nb",
) -> CVPCAResult:
    """Cross-validated PCA spectrum and its power-law exponent.

    Parameters
    ----------
    data : xarray.Dataset, (image, repeat, neuron) array, or pair (rep0, rep1) of (image, neuron) arrays
        A schema dataset uses the repeats of ``tier`` (:func:`v1nb.data.views.repeat_array`).
        Responses should already be preprocessed as wanted (e.g.
        :func:`v1nb.analysis.preprocess.stringer_normalize` for Stringer recordings).
    tier : str
        Tier whose repeats are used (datasets only).
    repeats : (int, int)
        Which two repeats play "train" (principal axes) and "test".
    n_components : int, optional
        Number of components (default: all).
    fit_range : (int, int)
        1-based inclusive rank range of the power-law fit; clipped to the available components.
    n_shuffles : int
        If > 0, average the spectrum over this many random swaps of the two repeats per image
        (Stringer's ``shuff_cvPCA``), which lowers its variance; 0 uses the repeats as given.
    random_state : int, optional
        Seed of the swaps.
    convention : {"v1nb", "reference"}
        ``"v1nb"`` (default) centres each neuron over the images; ``"reference"`` reproduces
        Stringer et al.'s ``cvPCA`` (see the module docstring). They agree on responses centred
        per neuron and per image and differ on raw responses.

    Returns
    -------
    CVPCAResult
    """
    _check_convention(convention)
    rep0, rep1 = two_repeats(data, tier=tier, repeats=repeats)
    bad = ~(np.isfinite(rep0).all(axis=0) & np.isfinite(rep1).all(axis=0))
    if bad.any():
        warnings.warn(f"cvpca: dropping {int(bad.sum())} neurons with missing (non-finite) responses", stacklevel=2)
        rep0, rep1 = rep0[:, ~bad], rep1[:, ~bad]
    if n_shuffles < 0:
        raise ValueError(f"n_shuffles must be ≥ 0, got {n_shuffles}")
    if n_shuffles == 0:
        spectrum = cvpca_spectrum(rep0, rep1, n_components, convention)
    else:
        rng = np.random.default_rng(random_state)
        spectra = []
        for _ in range(n_shuffles):
            swap = rng.random(rep0.shape[0]) < 0.5
            a = np.where(swap[:, None], rep1, rep0)
            b = np.where(swap[:, None], rep0, rep1)
            spectra.append(cvpca_spectrum(a, b, n_components, convention))
        spectrum = np.mean(spectra, axis=0)
    hi = min(fit_range[1], len(spectrum))
    alpha, intercept = fit_power_law(spectrum, (fit_range[0], hi))
    centre_axis = 0 if convention == "v1nb" else 1
    total = float(((rep0 - rep0.mean(axis=centre_axis, keepdims=True)) ** 2).sum())
    da = xr.DataArray(spectrum, dims=("component",), coords={"rank": ("component", np.arange(1, len(spectrum) + 1))},
                      name="signal_variance")
    return CVPCAResult(spectrum=da, alpha=alpha, intercept=intercept, fit_range=(int(fit_range[0]), int(hi)),
                       signal_fraction=float(spectrum.sum() / total) if total > 0 else float("nan"),
                       convention=convention)

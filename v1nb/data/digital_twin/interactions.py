"""Interactions between neurons and across trials. Each has a strength; 0 switches it off.

Image-level (functions of the stimulus, shared by all presentations of an image)
    :func:`divisive_normalization`  ``d_n (1 + α_n) / (1 + α_n Σ_m P_nm d_m)``, with ``P`` a
        row-normalised Gaussian kernel of cortical distance over the other neurons (the pool).
    :func:`lateral_coupling`  ``[d_n + β Σ_m C_nm d_m]_+`` with ``C_nm ∝ k(dist) · sim_nm``:
        like-to-like coupling, ``sim = cos 2Δθ`` between oriented cells, +1 between same-sign and
        −1 between opposite-sign centre–surround cells, 0 between the two families.
Trial-level (functions of the presentation sequence)
    :func:`state_gain`  a shared, slowly varying log-gain (behavioural state): an AR(1) process
        over trials with per-neuron loadings, multiplying evoked and spontaneous rates alike.
    :func:`adapt`  each rate divided by ``1 + γ a_t / r̄_n``, where ``a_t`` is the
        exponentially weighted mean of the neuron's previous rates (kernel ``∝ e^{−k/τ}``,
        k = 1, 2, ... trials back) and ``r̄_n`` its mean rate on natural images.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

# Kernels are truncated at this many s.d. and to the nearest neighbours within it, which keeps
# the matrices sparse and their products cheap for the large profile.
_CUTOFF = 2.5
_MAX_NEIGHBOURS = 256


def _gaussian_pairs(positions: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour pairs (i, j), i ≠ j, and their Gaussian kernel weights ``exp(−d²/2sd²)``.

    Each neuron's neighbours are the (up to ``_MAX_NEIGHBOURS``) nearest others within
    ``_CUTOFF × sd``.
    """
    n = len(positions)
    k = min(_MAX_NEIGHBOURS + 1, n)
    dist, j = cKDTree(positions).query(positions, k=k, distance_upper_bound=_CUTOFF * sd)
    dist, j = dist.reshape(n, k), j.reshape(n, k)
    i = np.repeat(np.arange(n), k).reshape(n, k)
    keep = (j < n) & (j != i)
    i, j, dist = i[keep], j[keep], dist[keep]
    return i, j, np.exp(-dist**2 / (2 * sd**2))


def normalization_pool(positions: np.ndarray, sd_um: float) -> sp.csr_matrix:
    """Pool weights P (neuron, neuron), sparse: Gaussian in cortical distance, rows sum to 1.

    ``positions`` (neuron, 3) in µm. The pool is the nearest neighbours within 2.5 s.d. (at most
    256); neurons without any get an empty row (no normalisation).
    """
    n = len(positions)
    i, j, w = _gaussian_pairs(positions, sd_um)
    m = sp.csr_matrix((w, (i, j)), shape=(n, n))
    rows = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(np.where(rows > 0, 1 / np.where(rows > 0, rows, 1), 0)) @ m


def tuning_similarity(orientation: np.ndarray, cell_type: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Similarity of pairs (i, j) in [−1, 1] (see the module docstring)."""
    oi, oj = orientation[i], orientation[j]
    sim = np.cos(2 * (oi - oj))
    on = np.where(cell_type == "on_center", 1.0, np.where(cell_type == "off_center", -1.0, np.nan))
    cs = on[i] * on[j]  # ±1 between centre-surround cells, NaN otherwise
    sim = np.where(np.isnan(sim), cs, sim)
    return np.nan_to_num(sim, nan=0.0)


def coupling_matrix(positions: np.ndarray, orientation: np.ndarray, cell_type: np.ndarray,
                    sd_um: float) -> sp.csr_matrix:
    """Coupling weights C (neuron, neuron), sparse: ``k(dist) · sim / Σ_m k(dist)``."""
    n = len(positions)
    i, j, w = _gaussian_pairs(positions, sd_um)
    total = np.bincount(i, weights=w, minlength=n)
    sim = tuning_similarity(orientation, cell_type, i, j)
    return sp.csr_matrix((w * sim / total[i], (i, j)), shape=(n, n))


def divisive_normalization(drive: np.ndarray, pool: sp.spmatrix, strength: np.ndarray) -> np.ndarray:
    """Normalise (image, neuron) drives by the pool's activity; ``strength`` (neuron,)."""
    pooled = (pool @ drive.T).T
    return drive * (1.0 + strength) / (1.0 + strength * pooled)


def lateral_coupling(drive: np.ndarray, coupling: sp.spmatrix, strength: float) -> np.ndarray:
    """Add the coupled neighbours' drives: (image, neuron) → (image, neuron), rectified."""
    return np.maximum(drive + strength * (coupling @ drive.T).T, 0.0)


def state_trajectory(n_trials: int, n_dims: int, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary unit-variance AR(1) processes over presentation order: (trial, dims)."""
    rho = np.exp(-1.0 / tau)
    shocks = rng.standard_normal((n_trials, n_dims))
    out = np.empty((n_trials, n_dims))
    out[0] = shocks[0]
    scale = np.sqrt(1 - rho**2)
    for t in range(1, n_trials):
        out[t] = rho * out[t - 1] + scale * shocks[t]
    return out


def state_loadings(n_neurons: int, n_dims: int, rng: np.random.Generator) -> np.ndarray:
    """Per-neuron loadings (neuron, dims): dim 0 ~ N(1, 0.3²) (a global gain), others ~ N(0, 0.5²)."""
    load = 0.5 * rng.standard_normal((n_neurons, n_dims))
    load[:, 0] = 1.0 + 0.3 * rng.standard_normal(n_neurons)
    return load


def state_gain(trajectory: np.ndarray, loadings: np.ndarray, sd: float) -> np.ndarray:
    """Multiplicative gains (trial, neuron) with mean 1: ``exp(sd · s_t·w_n − sd² |w_n|² / 2)``."""
    log_gain = sd * trajectory @ loadings.T
    return np.exp(log_gain - 0.5 * sd**2 * (loadings**2).sum(axis=1))


def adapt(rates: np.ndarray, strength: float, tau: float, reference: np.ndarray) -> np.ndarray:
    """Apply adaptation along the rows (presentation order) of ``rates`` (trial, neuron).

    ``r_t = u_t / (1 + strength · a_t / reference)``, ``a_t = (1 − ρ) Σ_{k≥1} ρ^{k−1} r_{t−k}``,
    ``ρ = e^{−1/τ}``, computed recursively (the first trial has no history).
    """
    rho = np.exp(-1.0 / tau)
    out = np.empty_like(rates)
    history = np.zeros(rates.shape[1])
    gain = strength / reference
    for t in range(len(rates)):
        out[t] = rates[t] / (1.0 + gain * history)
        history = rho * history + (1 - rho) * out[t]
    return out

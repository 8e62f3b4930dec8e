"""Intrinsic dimension of a point cloud (e.g. population responses, one point per trial).

Three estimators, one entry point :func:`intrinsic_dimension`. The numbers quoted below were
measured on the manifolds of tests/test_analysis_dimension.py — d-dimensional spheres, flat tori
(S¹)^d and swiss rolls rotated into 100 dimensions — with three seeds each.

``"graph"`` — after Granata & Carnevale 2016 (Sci Rep 6:31377), written here (no library has it)
    Geodesic distances are approximated by shortest paths on a k-nearest-neighbour graph, and ``D``
    is read off the shape of their distribution ``p(r)``. Two models of that shape
    (``GraphDistanceDimension(model=...)``):

    ``model="hypersphere"`` is the paper's: on a hypersphere of dimension ``D`` geodesic distances
    follow ``p(r) ∝ sin^(D−1)(π r / (2 r_max))``, and the paper's premise is that near its maximum
    ``r_max`` the distribution of other manifolds has this shape too; ``D − 1`` is the slope of
    ``log p(r)/p(r_max)`` against ``log sin(π r / 2 r_max)`` over ``r_max − 2 s ≤ r ≤ r_max``
    (``s``: s.d. of all graph distances). The premise fails on flat manifolds without boundary:
    relative to its mode, the distance distribution of a flat d-torus is ~√2 times narrower than
    that of the d-sphere (0.45/√d against 0.64/√d), and the fit reads it as D ≈ 2 d — exact
    geodesic distances of the 2-, 5- and 10-torus give 2.8, 8.7 and 18.1, graph distances (5,000
    points, k = 20) 2.8, 10.0–10.9 and 25–31. It is also sensitive to the sampling: 5.2–5.5 on the
    5-sphere with 2,000 points, 5.9–6.1 with 5,000.

    ``model="curvature"`` (default) is the same fit with the curvature set free: the density of
    distances in a D-dimensional space of constant curvature κ is ``p(r) ∝ sin_κ(r)^(D−1)``, with
    ``sin_κ(r) = sin(√κ r)/√κ`` (κ > 0; the hypersphere, whose equator at ``r_max`` means
    κ = (π / 2 r_max)²), ``r`` (κ = 0, flat) or ``sinh(√−κ r)/√−κ`` (κ < 0). For any D-manifold
    the density of distances from a point grows as ``r^(D−1) (1 − S r² / 6D + …)`` (``S``: scalar
    curvature), which is this model to second order in ``r`` with κ = S / D(D−1), the mean
    sectional curvature; a flat torus is κ = 0 exactly below its injectivity radius π. So the
    model does not rest on the premise that other manifolds look like spheres near ``r_max``;
    what remains is the bias of the higher orders over the fitted range. ``D``, κ and the amplitude
    are fitted by least squares in log density over the whole rising side ``e ≤ r ≤ r_max``:
    ``e``, the longest kNN edge (99th percentile, so that a few outlying points do not move it),
    is where Granata & Carnevale's reference procedure starts too — below it graph distances can
    be single edges, i.e. straight chords. Between ``e`` and ~5 e the histogram is a comb, one
    tooth per number of hops (kNN edges have nearly equal lengths); the density is therefore
    averaged over a moving window one mean edge wide, which removes a periodic comb of that
    period, and the model is averaged the same way before it is compared (so the window adds no
    bias). Without the averaging the fitted ``D`` follows the teeth: on the 5-torus (10,000 points,
    k = 10) it was 4.0, 5.3, 4.9 and 8.1 for lower ends at 1.3, 1.5, 2 and 2.5 e; with it, 4.5, 5.5
    and 6.2 at 1, 1.5 and 2 e — smooth, and rising as the range shrinks towards ``r_max``, like the
    fit of exact torus distances (5.3, 5.5, 5.8, 6.5 from 0.2, 0.3, 0.4, 0.5 ``r_max``): hence
    the lowest lower end the graph allows.
    With *exact* geodesic distances (no graph) and ``r ≥ 0.2–0.3 r_max`` the fit gives
    2.0 / 5.0 / 10.0–10.3 on spheres, 2.1–2.2 / 5.3–5.5 / 10.6–11.3 on tori and 1.8–1.9 / 4.6–4.7
    / 9.3–9.6 on swiss rolls (d = 2 / 5 / 10). With graph distances (5,000 points, k = 20, three
    seeds): 2.02 / 4.67–4.68 on spheres, 2.01–2.02 / 4.98–4.99 on tori, 1.83–1.88 / 4.69–4.74 on
    swiss rolls; κ r_max² is 2.3–2.5 on the 2-sphere (π²/4 = 2.47) and 0.0–0.1 on the flat
    2-torus. On the 5-manifolds 3,000 and 10,000 points give 4.6–5.2 and 4.6–5.0, k = 10 and 30
    give 4.25–4.4 and 4.7–5.5: graph distances of 2–3 hops are stretched less than longer ones
    (shortest path / geodesic rises from 1 at one hop to 1.25–1.45), which flattens the low end
    of the fitted range, the more so the fewer the neighbours.

    Neither model works at *d = 10* with 10⁴ points: the longest kNN edge is ~0.3 ``r_max``
    (``details["edge_to_r_max"]``), and shortest paths zigzag — in 10 dimensions few of k
    neighbours lie towards the target — so graph / geodesic distance is 1.4–2.0 (k = 20–10) with a
    per-pair s.d. of 0.1–0.3 that declines with distance, as wide as the geodesic distribution
    itself (s.d. / mode ≈ 0.2 on the 10-sphere). Measured (5,000–10,000 points, k = 20): curvature
    fit 6.6–6.9 (sphere), 7.6–8.0 (torus), 5.8–6.3 (swiss roll); hypersphere fit 3–22, 23–31 and
    10–17. Exact geodesic distances give 10.0–10.3, 10.6–11.3 and 9.3–9.6 with the curvature fit,
    so it is the graph that fails, not the model. Nor do more points help: the kNN scale shrinks
    as n^(−1/10), and the stretch depends on the dimension and k, not on n (10,000 points: 6.7 on
    the 10-sphere). Other graphs measured no better (three manifolds, d = 10, 5,000 points):
    k = 4 / 6 / 10 give 3.6–4.1 / 4.4–4.7 / 5.3–5.6; k = 50 / 100, no convergence either: 9.0 / 13.8
    (sphere), 14.5 / 34.5 (torus), 6.2 / 7.7 (swiss roll), two-hop stretch still 1.25–1.47; an ε-graph
    (every pair closer than ρ = 0.2–0.55 ``r_max``, so that shorter distances are exact chords) gives
    3–16 with a goodness of fit of 0.8–2.1, because distances just above ρ jump up (the lens of two
    ρ-balls holds few points in 10 dimensions); power-weighted (Fermat) paths, edge
    weights |e|² or |e|³, 6.0–7.9 / 5.5–7.6; and direct Euclidean distances, right for the sphere
    and swiss roll (11.2, 10.6 from 0.3 ``r_max``), give 19.5 on the (cos, sin)-embedded torus,
    whose chords at ``r_max`` are far shorter than its arcs.

    The failure is not flagged by the goodness of fit (0.12–0.30 against 0.00–0.07 at d ≤ 5) and
    only weakly by ``edge_to_r_max`` (0.31–0.37 against 0.26–0.30 at d = 5), but the zigzag itself
    is measurable on the data: ``path_stretch_``, the median ratio of graph to straight-line
    distance over pairs two edges apart, ~1 when paths follow the manifold. With k = 20 and 5,000
    points (3,000 and 10,000 alike, ±0.04) it rises smoothly with d — 1.01 at d = 2, 1.06–1.08
    at 3, 1.13–1.17 at 4, 1.20–1.26 at 5, 1.25–1.33 at 6, 1.28–1.39 at 7, 1.35–1.49 at 10 — and the
    error with it: within ±10 % below 1.21, −11 to −17 % at 1.24–1.25 (spheres and swiss rolls
    at d = 6), −18 % or worse on every sphere and swiss roll above 1.27 (tori, whose fit is
    biased up, reach −15 % only at 1.46). ``fit`` warns above :data:`ZIGZAG_STRETCH` = 1.25 that
    the estimate is likely a lower bound — cautiously: the accurate 5-torus is at 1.24–1.27.
``"twonn"`` — Facco et al. 2017 (Sci Rep 7:12140), from scikit-dimension (``skdim.id.TwoNN``)
    The ratio of second- to first-neighbour distances is Pareto-distributed with exponent ``d``.
    Within 15 % for spheres, tori and swiss rolls of d ≤ 10 with 3,000 points, except the flat
    10-torus, which needs ~10,000 (11.6–12.1 with 3,000 points for any discard fraction
    0.05–0.2; 11.2–11.4 with 10,000; 11.0–11.1 with 20,000).
``"correlation"`` — Grassberger & Procaccia 1983, from scikit-dimension (``skdim.id.CorrInt``)
    Slope of the log fraction of point pairs closer than ``r`` against ``log r`` between the
    ``k1``-th and ``k2``-th neighbour distances (medians over points). The dimension is the limit
    r → 0; at finite ``r`` curvature — of the manifold and of its embedding — biases the slope, so
    the defaults here are the smallest neighbourhoods, ``k1 = 1, k2 = 3`` (scikit-dimension's are
    10 and 20). 3,000 points: 9.0–9.6 on the 10-sphere and 9.0–9.2 on the 10-d swiss roll
    (8.5–9.0 with 10–20), within 15 % at d ≤ 5 either way. The flat 10-torus, embedded as
    (cos, sin) pairs, is the hard case: at neighbour distances each circle is seen over ~1 radian,
    where chords are visibly shorter than arcs, and the slope is 12.3–12.6 with 3,000 points
    (12.7–12.9 with 10–20); the correlation integral of the *arc* lengths gives 10.0 at the same scales.
    20,000 points bring the neighbour scale down enough: 11.3–11.4 with ``k1 = 1, k2 = 3``
    (12.3–12.4 with 10–20). Graph distances cannot replace arcs here: one-hop graph distances are
    the chords themselves.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.base import BaseEstimator
from sklearn.neighbors import kneighbors_graph

from v1nb.analysis._inputs import check_matrix

__all__ = ["GraphDistanceDimension", "IntrinsicDimension", "intrinsic_dimension", "METHODS", "GRAPH_MODELS",
           "ZIGZAG_STRETCH"]

METHODS = ("graph", "twonn", "correlation")
GRAPH_MODELS = ("curvature", "hypersphere")

#: Default neighbourhoods of the correlation dimension (see the module docstring).
CORRELATION_DEFAULTS = {"k1": 1, "k2": 3}

#: Two-hop path stretch above which the graph estimate is flagged as a likely underestimate (see
#: the module docstring): shortest paths that long are blurred copies of the geodesics.
ZIGZAG_STRETCH = 1.25

# Histogram bins per mean kNN edge in the curvature fit; odd, so that the moving average over one
# edge length is centred on its bin.
_BINS_PER_EDGE = 11


@dataclass(frozen=True)
class IntrinsicDimension:
    """An intrinsic-dimension estimate.

    Attributes
    ----------
    dimension : float
    method : str
        One of :data:`METHODS`.
    goodness_of_fit : float or None
        ``"graph"``: RMS deviation of the fit in log density (smaller is better);
        ``"twonn"``: RMS deviation of its linear fit; ``"correlation"``: None.
    details : dict
        Method-specific diagnostics (e.g. the fitted density curve for ``"graph"``).
    """

    dimension: float
    method: str
    goodness_of_fit: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.dimension)


def _sin_kappa(x: np.ndarray, u: float) -> np.ndarray:
    """Generalised sine of a space of constant curvature, distances in units of ``r_max``.

    ``u = κ r_max²``: ``sin(√u x)/√u`` (u > 0, clipped at its first zero), ``x`` (u = 0),
    ``sinh(√−u x)/√−u`` (u < 0).
    """
    x = np.asarray(x, dtype=float)
    if abs(u) < 1e-9:
        return x.copy()
    s = np.sqrt(abs(u))
    if u > 0:
        return np.sin(np.clip(s * x, 0.0, np.pi)) / s
    return np.sinh(s * x) / s


def _two_hop_stretch(X: np.ndarray, sources: np.ndarray, dist: np.ndarray, hops: np.ndarray) -> float:
    """Median of graph distance / straight-line distance over the pairs two edges apart.

    ``X``: (point, feature) array of the graph's points; ``sources``: (source,) indices into it;
    ``dist``, ``hops``: (source, point) shortest-path lengths and edge counts.
    """
    rows, cols = np.nonzero(hops == 2)
    if len(rows) == 0:
        return float("nan")
    chunk = max(1_000, 2_500_000 // X.shape[1])  # bounded memory for wide X
    chords = np.concatenate([np.linalg.norm(X[sources[rows[i:i + chunk]]] - X[cols[i:i + chunk]], axis=1)
                             for i in range(0, len(rows), chunk)])
    keep = chords > 0
    return float(np.median(dist[rows[keep], cols[keep]] / chords[keep]))


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` (odd) bins; zero padding outside the array."""
    return np.convolve(values, np.ones(width) / width, mode="same")


class GraphDistanceDimension(BaseEstimator):
    """Intrinsic dimension from the distribution of graph (approximately geodesic) distances.

    After Granata & Carnevale (2016); see the module docstring for the two fits and what they are
    accurate for.

    Parameters
    ----------
    n_neighbors : int
        Neighbours per point in the kNN graph (the graph is symmetrised; only its largest
        connected component is used).
    n_sources : int, optional
        Shortest paths are computed from this many randomly chosen points (all points when
        None or larger than the data); the distance distribution converges quickly in it.
    n_bins : int, optional
        Bins of the distance histogram of ``model="hypersphere"`` (default: √(number of
        distances)/4, between 15 and 50). The curvature fit uses bins of 1/11 mean kNN edge.
    r_max : float, optional
        Position of the maximum of the distance distribution; default: the vertex of a parabola
        fitted to the log density around the highest bin (for ``"curvature"``: of the density
        averaged over one edge, within ±1 edge).
    random_state : int, optional
        Seed of the choice of sources.
    model : {"curvature", "hypersphere"}
        ``"curvature"``: ``p(r) ∝ sin_κ(r)^(D−1)`` with the curvature κ fitted, over
        ``e ≤ r ≤ r_max`` (``e``: longest kNN edge), on the density averaged over one kNN edge.
        ``"hypersphere"``: Granata & Carnevale's fit, κ fixed to (π / 2 r_max)², over
        ``r_max − 2 s ≤ r ≤ r_max``. The hypersphere fit is computed either way
        (``hypersphere_dimension_``), for comparison.

    Attributes
    ----------
    dimension_ : float
    goodness_of_fit_ : float
        RMS deviation of the chosen fit in log density over its bins.
    curvature_ : float
        ``κ r_max²`` of the curvature fit: π²/4 ≈ 2.47 for a hypersphere, 0 for a flat manifold
        (π²/4 by construction for ``model="hypersphere"``).
    hypersphere_dimension_, hypersphere_goodness_of_fit_ : float
        Granata & Carnevale's fit, whichever ``model`` is chosen.
    r_max_ : float
        Position of the maximum of the distance distribution used by the chosen fit.
    sigma_ : float
        Width of the maximum (parabola in log density, hypersphere fit; NaN if that fit failed).
    r_min_ : float
        Lower end of the chosen fit's range.
    edge_to_r_max_ : float
        Longest kNN edge (99th percentile) over ``r_max``; the curvature fit uses
        ``[edge, r_max]``. Measured with 5,000 points and k = 20: 0.09–0.16 at d = 2 and
        0.26–0.30 at d = 5 (accurate), 0.31–0.37 at d = 10 (not accurate).
    path_stretch_ : float
        Median ratio of graph distance to straight-line distance over the pairs joined by two
        edges (and not by one): ~1 where shortest paths follow the manifold, larger where they
        zigzag. Above :data:`ZIGZAG_STRETCH` the estimate is biased low, and ``fit`` warns.
    edge_period_ : float
        Mean kNN edge: the tooth spacing of the comb and the width of the moving average.
    histogram_ : (n_bins,) array, bin_centers_ : (n_bins,) array
        The empirical density of graph distances of the chosen fit (for ``"curvature"``: fine
        bins, not averaged; ``smoothed_histogram_`` is the averaged density that was fitted).
    fit_mask_ : (n_bins,) bool array
        Bins used by the chosen fit.
    n_points_used_ : int
        Points in the largest connected component.
    """

    def __init__(self, n_neighbors: int = 20, n_sources: int | None = 1000, n_bins: int | None = None,
                 r_max: float | None = None, random_state: int | None = 0, model: str = "curvature"):
        self.n_neighbors = n_neighbors
        self.n_sources = n_sources
        self.n_bins = n_bins
        self.r_max = r_max
        self.random_state = random_state
        self.model = model

    def fit(self, X: np.ndarray, y: None = None) -> "GraphDistanceDimension":
        """Estimate the dimension of the (sample, feature) array ``X``."""
        if self.model not in GRAPH_MODELS:
            raise ValueError(f"GraphDistanceDimension: model={self.model!r} is not one of {GRAPH_MODELS}")
        X = check_matrix(X, "X", min_rows=self.n_neighbors + 2)
        graph = kneighbors_graph(X, self.n_neighbors, mode="distance", include_self=False)
        graph = graph.maximum(graph.T)
        _, labels = connected_components(graph, directed=False)
        main = np.flatnonzero(labels == np.bincount(labels).argmax())
        graph = graph[main][:, main]
        rng = np.random.default_rng(self.random_state)
        n = len(main)
        sources = np.arange(n) if self.n_sources is None or self.n_sources >= n else rng.choice(n, self.n_sources, replace=False)
        dist = dijkstra(graph, directed=False, indices=sources)
        hops = dijkstra(graph, directed=False, indices=sources, unweighted=True)
        self.path_stretch_ = _two_hop_stretch(X[main], sources, dist, hops)
        r = dist[np.isfinite(dist) & (dist > 0)]
        edges = graph.data[graph.data > 0]
        self.n_points_used_ = n
        self.edge_period_ = float(edges.mean())
        # the longest kNN edge; a few long edges of outlying points are left out (99th percentile)
        longest = float(np.quantile(edges, 0.99))
        if self.model == "hypersphere":
            chosen = hyper = self._hypersphere_fit(r)
        else:
            chosen = self._curvature_fit(r, self.edge_period_, longest)
            try:  # the paper's fit, for comparison only: its failure must not hide the estimate
                hyper = self._hypersphere_fit(r)
            except ValueError:
                hyper = {"dimension": np.nan, "goodness_of_fit": np.nan, "sigma": np.nan}
        self.hypersphere_dimension_ = hyper["dimension"]
        self.hypersphere_goodness_of_fit_ = hyper["goodness_of_fit"]
        self.dimension_ = chosen["dimension"]
        self.goodness_of_fit_ = chosen["goodness_of_fit"]
        self.curvature_ = chosen["curvature"]
        self.r_max_, self.sigma_, self.r_min_ = chosen["r_max"], hyper["sigma"], chosen["r_min"]
        self.log_amplitude_ = chosen["log_amplitude"]
        self.histogram_, self.bin_centers_, self.fit_mask_ = chosen["histogram"], chosen["centers"], chosen["mask"]
        self.smoothed_histogram_ = chosen.get("smoothed")
        self.edge_to_r_max_ = longest / self.r_max_
        if self.path_stretch_ > ZIGZAG_STRETCH:
            warnings.warn(
                f"GraphDistanceDimension: shortest paths two edges long are {self.path_stretch_:.2f} times the "
                f"straight-line distance (above {ZIGZAG_STRETCH}): they zigzag, the graph distances blur the "
                f"geodesic ones, and the dimension {self.dimension_:.1f} is likely an underestimate (a lower "
                f"bound); compare method='twonn' or 'correlation'", UserWarning, stacklevel=2)
        return self

    def _hypersphere_fit(self, r: np.ndarray) -> dict[str, Any]:
        """Granata & Carnevale's fit: κ = (π / 2 r_max)², near the maximum, through p(r_max)."""
        n_bins = self.n_bins or int(np.clip(np.sqrt(len(r)) / 4, 15, 50))
        density, edges = np.histogram(r, bins=n_bins, density=True)
        centers = 0.5 * (edges[1:] + edges[:-1])
        dx = edges[1] - edges[0]
        # Locate the maximum and width of the distribution by a parabola fitted to the log
        # density around the highest bin (twice, the second time in the refined window), as in
        # Granata & Carnevale's reference procedure: a single bin is too noisy for r_max.
        r_max, sigma = (float(self.r_max), float(r.std())) if self.r_max is not None else (float(centers[np.argmax(density)]), float(r.std()))
        log_peak = float(np.log(density.max()))
        for upper_extra in (0.0, dx):
            window = (centers > r_max - sigma) & (centers < r_max + sigma / 2 + upper_extra) & (density > 0)
            if window.sum() < 4:
                break
            a2, a1, a0 = np.polyfit(centers[window], np.log(density[window]), 2)
            if a2 >= 0:
                break
            if self.r_max is None:
                r_max = -a1 / (2 * a2)
            sigma = float(np.sqrt(-1 / (2 * a2)))
            log_peak = float(a0 + a1 * r_max + a2 * r_max ** 2)
        # The paper's fitting range: the rising side of the maximum, r_max − 2 s ≤ r ≤ r_max,
        # with s the standard deviation of all graph distances.
        r_min = max(float(r_max - 2 * r.std() - dx / 2), 0.0)
        mask = (centers > r_min) & (centers <= r_max + dx / 4) & (density > 0)
        if mask.sum() < 3:
            raise ValueError(
                f"GraphDistanceDimension: only {int(mask.sum())} histogram bins near the maximum of the "
                f"distance distribution; use more points or fewer bins (n_bins={self.n_bins})"
            )
        x = np.log(np.sin(np.clip(0.5 * np.pi * centers[mask] / r_max, 1e-12, np.pi / 2)))
        y = np.log(density[mask]) - log_peak
        # log p/p_max = (D − 1) log sin(π r / 2 r_max): a line through the origin.
        slope = max(float(x @ y / (x @ x)), 0.0)
        resid = y - slope * x
        return {"dimension": slope + 1.0, "goodness_of_fit": float(np.sqrt(np.mean(resid ** 2))),
                "curvature": np.pi ** 2 / 4, "r_max": float(r_max), "sigma": sigma, "r_min": float(r_min),
                # model_density uses sin_κ(x) = sin(π x / 2) / (π / 2): rescale so it peaks at p(r_max)
                "log_amplitude": log_peak + slope * np.log(np.pi / 2), "histogram": density, "centers": centers, "mask": mask}

    def _curvature_fit(self, r: np.ndarray, period: float, longest: float) -> dict[str, Any]:
        """``log p(r) = a + (D − 1) log sin_κ(r)`` over [longest edge, r_max], comb averaged out.

        ``period``: the mean kNN edge (the comb's tooth spacing); ``longest``: the longest edge.
        """
        width = period / _BINS_PER_EDGE
        n_fine = int(np.ceil(r.max() / width)) + _BINS_PER_EDGE
        counts, bin_edges = np.histogram(r, bins=n_fine, range=(0.0, n_fine * width))
        centers = 0.5 * (bin_edges[1:] + bin_edges[:-1])
        density = counts / (len(r) * width)
        smoothed = _moving_average(density, _BINS_PER_EDGE)
        if self.r_max is not None:
            r_max = float(self.r_max)
        else:
            # Maximum of the averaged density, refined by a parabola in log density over ±1 edge.
            i = int(np.argmax(smoothed))
            r_max = float(centers[i])
            window = (np.abs(centers - r_max) <= period) & (smoothed > 0)
            a2, a1, _ = np.polyfit(centers[window], np.log(smoothed[window]), 2)
            if a2 < 0 and abs(-a1 / (2 * a2) - r_max) <= period:
                r_max = float(-a1 / (2 * a2))
        # Shorter graph distances are single edges (Euclidean chords).
        r_min = longest
        mask = (centers >= r_min) & (centers <= r_max) & (smoothed > 0)
        if mask.sum() < 5:
            raise ValueError(
                f"GraphDistanceDimension: the longest kNN edge ({r_min:.3g}) leaves {int(mask.sum())} bins "
                f"below the maximum of the distance distribution (r_max = {r_max:.3g}); model='curvature' "
                f"needs more points or fewer neighbours (n_neighbors={self.n_neighbors}), or use model='hypersphere'"
            )
        y = np.log(smoothed[mask])
        x = centers / r_max
        # The averaged model at the fitted bins reaches half an edge beyond r_max (bins up to one
        # edge beyond are evaluated, the rest stay 0); keep √u x < π there.
        x_hi = (r_max + period) / r_max
        support = (x > 0) & (x <= x_hi)
        u_max = (np.pi / x_hi) ** 2

        def log_model(dim: float, u: float) -> np.ndarray:
            shape = np.zeros_like(x)
            shape[support] = _sin_kappa(x[support], u) ** (dim - 1.0)
            return np.log(_moving_average(shape, _BINS_PER_EDGE)[mask] + 1e-300)

        def residuals(p: np.ndarray) -> np.ndarray:
            res = y - log_model(p[0], p[1])
            return res - res.mean()  # the amplitude is profiled out

        best = None
        for u0 in (0.0, 0.5 * u_max, 0.9 * u_max):  # the cost can have more than one minimum in κ
            # κ ≥ −(π / r_max)²: hyperbolic with a curvature radius of at least r_max / π.
            sol = least_squares(residuals, [3.0, u0], bounds=([1.0, -np.pi ** 2], [100.0, u_max]))
            if best is None or sol.cost < best.cost:
                best = sol
        dim, u = (float(v) for v in best.x)
        resid = residuals(best.x)
        return {"dimension": dim, "goodness_of_fit": float(np.sqrt(np.mean(resid ** 2))), "curvature": u,
                "r_max": r_max, "r_min": r_min, "log_amplitude": float(np.mean(y - log_model(dim, u))),
                "histogram": density, "smoothed": smoothed, "centers": centers, "mask": mask}

    def model_density(self, r: np.ndarray) -> np.ndarray:
        """The fitted density at distances ``r`` (for plots; not averaged over an edge)."""
        x = np.clip(np.asarray(r, dtype=float) / self.r_max_, 0.0, None)
        return np.exp(self.log_amplitude_) * _sin_kappa(x, self.curvature_) ** (self.dimension_ - 1.0)


def intrinsic_dimension(X: np.ndarray, method: str = "graph", **options: Any) -> IntrinsicDimension:
    """Estimate the intrinsic dimension of a point cloud.

    Parameters
    ----------
    X : (sample, feature) array
        E.g. (trial, neuron) responses. Duplicate points are removed (they make nearest-neighbour
        ratios undefined).
    method : {"graph", "twonn", "correlation"}
        See the module docstring.
    **options
        Passed to the estimator: :class:`GraphDistanceDimension` for ``"graph"`` (e.g. ``model``),
        ``skdim.id.TwoNN`` (e.g. ``discard_fraction``) or ``skdim.id.CorrInt`` (``k1``, ``k2``;
        defaults here 1 and 3).

    Returns
    -------
    IntrinsicDimension
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    X = np.unique(check_matrix(X, "X", min_rows=3), axis=0)
    if method == "graph":
        est = GraphDistanceDimension(**options).fit(X)
        details = {"model": est.model, "r_max": est.r_max_, "r_min": est.r_min_, "edge_to_r_max": est.edge_to_r_max_,
                   "path_stretch": est.path_stretch_,
                   "curvature": est.curvature_, "hypersphere_dimension": est.hypersphere_dimension_,
                   "hypersphere_goodness_of_fit": est.hypersphere_goodness_of_fit_,
                   "n_points_used": est.n_points_used_, "histogram": est.histogram_,
                   "bin_centers": est.bin_centers_, "fit_mask": est.fit_mask_,
                   "model_density": est.model_density(est.bin_centers_)}
        return IntrinsicDimension(est.dimension_, method, est.goodness_of_fit_, details)
    import skdim  # imported here: it pulls in numba, slow to import

    if method == "twonn":
        est = skdim.id.TwoNN(**options).fit(X)
        x, y = est.x_, est.y_
        # skdim fits y = d·x through the origin; report the RMS residual of that line.
        gof = float(np.sqrt(np.mean((y - est.dimension_ * x) ** 2)))
        return IntrinsicDimension(float(est.dimension_), method, gof, {"n_points_used": len(X)})
    est = skdim.id.CorrInt(**{**CORRELATION_DEFAULTS, **options}).fit(X)
    return IntrinsicDimension(float(est.dimension_), method, None, {"n_points_used": len(X), "k1": est.k1, "k2": est.k2})

"""Intrinsic dimension of a point cloud (e.g. population responses, one point per trial).

Three estimators, one entry point :func:`intrinsic_dimension`:

``"graph"`` — Granata & Carnevale 2016 (Sci Rep 6:31377), written here (no library has it)
    Geodesic distances are approximated by shortest paths on a k-nearest-neighbour graph. On a
    hypersphere of dimension ``D`` the geodesic distances follow
    ``p(r) ∝ sin^(D−1)(π r / (2 r_max))``; the paper's premise is that near its maximum
    ``r_max`` the distance distribution of other manifolds has this shape too. ``D`` is the
    slope of ``log p(r)/p(r_max)`` against ``log sin(π r / 2 r_max)`` over the paper's range
    ``r_max − 2 s ≤ r ≤ r_max`` (``s``: standard deviation of all graph distances), ``r_max`` and
    ``p(r_max)`` from a parabola fitted to the log histogram around its highest bin. The RMS
    deviation of that line (in log density) is the goodness of fit. Measured on 2,000 points in
    100 dimensions with k = 20 neighbours (tests/test_analysis_dimension.py): 2.03 and 5.2–5.5
    on the 2- and 5-sphere, 1.85 and 5.0–5.1 on 2- and 5-d swiss rolls. It fails where its
    premise or its sampling fails: *flat tori* have a narrower distance distribution than a
    sphere (exact geodesic distances of the 2-, 5-, 10-torus give 3.1, 8.8, 18.1; for large d,
    D − 1 ≈ 20 d / π²), and at *d = 10* a few thousand points make graph distances 2–5 kNN
    edges long (``details["edge_to_r_max"]`` 0.4–0.5), a comb-like histogram: 15.1 on the
    10-sphere, 12.0–12.4 on the 10-d swiss roll, with a poor fit (RMS 0.75–1.5 against < 0.3).
    k = 5 gave +20 % on the 5-sphere; k = 10–20 fix it at d ≤ 5.
``"twonn"`` — Facco et al. 2017 (Sci Rep 7:12140), from scikit-dimension (``skdim.id.TwoNN``)
    The ratio of second- to first-neighbour distances is Pareto-distributed with exponent ``d``.
    Within 15 % for spheres, tori and swiss rolls of d ≤ 10 with 3,000 points, except the flat
    10-torus, which needs ~10,000 (11.6–12.1 with 3,000 points for any discard fraction
    0.05–0.2; 11.2–11.35 with 10,000; 11.0–11.1 with 20,000).
``"correlation"`` — Grassberger & Procaccia 1983, from scikit-dimension (``skdim.id.CorrInt``)
    Slope of the log fraction of point pairs closer than ``r`` against ``log r`` between the
    ``k1``-th and ``k2``-th neighbour distances. Within 15 % for d ≤ 10 on spheres and swiss
    rolls (8.6–8.9 at d = 10) and on tori of d ≤ 5; the flat 10-torus gives 12.7 (3,000
    points) and 12.6 (10,000): at those neighbour distances its (cos, sin) chords are visibly
    shorter than the arcs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.base import BaseEstimator
from sklearn.neighbors import kneighbors_graph

from v1nb.analysis._inputs import check_matrix

__all__ = ["GraphDistanceDimension", "IntrinsicDimension", "intrinsic_dimension", "METHODS"]

METHODS = ("graph", "twonn", "correlation")


@dataclass(frozen=True)
class IntrinsicDimension:
    """An intrinsic-dimension estimate.

    Attributes
    ----------
    dimension : float
    method : str
        One of :data:`METHODS`.
    goodness_of_fit : float or None
        ``"graph"``: RMS deviation of the hypersphere fit in log density (smaller is better);
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


class GraphDistanceDimension(BaseEstimator):
    """Granata & Carnevale (2016) intrinsic dimension from the graph-distance distribution.

    Parameters
    ----------
    n_neighbors : int
        Neighbours per point in the kNN graph (the graph is symmetrised; only its largest
        connected component is used).
    n_sources : int, optional
        Shortest paths are computed from this many randomly chosen points (all points when
        None or larger than the data); the distance distribution converges quickly in it.
    n_bins : int, optional
        Bins of the distance histogram (default: √(number of distances)/4, between 15 and 50).
    r_max : float, optional
        Position of the maximum of the distance distribution; default: the vertex of a parabola
        fitted to the log density around the highest bin.
    random_state : int, optional
        Seed of the choice of sources.

    Attributes
    ----------
    dimension_ : float
    r_max_, sigma_ : float
        Position and width of the maximum of the distance distribution (parabola in log density).
    r_min_ : float
        Lower end of the fitted range, ``r_max − 2 s`` (``s``: s.d. of all graph distances).
    edge_to_r_max_ : float
        Longest kNN edge over ``r_max``. Above ~0.3 graph distances are only a few edges long
        and the estimate is unreliable (measured: 0.17–0.35 where it is accurate, 0.4–0.5 on
        10-dimensional manifolds where it is not).
    goodness_of_fit_ : float
        RMS deviation of the fit in log density over the fitted bins.
    histogram_ : (n_bins,) array, bin_centers_ : (n_bins,) array
        The empirical density of graph distances.
    fit_mask_ : (n_bins,) bool array
        Bins used by the fit.
    n_points_used_ : int
        Points in the largest connected component.
    """

    def __init__(self, n_neighbors: int = 20, n_sources: int | None = 1000, n_bins: int | None = None,
                 r_max: float | None = None, random_state: int | None = 0):
        self.n_neighbors = n_neighbors
        self.n_sources = n_sources
        self.n_bins = n_bins
        self.r_max = r_max
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: None = None) -> "GraphDistanceDimension":
        """Estimate the dimension of the (sample, feature) array ``X``."""
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
        r = dist[np.isfinite(dist) & (dist > 0)]
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
        # with s the standard deviation of all graph distances. (Cutting the range further at the
        # longest kNN edge, where graph distances stop being geodesic, left too few bins and
        # made the estimate unstable in k: measured in tests/test_analysis_dimension.py.)
        r_min = max(float(r_max - 2 * r.std() - dx / 2), 0.0)
        mask = (centers > r_min) & (centers <= r_max + dx / 4) & (density > 0)
        if mask.sum() < 3:
            raise ValueError(
                f"GraphDistanceDimension: only {int(mask.sum())} histogram bins near the maximum of the "
                f"distance distribution; use more points or fewer bins (n_bins={self.n_bins})"
            )
        # Graph distances are sums of kNN edges: when the longest edge is a sizeable part of
        # r_max, distances are a few hops, their distribution is a comb and D is unreliable.
        self.edge_to_r_max_ = float(graph.data.max() / r_max)
        self.r_min_ = float(r_min)
        x = np.log(np.sin(np.clip(0.5 * np.pi * centers[mask] / r_max, 1e-12, np.pi / 2)))
        y = np.log(density[mask]) - log_peak
        # log p/p_max = (D − 1) log sin(π r / 2 r_max): a line through the origin.
        slope = max(float(x @ y / (x @ x)), 0.0)
        resid = y - slope * x
        self.dimension_ = slope + 1.0
        self.r_max_ = float(r_max)
        self.sigma_ = sigma
        self.log_peak_ = log_peak
        self.goodness_of_fit_ = float(np.sqrt(np.mean(resid ** 2)))
        self.histogram_, self.bin_centers_, self.fit_mask_ = density, centers, mask
        self.n_points_used_ = n
        return self

    def model_density(self, r: np.ndarray) -> np.ndarray:
        """The fitted hypersphere density at distances ``r`` (for plots)."""
        s = np.sin(np.clip(0.5 * np.pi * np.asarray(r) / self.r_max_, 0, np.pi / 2))
        return np.exp(self.log_peak_) * s ** (self.dimension_ - 1.0)


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
        Passed to the estimator: :class:`GraphDistanceDimension` for ``"graph"``,
        ``skdim.id.TwoNN`` (e.g. ``discard_fraction``) or ``skdim.id.CorrInt`` (``k1``, ``k2``).

    Returns
    -------
    IntrinsicDimension
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    X = np.unique(check_matrix(X, "X", min_rows=3), axis=0)
    if method == "graph":
        est = GraphDistanceDimension(**options).fit(X)
        details = {"r_max": est.r_max_, "r_min": est.r_min_, "edge_to_r_max": est.edge_to_r_max_,
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
    est = skdim.id.CorrInt(**options).fit(X)
    return IntrinsicDimension(float(est.dimension_), method, None, {"n_points_used": len(X)})

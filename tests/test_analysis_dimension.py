"""Intrinsic dimension: manifolds of known dimension embedded in 100 dimensions."""

import warnings

import numpy as np
import pytest

from v1nb.analysis import GraphDistanceDimension, intrinsic_dimension
from v1nb.analysis.dimension import ZIGZAG_STRETCH


def embed(points: np.ndarray, rng: np.random.Generator, ambient: int = 100) -> np.ndarray:
    """Rotate points into a random subspace of ``ambient`` dimensions."""
    basis, _ = np.linalg.qr(rng.normal(size=(ambient, points.shape[1])))
    return points @ basis.T


def sphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points on the d-sphere S^d (in d+1 dimensions)."""
    z = rng.normal(size=(n, d + 1))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def torus(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """The flat d-torus (S^1)^d (in 2d dimensions)."""
    t = rng.uniform(0, 2 * np.pi, size=(n, d))
    return np.concatenate([np.cos(t), np.sin(t)], axis=1)


def swiss_roll(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """A d-dimensional swiss roll: one coordinate rolled into a spiral, d − 1 flat ones."""
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    flat = rng.uniform(0, 21, size=(n, d - 1))
    return np.column_stack([t * np.cos(t), t * np.sin(t), flat])


MANIFOLDS = {"sphere": sphere, "torus": torus, "swiss_roll": swiss_roll}


# Known failures, measured with the seeds below (d-dimensional manifold, 100 ambient dimensions).
# Each is a property of the estimator at the sample sizes a test can afford, not of the code:
UNREACHABLE = {
    # d = 10: with 5,000-10,000 points the longest kNN edge is 0.3 r_max and a shortest path
    # zigzags (graph / geodesic distance 1.7-2.0, per-pair s.d. 0.15-0.2, as wide as the geodesic
    # distribution itself). The curvature fit of *exact* geodesic distances gives 10.1, 11.3, 9.3.
    # The estimator says so itself (test_graph_estimator_flags_zigzag_paths).
    ("graph", "sphere", 10): "graph-distance estimator on the 10-sphere: 6.6-6.9 (5,000 points), 6.7 (10,000)",
    ("graph", "torus", 10): "graph-distance estimator on the flat 10-torus: 7.9-8.0 (5,000 points), 7.6-7.8 (10,000)",
    ("graph", "swiss_roll", 10): "graph-distance estimator on the 10-d swiss roll: 5.8-6.1 (5,000 points), 6.3 (10,000)",
}
#: Points per manifold. The flat 10-torus needs more: TwoNN gives 11.6-12.1 with 3,000 points
#: (any discard fraction 0.05-0.2), 11.2-11.4 with 10,000; the correlation dimension 12.3-12.6
#: with 3,000 and 11.3-11.4 with 20,000 (its (cos, sin) chords are shorter than the arcs at the
#: neighbour scale, which shrinks only as n^(-1/10)).
N_POINTS = {"graph": 5000, "twonn": 3000, "correlation": 3000}
N_POINTS_TORUS_10 = {"twonn": 10_000, "correlation": 20_000}


def n_points(method: str, name: str, d: int) -> int:
    return N_POINTS_TORUS_10.get(method, N_POINTS[method]) if (name, d) == ("torus", 10) else N_POINTS[method]


def marks(method: str, name: str, d: int) -> list:
    if (method, name, d) in UNREACHABLE:
        return [pytest.mark.xfail(reason=UNREACHABLE[(method, name, d)], strict=True)]
    return [pytest.mark.slow] if n_points(method, name, d) > 5000 else []  # 8 s and 12 s of CPU


CASES = [pytest.param(method, name, d, marks=marks(method, name, d))
         for method in ("graph", "twonn", "correlation") for name in MANIFOLDS for d in (2, 5, 10)]


@pytest.mark.parametrize("method, name, d", CASES)
def test_known_dimension_within_15_percent(method, name, d):
    rng = np.random.default_rng(d)
    X = embed(MANIFOLDS[name](n_points(method, name, d), d, rng), rng)
    result = intrinsic_dimension(X, method)
    assert abs(result.dimension - d) <= 0.15 * d, f"{method} on {name}-{d}: {result.dimension:.2f}"
    if method == "graph":
        assert result.goodness_of_fit < 0.3
        assert result.details["fit_mask"].sum() >= 3


def test_graph_estimator_is_deterministic_and_sklearn_like():
    rng = np.random.default_rng(0)
    X = embed(sphere(800, 2, rng), rng)
    a = GraphDistanceDimension(n_sources=200, random_state=1).fit(X)
    b = GraphDistanceDimension(n_sources=200, random_state=1).fit(X)
    assert a.dimension_ == b.dimension_
    assert a.get_params()["n_neighbors"] == 20 and a.get_params()["model"] == "curvature"
    assert np.all(a.model_density(a.bin_centers_) >= 0)
    assert a.fit_mask_.sum() >= 5 and a.smoothed_histogram_.shape == a.histogram_.shape


def test_graph_estimator_flags_zigzag_paths():
    """Two-hop paths are straight on a well-sampled 2-sphere and zigzag on a 10-sphere; only the
    latter, whose estimate is far too low, is flagged."""
    rng = np.random.default_rng(10)
    X10 = embed(sphere(3000, 10, rng), rng)
    with pytest.warns(UserWarning, match="lower bound") as record:
        high = intrinsic_dimension(X10, "graph", n_sources=300)
    assert high.details["path_stretch"] > 1.3 and high.dimension < 8.5
    assert f"{high.details['path_stretch']:.2f} times" in str(record[0].message)
    X2 = embed(sphere(3000, 2, rng), rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low = intrinsic_dimension(X2, "graph", n_sources=300)
    assert 1.0 <= low.details["path_stretch"] < 1.05 < ZIGZAG_STRETCH
    assert abs(low.dimension - 2) < 0.3


def test_graph_curvature_fit_tells_sphere_from_flat_torus():
    """κ r_max² is π²/4 on a hypersphere and 0 on a flat torus; the hypersphere model cannot
    describe the torus (it reads its narrower distance distribution as D ≈ 2 d)."""
    rng = np.random.default_rng(3)
    X_sphere = embed(sphere(3000, 2, rng), rng)
    X_torus = embed(torus(3000, 2, rng), rng)
    s = intrinsic_dimension(X_sphere, "graph", n_sources=300)
    t = intrinsic_dimension(X_torus, "graph", n_sources=300)
    assert abs(s.details["curvature"] - np.pi ** 2 / 4) < 0.5
    assert abs(t.details["curvature"]) < 0.3
    assert abs(t.dimension - 2) < 0.1 and abs(s.dimension - 2) < 0.1
    assert t.details["hypersphere_dimension"] > 2.5  # Granata & Carnevale's fit on the same distances
    h = intrinsic_dimension(X_torus, "graph", n_sources=300, model="hypersphere")
    assert h.details["model"] == "hypersphere" and h.dimension == t.details["hypersphere_dimension"]
    assert h.details["curvature"] == np.pi ** 2 / 4
    # the plotted model passes through the fitted maximum of the density
    peak = h.details["model_density"][np.argmin(abs(h.details["bin_centers"] - h.details["r_max"]))]
    assert abs(np.log(peak) - np.log(h.details["histogram"].max())) < 0.3


def test_graph_curvature_fit_needs_a_resolved_maximum():
    # 40 points, 30 neighbours: graph distances are one or two edges, no rising side is left
    rng = np.random.default_rng(0)
    X = embed(sphere(40, 5, rng), rng)
    with pytest.raises(ValueError, match="more points or fewer neighbours"):
        GraphDistanceDimension(n_neighbors=30).fit(X)
    with pytest.raises(ValueError, match="model"):
        GraphDistanceDimension(model="torus").fit(embed(sphere(100, 2, rng), rng))


def test_correlation_defaults_and_options():
    rng = np.random.default_rng(0)
    X = embed(sphere(1000, 2, rng), rng)
    default = intrinsic_dimension(X, "correlation")
    assert (default.details["k1"], default.details["k2"]) == (1, 3)
    wide = intrinsic_dimension(X, "correlation", k1=10, k2=20)
    assert (wide.details["k1"], wide.details["k2"]) == (10, 20)
    assert wide.dimension != default.dimension and abs(wide.dimension - 2) < 0.3


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        intrinsic_dimension(np.zeros((10, 3)), "pca")
    with pytest.raises(ValueError, match="2-D"):
        intrinsic_dimension(np.zeros(10))
    with pytest.raises(ValueError, match="non-finite"):
        intrinsic_dimension(np.full((10, 3), np.nan))

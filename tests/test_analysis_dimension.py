"""Intrinsic dimension: manifolds of known dimension embedded in 100 dimensions."""

import numpy as np
import pytest

from v1nb.analysis import GraphDistanceDimension, intrinsic_dimension


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
# Each is a property of the estimator, not of the code or the sample size we could afford:
UNREACHABLE = {
    # Flat tori: the hypersphere model does not describe their geodesic-distance distribution,
    # which is narrower relative to its mode (for large d, D − 1 ≈ 20 d / π²). With *exact*
    # geodesic distances (400,000 pairs) the fit gives 3.06, 8.76 and 18.1 for d = 2, 5, 10.
    ("graph", "torus", 2): "graph-distance estimator on the flat 2-torus: 2.80-2.87 over 3 seeds (exact geodesics: 3.06)",
    ("graph", "torus", 5): "graph-distance estimator on the flat 5-torus: 8.1-8.7 (exact geodesics: 8.76)",
    ("graph", "torus", 10): "graph-distance estimator on the flat 10-torus: 26-29 (exact geodesics: 18.1)",
    # d = 10: with 2,000-5,000 points the longest kNN edge is 0.4-0.5 r_max, graph distances are
    # 2-5 hops and their histogram is a comb; halving the edge needs 2^10 times the points.
    ("graph", "sphere", 10): "graph-distance estimator on the 10-sphere: 15.1 (fit RMS 1.5; edge / r_max 0.40)",
    ("graph", "swiss_roll", 10): "graph-distance estimator on the 10-d swiss roll: 12.0-12.4 (fit RMS 0.75; edge / r_max 0.5)",
    # The flat 10-torus embedded as (cos, sin) pairs: at the 10th-20th neighbour distance the
    # chords are visibly shorter than the arcs; 12.7 with 3,000 points, 12.6 with 10,000.
    ("correlation", "torus", 10): "correlation dimension on the flat 10-torus: 12.7 (3,000 points), 12.6 (10,000)",
}
#: Points per manifold. The 10-torus needs more for TwoNN: 11.6-12.1 with 3,000 points
#: (any discard fraction 0.05-0.2), 11.2-11.35 with 10,000, 11.0-11.1 with 20,000.
N_POINTS = {"graph": 2000, "twonn": 3000, "correlation": 3000}


def n_points(method: str, name: str, d: int) -> int:
    return 10_000 if (method, name, d) == ("twonn", "torus", 10) else N_POINTS[method]


def marks(method: str, name: str, d: int) -> list:
    if (method, name, d) in UNREACHABLE:
        return [pytest.mark.xfail(reason=UNREACHABLE[(method, name, d)], strict=True)]
    return [pytest.mark.slow] if n_points(method, name, d) > 5000 else []  # ~6 s of CPU


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
    assert a.get_params()["n_neighbors"] == 20
    assert np.all(a.model_density(a.bin_centers_) >= 0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        intrinsic_dimension(np.zeros((10, 3)), "pca")
    with pytest.raises(ValueError, match="2-D"):
        intrinsic_dimension(np.zeros(10))
    with pytest.raises(ValueError, match="non-finite"):
        intrinsic_dimension(np.full((10, 3), np.nan))

"""Bad input gives clear errors or warnings, never silently wrong labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from v1nb.cluster import (DEC, IDEC, LDMGI, SEC, DisconnectedGraphWarning, DuplicatePointsWarning, GMMClustering,
                          RotationInvariantClustering, choose_k, make_clusterer)

FAST = dict(hidden_dims=(8,), latent_dim=2, pretrain_epochs=2, min_pretrain_steps=0, max_iter=10, n_init=2)
ESTIMATORS = [SEC(3), LDMGI(3), DEC(3, **FAST), IDEC(3, **FAST),
              RotationInvariantClustering(3, n_rotations=2, n_init=2)]


@pytest.fixture
def X():
    return make_blobs(60, n_features=4, centers=3, random_state=0)[0]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rows_raise(est, X, bad):
    X = X.copy()
    X[5, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.fit(X)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_fewer_samples_than_clusters_raise(est, X):
    with pytest.raises(ValueError, match="n_clusters=3 is larger than the number of samples"):
        est.fit(X[:2])


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_duplicate_points_warn(est, X):
    Xd = np.vstack([X, np.repeat(X[:1], 5, axis=0)])
    with pytest.warns(DuplicatePointsWarning, match="5 duplicate rows"):
        est.fit(Xd)


@pytest.mark.parametrize("Est", [SEC, LDMGI])
def test_disconnected_graph_warns_or_raises(Est):
    rng = np.random.default_rng(0)
    # Five far-apart tight groups but only two clusters requested
    X = np.vstack([rng.standard_normal((30, 3)) + 100 * i for i in range(5)])
    with pytest.warns(DisconnectedGraphWarning, match="5 connected components but n_clusters=2"):
        Est(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="5 connected components"):
        Est(2, on_disconnected="raise", random_state=0).fit(X)
    # With n_clusters equal to the components, it is no problem and the groups are recovered
    labels = Est(5, on_disconnected="raise", random_state=0).fit_predict(X)
    assert len(set(labels)) == 5
    assert all(len(set(labels[30 * i:30 * (i + 1)])) == 1 for i in range(5))


def test_rotation_wrong_rank_raises():
    est = RotationInvariantClustering(2)
    with pytest.raises(ValueError, match=r"expects embeddings of shape \(N, R, F\)"):
        est.fit(np.zeros((10, 6)))
    with pytest.raises(ValueError, match="4-D"):
        est.fit(np.zeros((10, 2, 3, 2)))
    with pytest.raises(ValueError, match="not divisible by n_rotations=4"):
        RotationInvariantClustering(2, n_rotations=4).fit(np.random.default_rng(0).random((10, 6)))
    with pytest.raises(ValueError, match="n_rotations=3"):
        RotationInvariantClustering(2, n_rotations=3).fit(np.random.default_rng(0).random((10, 4, 2)))
    fitted = RotationInvariantClustering(2).fit(np.random.default_rng(0).random((10, 4, 2)))
    with pytest.raises(ValueError):
        fitted.predict(np.random.default_rng(0).random((3, 5, 2)))


def test_bad_parameters_raise(X):
    with pytest.raises(ValueError, match="discretization"):
        SEC(3, discretization="svd").fit(X)
    with pytest.raises(ValueError, match="lam must be > 0"):
        LDMGI(3, lam=0).fit(X)
    with pytest.raises(ValueError, match="method must be one of"):
        RotationInvariantClustering(3, method="fourier", n_rotations=2).fit(X)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        IDEC(3, gamma=0, **FAST).fit(X)
    with pytest.raises(ValueError, match="max.ks.=60 must be smaller"):
        choose_k(X, ks=[1, 60])


DEGENERATE_ESTIMATORS = ESTIMATORS + [GMMClustering(3)]


@pytest.mark.parametrize("est", DEGENERATE_ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("n_distinct", [1, 2])
def test_fewer_distinct_rows_than_clusters_raise(est, n_distinct, capfd):
    """Identical points cannot be split: a clear ValueError, no LAPACK noise, no arbitrary labels."""
    X = np.ones((30, 4))
    X[: 15 * (n_distinct - 1), 0] = 2.0  # n_distinct distinct rows (not proportional: see normalize)
    if isinstance(est, RotationInvariantClustering):
        X = X.reshape(30, 2, 2)
    with pytest.raises(ValueError, match=f"X has {n_distinct} distinct rows .*fewer than n_clusters=3"):
        est.fit(X)
    assert "DLASCL" not in capfd.readouterr().err


def test_spectral_wrapper_rejects_identical_points():
    with pytest.raises(ValueError, match="X has 1 distinct rows"):
        make_clusterer("spectral", 3, random_state=0).fit(np.ones((30, 4)))


@pytest.mark.parametrize("Est", [SEC, LDMGI])
def test_enough_distinct_rows_still_fit(Est):
    """Three distinct points, each repeated, with n_clusters=3: allowed (with a duplicates warning)."""
    X = np.repeat(np.eye(4)[:3] * 10, 10, axis=0) + 0.0
    X = X + 1e-3 * np.random.default_rng(0).standard_normal(X.shape)
    X[:3] = X[3]  # some exact copies
    with pytest.warns(DuplicatePointsWarning):
        labels = Est(3, random_state=0).fit_predict(X)
    assert len(set(labels)) == 3

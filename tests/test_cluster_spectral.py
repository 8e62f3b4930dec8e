"""SEC, LDMGI and their spectral building blocks: correctness against dense formulas, digits targets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_blobs

from v1nb.cluster import LDMGI, SEC, metrics
from v1nb.cluster.graph import component_indicators, knn_graph, knn_indices, normalized_laplacian
from v1nb.cluster.ldmgi import local_discriminant_laplacian
from v1nb.cluster.sec import global_regression_operator
from v1nb.cluster.spectral import smallest_eigenvectors, spectral_rotation


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_sec_digits_accuracy(digits):
    X, y = digits
    acc = metrics.accuracy(y, SEC(10, random_state=0).fit_predict(X))
    assert acc >= 0.77


def test_ldmgi_digits_accuracy(digits):
    X, y = digits
    acc = metrics.accuracy(y, LDMGI(10, random_state=0).fit_predict(X))
    assert acc >= 0.83


def test_sec_and_ldmgi_are_scale_invariant(digits):
    X, _ = digits
    X = X[:400]
    for est in (SEC(5, random_state=1), LDMGI(5, random_state=1)):
        a = est.fit_predict(X)
        b = est.fit_predict(1000.0 * X)
        assert metrics.ari(a, b) > 0.99


def test_global_regression_operator_matches_dense_formula():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Xc = X - X.mean(0)
    g = 0.7
    op = global_regression_operator(Xc, g)
    dense = op.matmat(np.eye(40))
    H = np.eye(40) - 1 / 40
    ref = g * H @ np.linalg.solve(Xc @ Xc.T + g * np.eye(40), H)  # Woodbury form from the paper
    np.testing.assert_allclose(dense, ref, atol=1e-10)
    w = np.linalg.eigvalsh(dense)
    assert w.min() > -1e-10 and w.max() < 1 + 1e-10


def test_sec_predict_uses_linear_map():
    X, y = make_blobs(300, n_features=4, centers=3, random_state=0)
    sec = SEC(3, random_state=0).fit(X)
    assert metrics.ari(y, sec.labels_) > 0.95
    F = sec.embed(X)
    np.testing.assert_allclose(F, (X - sec.mean_) @ sec.coef_ + sec.intercept_)
    assert metrics.ari(sec.labels_, sec.predict(X)) > 0.95
    # New points from the same blobs land in the matching clusters
    Xn, yn = make_blobs(100, n_features=4, centers=3, random_state=0)
    assert metrics.ari(yn, sec.predict(Xn + 0.01)) > 0.95


def test_ldmgi_laplacian_matches_dense_assembly():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 6))
    _, idx = knn_indices(X, 4)
    cl = np.hstack([np.arange(30)[:, None], idx])
    L = local_discriminant_laplacian(X, cl, lam=0.3)
    H = np.eye(5) - 0.2
    ref = np.zeros((30, 30))
    for c in cl:
        Xi = H @ X[c]
        ref[np.ix_(c, c)] += H @ np.linalg.inv(Xi @ Xi.T + 0.3 * np.eye(5)) @ H
    np.testing.assert_allclose(L.toarray(), ref, atol=1e-12)
    assert L.nnz <= 30 * 25
    np.testing.assert_allclose(L @ np.ones(30), 0, atol=1e-10)


def test_smallest_eigenvectors_match_dense():
    X, _ = make_blobs(400, n_features=3, centers=3, random_state=2)
    L = normalized_laplacian(knn_graph(X, 8))
    vals, vecs = smallest_eigenvectors(L, 5, upper_bound=2.0, random_state=0)
    ref = np.linalg.eigvalsh(L.toarray())[:5]
    np.testing.assert_allclose(vals, ref, atol=1e-6)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(5), atol=1e-6)
    np.testing.assert_allclose(L @ vecs, vecs * vals, atol=1e-5)


def test_degenerate_null_space_is_found_with_component_basis():
    # Four separate blobs: a 4-fold zero eigenvalue, which Lanczos alone tends to miss.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.standard_normal((200, 3)) + 20 * i for i in range(4)])
    W = knn_graph(X, 10)
    Lc = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    Q = component_indicators(W)
    assert Q.shape[1] == 4
    vals, vecs = smallest_eigenvectors(Lc, 7, random_state=0, null_basis=Q)
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(Lc.toarray())[:7], atol=1e-6)


def test_spectral_rotation_recovers_noisy_indicators():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 500)
    Y = np.eye(4)[labels] + 0.1 * rng.standard_normal((500, 4))
    Rot, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    found, R, obj = spectral_rotation(Y @ Rot, n_restarts=5, random_state=0)
    assert metrics.ari(labels, found) == 1.0
    np.testing.assert_allclose(R.T @ R, np.eye(4), atol=1e-10)
    assert 0 < obj <= 500


@pytest.mark.parametrize("Est", [SEC, LDMGI])
def test_discretisations_and_determinism(Est, digits):
    X, y = digits
    X = X[:600]
    for disc in ("rotation", "kmeans"):
        a = Est(10, discretization=disc, random_state=3).fit_predict(X)
        b = Est(10, discretization=disc, random_state=3).fit_predict(X)
        np.testing.assert_array_equal(a, b)
        assert metrics.accuracy(y[:600], a) > 0.7

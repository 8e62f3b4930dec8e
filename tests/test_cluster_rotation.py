"""Rotation-invariant clustering on synthetic rotated templates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from v1nb.cluster import RotationInvariantClustering, RotationMarginalisedDECHead, metrics


def rotated_templates(n=300, K=4, R=8, F=6, noise=0.3, seed=0):
    """K templates (R, F); each neuron a random cyclic shift along R of one, plus noise."""
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((K, R, F))
    labels = rng.integers(0, K, n)
    shifts = rng.integers(0, R, n)
    X = np.stack([np.roll(T[l], s, axis=0) for l, s in zip(labels, shifts)])
    return X + noise * rng.standard_normal(X.shape), labels, shifts


@pytest.fixture(scope="module")
def data():
    return rotated_templates()


def _shifts_consistent(est, true_shifts, R) -> float:
    """Fraction of neurons whose recovered shift equals the truth up to one offset per cluster."""
    ok = 0
    for j in np.unique(est.labels_):
        d = (est.shifts_[est.labels_ == j] - true_shifts[est.labels_ == j]) % R
        ok += np.bincount(d).max()
    return ok / len(true_shifts)


def test_plain_kmeans_fails_on_flattened(data):
    X, y, _ = data
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(X.reshape(len(X), -1))
    assert metrics.ari(y, labels) <= 0.5


@pytest.mark.parametrize("method", ["align", "dft", "marginal"])
def test_rotation_invariant_methods_recover_clusters_and_shifts(data, method):
    X, y, s = data
    est = RotationInvariantClustering(4, method=method, random_state=0).fit(X)
    assert metrics.ari(y, est.labels_) >= 0.95
    assert _shifts_consistent(est, s, X.shape[1]) >= 0.95
    # Reconstruction convention: X[n] ≈ roll(template, shift)
    Xn = X / np.linalg.norm(X, axis=(1, 2), keepdims=True)
    recon = np.stack([np.roll(est.templates_[l], r, axis=0)
                      for l, r in zip(est.labels_, est.shifts_)])
    assert np.mean((Xn - recon) ** 2) < np.mean(Xn ** 2) * 0.2
    # predict on the training data agrees with labels_, and flattened input gives the same
    assert metrics.ari(est.labels_, est.predict(X)) >= 0.95
    flat = RotationInvariantClustering(4, method=method, n_rotations=8, random_state=0)
    np.testing.assert_array_equal(flat.fit_predict(X.reshape(len(X), -1)), est.labels_)


def test_predict_shift_on_new_rolled_neurons(data):
    X, y, s = data
    est = RotationInvariantClustering(4, random_state=0).fit(X)
    X2 = np.stack([np.roll(x, 3, axis=0) for x in X[:50]])
    d = (est.predict_shift(X2) - est.shifts_[:50]) % 8
    assert np.mean(d == 3) >= 0.95


def test_marginal_likelihood_prefers_true_k():
    X, y, s = rotated_templates(n=400, seed=1)
    Xtr, Xte = X[:300], X[300:]
    bics = {k: RotationInvariantClustering(k, method="marginal", random_state=0).fit(Xtr).bic(Xtr)
            for k in (2, 3, 4, 5, 6)}
    assert min(bics, key=bics.get) == 4
    est = RotationInvariantClustering(4, method="marginal", random_state=0).fit(Xtr)
    assert np.isfinite(est.score(Xte))
    assert metrics.ari(y[300:], est.predict(Xte)) >= 0.95


def test_rotation_marginalised_head_is_shift_invariant(data):
    X, y, _ = data
    head = RotationMarginalisedDECHead(4, n_rotations=8, n_features=6)
    z = torch.as_tensor(X / np.linalg.norm(X, axis=(1, 2), keepdims=True), dtype=torch.float32)
    labels = head.init_centres(z, n_init=3, random_state=0)
    assert metrics.ari(y, labels) >= 0.95
    q = head.soft_assign(z)
    q_rolled = head.soft_assign(torch.roll(z, 3, dims=1))
    torch.testing.assert_close(q, q_rolled, atol=1e-5, rtol=1e-5)
    assert metrics.ari(y, head.predict(z).numpy()) >= 0.95
    head.update_target(z)
    loss = head.loss(z[:32], np.arange(32))
    assert loss.item() >= 0
    loss.backward()
    assert head.centres.grad is not None
    before = head.centres.detach().clone()
    head.em_update(z)
    assert torch.isfinite(head.centres).all()
    # EM from a good solution stays close to it
    assert metrics.ari(y, head.predict(z).numpy()) >= 0.95
    assert (head.centres - before).abs().max() < 0.5
    with pytest.raises(ValueError, match="neuron × rotation × feature"):
        head.soft_assign(z.reshape(len(z), -1))

"""Clustering metrics and the K-selection table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from v1nb.cluster import GMMClustering, choose_k, make_clusterer, metrics, select_k


def test_accuracy_is_permutation_invariant_and_hungarian():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert metrics.accuracy(y, (y + 1) % 3) == 1.0
    # A greedy matching would give 6/9 here; the optimal one-to-one matching gives 7/9
    pred = np.array([0, 0, 1, 1, 1, 1, 2, 2, 0])
    assert metrics.accuracy(y, pred) == pytest.approx(7 / 9)
    np.testing.assert_array_equal(metrics.match_labels(y, (y + 1) % 3), y)
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy(y, y[:-1])


def test_nmi_variants_ari_ami_consistency():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.8, a, rng.integers(0, 4, 200))
    ar, geo = metrics.nmi(a, b), metrics.nmi(a, b, "geometric")
    assert 0 < ar < 1 and 0 < geo < 1 and ar != geo
    assert metrics.nmi(a, a) == pytest.approx(1.0)
    assert metrics.ari(a, a) == 1.0 and abs(metrics.ari(a, rng.integers(0, 3, 200))) < 0.05
    assert metrics.consistency(a, b) == metrics.consistency(b, a) == metrics.ari(a, b)
    assert metrics.ami(a, b) < ar
    with pytest.raises(ValueError, match="average_method"):
        metrics.nmi(a, b, "harmonic")


def test_silhouette():
    X, y = make_blobs(200, centers=3, cluster_std=0.5, random_state=0)
    assert metrics.silhouette(X, y) > 0.7
    assert np.isnan(metrics.silhouette(X, np.zeros(200)))


def test_choose_k_agrees_on_blobs_and_claims_nothing_on_a_gaussian():
    # Few null draws and bootstrap pairs keep this test fast; defaults are 5 and 10.
    kw = dict(ks=range(1, 7), n_null=4, n_bootstrap=4, random_state=0)
    X, _ = make_blobs(200, n_features=5, centers=4, cluster_std=1.0, random_state=0)
    table = choose_k(X, **kw)
    assert set(table.columns) >= {"criterion", "k", "value", "null_mean", "null_sd"}
    assert len(table) == 6 * 6
    sel = select_k(table)
    assert sel.set_index("criterion")["k"].to_dict() == {c: 4 for c in sel["criterion"]}
    rng = np.random.default_rng(0)
    G = rng.standard_normal((200, 5)) @ np.diag([3, 2, 1, 1, 0.5])
    sel = select_k(choose_k(G, **kw))
    assert not sel["claims_structure"].any(), sel


def test_gmm_wrapper_and_factory():
    X, y = make_blobs(200, centers=3, random_state=1)
    g = GMMClustering(3, random_state=0).fit(X)
    assert metrics.ari(y, g.labels_) > 0.95 and np.isfinite(g.bic_)
    for name in ("kmeans", "gmm", "spectral", "sec", "ldmgi"):
        labels = make_clusterer(name, 3, random_state=0).fit_predict(X)
        assert metrics.ari(y, labels) > 0.9, name
    with pytest.raises(ValueError, match="unknown clusterer"):
        make_clusterer("hdbscan", 3)


def test_choose_k_runs_single_threaded_by_default_with_the_same_numbers(monkeypatch):
    import importlib

    from threadpoolctl import threadpool_info

    module = importlib.import_module("v1nb.cluster.choose_k")  # the module, not the function of that name

    X, _ = make_blobs(200, n_features=4, centers=3, random_state=0)
    seen = []
    criteria = module._criteria

    def spy(*args, **kwargs):
        seen.append(max((lib["num_threads"] for lib in threadpool_info()), default=1))
        return criteria(*args, **kwargs)

    monkeypatch.setattr(module, "_criteria", spy)
    one = choose_k(X, range(1, 5), n_null=2, n_bootstrap=2, random_state=0)
    assert seen and set(seen) == {1}  # the observed data and every null draw
    as_is = choose_k(X, range(1, 5), n_null=2, n_bootstrap=2, random_state=0, n_threads=None)
    assert max(seen[-3:]) == max((lib["num_threads"] for lib in threadpool_info()), default=1)
    pd.testing.assert_frame_equal(one, as_is)
    stab = [module.cross_seed_stability([X, X[:, ::-1]], [2, 3], n_threads=n) for n in (1, None)]
    pd.testing.assert_frame_equal(*stab)

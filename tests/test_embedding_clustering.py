"""Classical clustering of embeddings, cross-seed K choice, and the performance-by-cluster test (Part IV)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from v1nb.cluster.choose_k import (choose_k, criteria_at_k, cross_seed_stability, k_choices,
                                  n_clusters_verdict, select_k_at_own_k, select_k_cross_seed)
from v1nb.cluster import embedding_clustering as EC
from v1nb.cluster import performance as P


def _planted(n_per=40, k=4, d=8, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    truth = np.repeat(np.arange(k), n_per)
    x = centres[truth] + noise * rng.normal(size=(truth.size, d))
    x *= rng.uniform(0.2, 5.0, size=(truth.size, 1))  # per-neuron gain: normalisation must undo it
    return xr.DataArray(x, dims=("neuron", "feature")), truth


def _planted_rotation(n_per=30, k=3, R=8, F=3, noise=0.03, seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(k, R, F))
    truth = np.repeat(np.arange(k), n_per)
    shifts = rng.integers(0, R, truth.size)
    w = np.stack([np.roll(templates[t], s, axis=0) for t, s in zip(truth, shifts)])
    w = w + noise * rng.normal(size=w.shape)
    return xr.DataArray(w, dims=("neuron", "rotation", "feature")), truth


def test_planted_clusters_recovered_and_consistent_across_seeds():
    e0, truth = _planted(seed=0)
    e1, _ = _planted(seed=0)
    e1 = e1 * 3.0  # another "fit": same neurons, different scale
    reliable = np.arange(truth.size) % 2 == 0
    res = EC.cluster_embeddings({"cnn": [e0, e1]}, [3, 4, 5], truth, reliable,
                                methods=("kmeans", "gmm", "ldmgi"), ks_all_seeds=[4])
    s = res.summary()
    at4 = s[s["k"] == 4]
    assert (at4["ari"] > 0.99).all() and (at4["ari_reliable"] > 0.99).all()
    assert (at4["cross_seed_ari"] > 0.99).all()
    # K = 3 merges two clusters: strictly worse than the true K
    assert (s[s["k"] == 3]["ari"] < 0.9).all()
    # only the compared K runs on the second seed
    assert set(res.scores[res.scores["seed_index"] == 1]["k"]) == {4}
    best = EC.best_pipeline(res, 4)
    assert best["ari"] > 0.99 and best["name"].startswith("cnn/raw/")
    assert EC.classical_verdict(best["ari"], best["ari_reliable"]) == "both goals met"


def test_clusterings_in_worker_processes_match_those_run_here():
    """n_jobs only says where the clusterings run: each has its own seed, so the labels are the same."""
    e0, truth = _planted(noise=0.5, seed=1)  # noisy enough that the methods disagree with the truth
    rot, _ = _planted_rotation(seed=1)
    here = EC.cluster_embeddings({"cnn": [e0, e0 * 2.0]}, [3, 4], truth, None, methods=("kmeans", "spectral"),
                                 n_jobs=1)
    workers = EC.cluster_embeddings({"cnn": [e0, e0 * 2.0]}, [3, 4], truth, None, methods=("kmeans", "spectral"),
                                    n_jobs=2)
    assert here.labels.keys() == workers.labels.keys() and len(here.labels) == 8
    assert all(np.array_equal(here.labels[key], workers.labels[key]) for key in here.labels)
    assert here.scores.equals(workers.scores)
    one = EC.cluster_embeddings({"rotation": [rot]}, [3], None, None, methods=("kmeans",), n_jobs=2)
    assert set(one.labels) == {("rotation", v, m, 3, 0) for v, m in
                               [("raw", "kmeans"), ("dft", "kmeans"), ("aligned", "kmeans"), ("raw", "rotation")]}
    with pytest.raises(ValueError, match="n_jobs"):
        EC.cluster_embeddings({"cnn": [e0]}, [3], None, None, methods=("kmeans",), n_jobs=0)


def test_rotation_views_remove_the_shift():
    emb, truth = _planted_rotation()
    views = EC.embedding_views(emb)
    assert set(views) == {"raw", "dft", "aligned"}
    for x in views.values():
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0)
    res = EC.cluster_embeddings({"rotation": [emb]}, [3], truth, None, methods=("kmeans",))
    s = res.summary().set_index(["view", "method"])
    assert s.loc[("dft", "kmeans"), "ari"] > 0.95
    assert s.loc[("raw", "rotation"), "ari"] > 0.95
    assert s.loc[("raw", "kmeans"), "ari"] < s.loc[("dft", "kmeans"), "ari"] - 0.3  # shifts scramble raw k-means
    assert np.isnan(s.loc[("dft", "kmeans"), "ari_reliable"])
    assert np.isnan(s.loc[("dft", "kmeans"), "cross_seed_ari"])  # one seed: no pairs


def test_no_truth_gives_nan_and_verdict_says_so():
    e0, _ = _planted()
    res = EC.cluster_embeddings({"cnn": [e0, e0]}, [4], None, None, methods=("kmeans",))
    assert res.scores["ari"].isna().all() and res.consistency["cross_seed_ari"].iloc[0] == pytest.approx(1.0)
    best = EC.best_pipeline(res, 4)
    assert np.isnan(best["ari"]) and best["name"] == ""
    assert EC.classical_verdict(np.nan, np.nan) == "no ground truth"


def test_parameter_helpers_and_reliable_mask():
    assert EC.parse_ints("0, 1,2", "seeds") == [0, 1, 2] and EC.parse_ints(3, "seeds") == [3]
    with pytest.raises(ValueError, match="seeds"):
        EC.parse_ints("0,a", "seeds")
    with pytest.raises(ValueError, match="repeats"):
        EC.parse_ints("1,1", "seeds")
    with pytest.raises(ValueError, match="k_min"):
        EC.k_range(1, 4, 100)
    ds = xr.Dataset(coords={"neuron": np.arange(4), "true_oracle_corr": ("neuron", [0.1, 0.5, np.nan, 0.9]),
                            "true_type": ("neuron", ["a", "b", "a", "c"])})
    np.testing.assert_array_equal(EC.reliable_mask(ds), [False, True, False, True])
    assert EC.resolve_k(0, ds) == (3, 3) and EC.resolve_k(5, ds) == (5, 3)
    bare = xr.Dataset(coords={"neuron": np.arange(4)})
    with pytest.raises(ValueError, match="n_types"):
        EC.resolve_k(0, bare)
    with pytest.raises(ValueError, match="oracle"):
        EC.reliable_mask(bare)
    with pytest.raises(ValueError, match="views"):
        EC.embedding_views(xr.DataArray(np.ones((3, 2)), dims=("neuron", "feature")), ["pca"])


def test_cross_seed_stability_picks_planted_k_and_null_rules_out_noise():
    e, truth = _planted(n_per=50, k=4, noise=0.1)
    x = EC.embedding_views(e)["raw"]
    rng = np.random.default_rng(1)
    x2 = x + 0.05 * rng.normal(size=x.shape)  # another fit: the within-cluster structure differs
    stab = cross_seed_stability([x, x2], range(2, 8))
    assert select_k_cross_seed(stab) == 4
    table = choose_k(x, range(1, 8), criteria=("bic", "silhouette", "gap", "eigengap", "stability"),
                        n_null=3, n_bootstrap=3, random_state=0)
    ch = k_choices(table, stab)
    assert {"k_bic", "k_silhouette", "k_gap", "k_eigengap", "k_stability", "k_bootstrap_stability"} <= set(ch)
    assert ch["k_stability"] == 4 and ch["k_silhouette"] == 4
    # Gaussian noise: cross-seed stability must not beat the bootstrap-stability null
    g = rng.normal(size=(200, 5))
    g2 = g + 0.5 * rng.normal(size=g.shape)
    null_table = choose_k(g, range(1, 6), criteria=("stability",), n_null=3, n_bootstrap=3, random_state=0)
    assert select_k_cross_seed(cross_seed_stability([g, g2], range(2, 6)), null_table) == 1
    with pytest.raises(ValueError, match="two seeds"):
        cross_seed_stability([x], [2])
    text = n_clusters_verdict(ch, 4, {"k_bic": 1, "k_silhouette": 1, "k_gap": 1, "k_eigengap": 1, "k_stability": 2})
    assert "recover K = 4" in text and "stability still claims" in text


def test_criteria_at_own_k():
    e, _ = _planted(n_per=50, k=4, noise=0.1)
    x = EC.embedding_views(e)["raw"]
    rows = [dict(k=k, **criteria_at_k(x, k, n_null=2, random_state=0), stability=1.0 if k == 4 else 0.5)
            for k in (3, 4, 5)]
    import pandas as pd

    ch = select_k_at_own_k(pd.DataFrame(rows))
    assert ch["k_silhouette"] == 4 and ch["k_stability"] == 4 and ch["k_bic"] in (4, 5)


def _perf_data(effect: float, confounded: bool, n=400, seed=0):
    rng = np.random.default_rng(seed)
    log_snr = rng.normal(size=n)
    labels = (np.digitize(log_snr, [-0.5, 0.5]) if confounded else rng.integers(0, 3, n))
    y = np.tanh(log_snr + 1) + effect * (labels == 1) + 0.1 * rng.normal(size=n)
    return y, labels, np.exp(log_snr)


def test_performance_effect_beyond_snr_is_found():
    y, lab, snr = _perf_data(0.2, confounded=False)
    e = P.cluster_effect_given_snr(y, lab, snr, n_permutations=200)
    assert e.p_value < 0.01 and e.partial_eta2 > 0.1 and e.p_value_stratified < 0.01
    assert P.performance_verdict(e) == "yes, beyond SNR"
    e2 = P.cluster_effect_given_snr(y, lab, snr, n_permutations=200)
    assert e2.p_value == e.p_value and e2.f == e.f  # same seed, same numbers


def test_performance_effect_only_through_snr_is_not_claimed():
    y, lab, snr = _perf_data(0.0, confounded=True)
    e = P.cluster_effect_given_snr(y, lab, snr, n_permutations=200)
    assert e.p_value_raw < 1e-6  # clusters ordered by SNR differ in raw performance...
    assert e.p_value > 0.01  # ...but not given SNR
    assert P.performance_verdict(e) == "only through SNR"
    t = P.stratified_table(y, lab, snr)
    assert set(t["stratum"]) == {"low", "mid", "high"} and t["n"].sum() == y.size
    with pytest.raises(ValueError, match="equal length"):
        P.cluster_effect_given_snr(y, lab[:-1], snr)
    with pytest.raises(ValueError, match="two clusters"):
        P.cluster_effect_given_snr(y, np.zeros_like(lab), snr)


def test_without_an_snr_only_the_uncontrolled_test_answers():
    y, lab, snr = _perf_data(0.3, confounded=False)
    assert P.snr_measured(snr) and not P.snr_measured(np.full(y.size, np.nan))
    assert not P.snr_measured(np.zeros(y.size))  # no positive SNR either
    y[:5] = np.nan  # neurons without a performance are left out, as in the controlled test
    e = P.cluster_effect_given_snr(y, lab, None)
    assert not e.snr_controlled and e.n == y.size - 5 and e.k == 3 and e.n_permutations == 0
    assert np.isnan([e.f, e.p_value, e.p_value_parametric, e.partial_eta2, e.p_value_stratified]).all()
    controlled = P.cluster_effect_given_snr(y, lab, snr, n_permutations=50)
    assert e.p_value_raw == pytest.approx(controlled.p_value_raw) and e.eta2_raw == pytest.approx(controlled.eta2_raw)
    assert P.performance_verdict(e) == "unknown: no SNR to control for (clusters differ, uncontrolled)"
    flat = P.cluster_effect_given_snr(np.random.default_rng(1).normal(size=300), np.repeat([0, 1, 2], 100), None)
    assert P.performance_verdict(flat) == "unknown: no SNR to control for (no difference even uncontrolled)"
    with pytest.raises(ValueError, match="equal length"):
        P.cluster_effect_given_snr(y, lab[:-1], None)
    with pytest.raises(ValueError, match="two clusters"):
        P.cluster_effect_given_snr(y, np.zeros_like(lab), None)
    with pytest.raises(ValueError, match="positive SNR"):  # an SNR given but without a value stays an error
        P.cluster_effect_given_snr(y, lab, np.full(y.size, np.nan))


def test_supervised_ceiling_and_orientation_concentration():
    e, truth = _planted(n_per=30, k=3, noise=0.05)
    x = EC.embedding_views(e)["raw"]
    c = EC.supervised_ceiling(x, truth, np.ones(truth.size, bool))
    assert c["ari"] > 0.95 and c["accuracy"] > 0.98
    assert np.isnan(EC.supervised_ceiling(x, None)["ari"])
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, np.pi, 600)
    by_orientation = (theta // (np.pi / 4)).astype(int)
    assert EC.orientation_concentration(by_orientation, theta) > 0.85
    assert EC.orientation_concentration(rng.integers(0, 4, 600), theta) < 0.15
    theta[:10] = np.nan
    assert np.isfinite(EC.orientation_concentration(by_orientation, theta))


def test_stability_seeds_needs_two_fits_on_each_twin():
    assert EC.stability_seeds([0, 1, 2], 2, "complex") == ([0, 1, 2], [0, 1])
    assert EC.stability_seeds([0, 1, 2], 5, "complex") == ([0, 1, 2], [0, 1, 2])  # at most the chapter's seeds
    assert EC.stability_seeds([0, 1], 0, "") == ([0, 1], [])  # no null twin: null_seeds is not checked
    with pytest.raises(ValueError, match="seeds=\\[0\\]: cross-seed stability needs at least two"):
        EC.stability_seeds([0], 2, "complex")
    with pytest.raises(ValueError, match="null_seeds=1: cross-seed stability on the null twin"):
        EC.stability_seeds([0, 1, 2], 1, "complex")
    with pytest.raises(ValueError, match="null_seeds='2' must be an int"):
        EC.stability_seeds([0, 1, 2], "2", "complex")

"""Scores and verdict rules of the DEC chapters (v1nb.cluster.dec_answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklearn.metrics import adjusted_rand_score

from v1nb.cluster import dec_answers as DA


def test_orientation_spread_is_zero_for_one_orientation_and_one_for_uniform():
    theta = np.array([0.3] * 10 + [1.2] * 10)
    assert DA.orientation_spread(np.repeat([0, 1], 10), theta) == pytest.approx(0.0, abs=1e-12)
    uniform = np.arange(8) * np.pi / 8  # axial: evenly spread over [0, π)
    assert DA.orientation_spread(np.zeros(8, int), uniform) == pytest.approx(1.0)
    # untuned neurons (NaN) are left out
    assert DA.orientation_spread(np.zeros(3, int), np.array([0.5, 0.5, np.nan])) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(DA.orientation_spread(np.zeros(2, int), np.array([np.nan, np.nan])))


def test_shift_orientation_correlation_recovers_a_planted_relation():
    rng = np.random.default_rng(0)
    R, n = 8, 200
    shifts = rng.integers(0, R, n)
    labels = rng.integers(0, 2, n)
    offset = np.where(labels == 0, 0.4, 1.9)  # each cluster's template has its own orientation
    theta = np.mod(offset + 2 * np.pi * shifts / R / 2 * 2 + rng.normal(0, 0.05, n), np.pi)  # θ = offset + 2πr/R
    assert DA.shift_orientation_correlation(labels, shifts, R, theta) > 0.9
    assert DA.shift_orientation_correlation(labels, rng.permutation(shifts), R, theta) < 0.3


def test_beta_max_within_stops_at_the_first_beta_past_the_tolerance():
    table = pd.DataFrame(dict(mode=["pre", "joint", "joint", "joint", "joint"], beta=[0, 0.01, 0.1, 1, 10],
                              corr=[0.40, 0.399, 0.395, 0.38, 0.395]))
    assert DA.beta_max_within(table) == 0.1  # β = 10 is within again, but β = 1 already was not
    table.loc[1, "corr"] = 0.3
    assert np.isnan(DA.beta_max_within(table))


def test_improves_verdict_rule():
    def scores(pre, dec):
        return pd.DataFrame(dict(stage=["pre"] * 3 + ["dec"] * 3, seed=[0, 1, 2] * 2, ari=pre + dec))

    cons = pd.DataFrame(dict(stage=["pre", "dec"], cross_seed_ari=[0.3, 0.6], cross_seed_ari_sd=[0.05, 0.05]))
    yes = DA.improves_verdict(scores([0.2, 0.25, 0.3], [0.4, 0.45, 0.5]), cons, 0.35)
    assert yes["verdict"] == "yes" and yes["beats_best_classical"] is True
    flat = pd.DataFrame(dict(stage=["pre", "dec"], cross_seed_ari=[0.3, 0.3], cross_seed_ari_sd=[0.05, 0.05]))
    assert DA.improves_verdict(scores([0.2, 0.25, 0.3], [0.4, 0.45, 0.5]), flat, 0.6)["verdict"] == "partly"
    assert DA.improves_verdict(scores([0.2, 0.25, 0.3], [0.2, 0.26, 0.3]), flat, 0.6)["verdict"] == "no"
    nan = DA.improves_verdict(scores([np.nan] * 3, [np.nan] * 3), cons, np.nan)
    assert nan["verdict"] == "yes" and nan["beats_best_classical"] is None and np.isnan(nan["gain_truth"])
    assert yes["gain_truth_vs_init"] == pytest.approx(0.2) and yes["gain_cross_seed_vs_init"] == pytest.approx(0.3)
    # with an "init" stage (a start other than k-means) the second pair of gains is against it
    with_init = pd.concat([scores([0.2, 0.25, 0.3], [0.4, 0.45, 0.5]),
                           pd.DataFrame(dict(stage=["init"] * 3, seed=[0, 1, 2], ari=[0.38, 0.44, 0.5]))])
    cons_init = pd.concat([cons, pd.DataFrame(dict(stage=["init"], cross_seed_ari=[0.55], cross_seed_ari_sd=[0.05]))])
    answer = DA.improves_verdict(with_init, cons_init, 0.35)
    assert answer["verdict"] == "yes"  # the rule stays against k-means
    assert answer["gain_truth_vs_init"] == pytest.approx(0.01) and answer["gain_cross_seed_vs_init"] == pytest.approx(0.05)


def test_tradeoff_verdict_counts_a_cross_seed_gain_only_beyond_the_pair_spread():
    def table(joint_cs, sd, joint_corr=0.449):
        return pd.DataFrame(dict(mode=["pre", "joint", "dec_only"], beta=[0.0, 0.1, 0.1],
                                 corr=[0.450, joint_corr, 0.430], cross_seed_ari=[0.60, joint_cs, 0.55],
                                 cross_seed_ari_sd=[sd, sd, sd]))

    pays = DA.tradeoff_verdict(table(0.70, 0.05), 0.1)
    assert pays["joint_keeps"] and pays["joint_pays_off"] and pays["dec_only_ruins"]
    assert pays["gain_cross_seed"] == pytest.approx(0.10) and pays["cross_seed_sd"] == pytest.approx(0.05)
    assert pays["verdict"] == "the joint loss keeps the performance and raises cross-seed consistency; DEC-only ruins it"
    assert pays["gain_cross_seed_text"] == "+0.100 (s.d. over seed pairs up to 0.050)"
    one_pair = DA.tradeoff_verdict(table(0.63, np.nan), 0.1)  # two seeds: one pair, no s.d.
    assert one_pair["joint_pays_off"] and np.isnan(one_pair["cross_seed_sd"])
    assert one_pair["gain_cross_seed_text"] == "+0.030 (one pair of seeds, so no s.d.: the margin is 0.02)"
    within_spread = DA.tradeoff_verdict(table(0.68, 0.12), 0.1)  # +0.08 < the pairs' s.d. 0.12
    assert within_spread["joint_keeps"] and not within_spread["joint_pays_off"]
    assert "does not raise cross-seed consistency" in within_spread["verdict"]
    assert not DA.tradeoff_verdict(table(0.615, 0.0), 0.1)["joint_pays_off"]  # below the 0.02 floor
    costly = DA.tradeoff_verdict(table(0.90, 0.01, joint_corr=0.43), 0.1)
    assert not costly["joint_keeps"] and not costly["joint_pays_off"]
    assert costly["verdict"].startswith("the joint loss costs more than 0.01")


def test_parameters_are_checked():
    assert DA.parse_floats("1, 0.1,0.1", "betas") == [0.1, 1.0]
    with pytest.raises(ValueError, match="betas='a'"):
        DA.parse_floats("a", "betas")
    with pytest.raises(ValueError, match="epochs"):
        DA.finetune_epochs(-1, "auto", "twin:quick")
    assert DA.finetune_epochs(0, "auto", "twin:quick") == 3 and DA.finetune_epochs(7, "auto", "x") == 7


def test_beta_max_text_says_when_the_grid_ends_before_the_limit():
    assert DA.beta_max_text(np.nan, [0.1, 1]) == "none of the grid"
    assert DA.beta_max_text(0.1, [0.01, 0.1, 1]) == "0.1"
    assert DA.beta_max_text(10.0, [0.1, 1, 10]).startswith("≥ 10 (the largest β tried")


def test_label_agreement_compares_each_beta_with_the_smallest_per_seed():
    from types import SimpleNamespace as M

    base = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])
    moved = base.copy()
    moved[:2] = 2  # two of ten neurons change cluster
    tuned = {("joint", 0.1, 0): M(labels_=base), ("joint", 10.0, 0): M(labels_=moved),
             ("joint", 0.1, 1): M(labels_=base), ("joint", 10.0, 1): M(labels_=base),
             ("dec_only", 0.1, 0): M(labels_=moved)}  # another mode: not compared
    table = DA.label_agreement(tuned)
    assert list(table["beta"]) == [0.1, 10.0]
    assert table["agreement"].tolist() == pytest.approx([1.0, 0.9])  # mean of 0.8 and 1.0
    assert table["agreement_min"].tolist() == pytest.approx([1.0, 0.8])
    assert table["n_seeds"].tolist() == [2, 2]
    assert DA.label_agreement(tuned, mode="absent").empty


def test_agreement_text_calls_a_partition_settled_by_the_stated_rule():
    table = pd.DataFrame(dict(beta=[0.01, 10.0], agreement=[1.0, 0.97], agreement_min=[1.0, 0.95], n_seeds=[3, 3]))
    assert DA.agreement_text(table).startswith("97.0 % of the neurons keep their cluster from β = 0.01 to β = 10: "
                                               "the partition is settled")
    table.loc[1, "agreement"] = 0.8
    assert "does move neurons" in DA.agreement_text(table)
    assert "nothing is compared" in DA.agreement_text(table.iloc[:1])


def _cigars(seed, n=240):
    """Two seeds' "embeddings": three thin parallel clusters along an oblique direction, far from the origin
    (so unit-normalising keeps their shape) — the case diagonal scales cannot describe."""
    rng = np.random.default_rng(seed)
    d = 6
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))[0]
    truth = np.arange(n) % 3
    x = np.column_stack([1.0 * rng.normal(size=n), (truth - 1.0) * 1.0 + 0.08 * rng.normal(size=n),
                         0.08 * rng.normal(size=(n, d - 2))]) @ basis.T
    x[:, 0] += 40.0  # far from the origin: normalising rows is close to a uniform rescaling
    return x, truth


def test_em_drift_reports_each_start_before_and_after_em():
    (x0, truth), (x1, _) = _cigars(0), _cigars(1)
    table = DA.em_drift([x0, x1], 3, truth, inits=("kmeans", "spectral"), em_steps=20)
    assert len(table) == 2 * 2 * 2 and set(table["stage"]) == {"start", "after EM"}
    start = table[(table.init == "spectral") & (table.stage == "start")]
    assert start["ari"].nunique() == 1  # the start does not depend on the scales
    expected = np.mean([adjusted_rand_score(truth, DA.init_labels(x, 3, "spectral", random_state=s))
                        for s, x in enumerate((x0, x1))])
    assert start["ari"].iloc[0] == pytest.approx(expected)
    after = table[table.stage == "after EM"].set_index(["init", "covariance"])["ari"]
    # the full mixture keeps (here: completes) the good start, the diagonal one moves away from it
    assert after[("spectral", "full")] >= start["ari"].iloc[0] > after[("spectral", "diagonal")]
    none = DA.em_drift([x0, x1], 3, None, inits=("kmeans",), covariances=("full",), em_steps=2)
    assert none["ari"].isna().all() and none["cross_seed_ari"].notna().all()


def test_init_labels_rejects_an_unknown_initialiser():
    with pytest.raises(ValueError, match="init='ward' must be one of"):
        DA.init_labels(np.eye(4), 2, "ward")


def test_drift_text_states_what_em_did_to_the_best_start():
    drift = pd.DataFrame(dict(init=["kmeans"] * 4 + ["spectral"] * 4,
                              covariance=["diagonal", "diagonal", "full", "full"] * 2,
                              stage=["start", "after EM"] * 4,
                              ari=[0.17, 0.16, 0.17, 0.19, 0.44, 0.16, 0.44, 0.46],
                              cross_seed_ari=[0.5] * 8))
    text = DA.drift_text(drift)
    assert text.startswith("the best start, spectral (ARI to the true types 0.44)")
    assert "diagonal scales moves it away (0.16)" in text and "full scales keeps it (0.46)" in text
    no_truth = DA.drift_text(drift.assign(ari=np.nan))
    assert "cross-seed ARI" in no_truth


def test_beta_invariance_text_applies_its_rule():
    ref = np.full((4, 3), 2.0)
    same = DA.beta_invariance_text(ref, ref + 1e-4, 0.45, 0.45)
    assert "β does not matter" in same
    other = ref.copy()
    other[0, 0] = 5.0  # one entry off by 1.5x the mean rate: the mean difference is 1.5 / 12 = 12.5 %
    text = DA.beta_invariance_text(ref, other, 0.456, 0.450)
    assert "on average by 12.5% of the mean predicted rate (up to 1.5 times" in text
    assert "β still changes" in text and "0.450 against 0.456" in text


def test_saturation_compares_the_largest_beta_with_dec_only_and_bounds_the_cost():
    def table(corr_top, corr_dec):
        return pd.DataFrame([dict(mode="pre", beta=0.0, corr=0.50), dict(mode="joint", beta=0.1, corr=0.50),
                             dict(mode="joint", beta=1e3, corr=0.49), dict(mode="joint", beta=1e7, corr=corr_top),
                             dict(mode="dec_only", beta=0.1, corr=corr_dec)])
    out = DA.saturation(table(0.496, 0.492), beta_ref=0.1)
    assert out["beta_max"] == 1e7 and np.isclose(out["fraction"], 0.5) and out["bounded"]
    assert "50 % of the way" in out["text"] and "no β costs more than 0.01 in this schedule" in out["text"]
    out = DA.saturation(table(0.48, 0.46), beta_ref=0.1)  # DEC-only loses 0.04: a large β may cost too
    assert np.isclose(out["fraction"], 0.5) and not out["bounded"] and "does cost more than 0.01" in out["text"]
    out = DA.saturation(table(0.50, 0.50), beta_ref=0.1)  # nothing to move towards
    assert np.isnan(out["fraction"]) and out["bounded"] and "costs no more here" in out["text"]
    assert "loses nothing" in out["text"]
    out = DA.saturation(table(0.502, 0.492), beta_ref=0.1)  # the largest β moved away from DEC-only
    assert out["fraction"] < 0 and "no closer to DEC-only's" in out["text"]
    empty = DA.saturation(table(0.5, 0.5).query("mode != 'dec_only'"), beta_ref=0.1)
    assert np.isnan(empty["fraction"]) and not empty["bounded"]

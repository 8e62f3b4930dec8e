"""Per-neuron metrics on cases with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from v1nb import metrics
from v1nb.data import build_dataset, select_tier


def _test_tier(values: np.ndarray, n_images: int, n_repeats: int) -> xr.DataArray:
    """(trial, neuron) DataArray of a test tier: image i repeat r on trial r * n_images + i."""
    image_id = np.tile(np.arange(n_images), n_repeats)
    repeat = np.repeat(np.arange(n_repeats), n_images)
    return xr.DataArray(
        values, dims=("trial", "neuron"),
        coords={"image_id": ("trial", image_id), "repeat": ("trial", repeat),
                "tier": ("trial", np.full(len(image_id), "test", dtype=object)),
                "cortical_x": ("neuron", np.arange(values.shape[1], dtype=float) * 10)},
    )


@pytest.fixture
def population():
    """Signal + Poisson-like noise for 3 neurons: signal, noise-only, constant."""
    rng = np.random.default_rng(0)
    n_img, n_rep = 400, 10
    signal = rng.gamma(2.0, 2.0, size=n_img)
    rates = np.stack([signal, np.full(n_img, 3.0), np.full(n_img, 2.0)], axis=1)  # (image, neuron)
    rates_trials = np.tile(rates, (n_rep, 1))
    y = rng.poisson(rates_trials).astype(np.float64)
    y[:, 2] = 2.0  # constant neuron: no variance at all
    return _test_tier(y, n_img, n_rep), _test_tier(rates_trials, n_img, n_rep), signal


def test_perfect_predictor_correlations_are_one(population):
    y, _, _ = population
    m = metrics.evaluate(y, y)
    assert m["single_trial_correlation"][0] == pytest.approx(1.0, abs=1e-6)
    assert m["correlation_to_average"][0] == pytest.approx(1.0, abs=1e-6)


def test_true_rates_explain_all_explainable_variance(population):
    y, rates, signal = population
    m = metrics.evaluate(y, rates)
    # E[MSE] = noise variance for the true rates → FEVE ≈ 1 (sampling error ~ 1/sqrt(trials))
    assert m["feve"][0] == pytest.approx(1.0, abs=0.03)
    # FEV = Var(signal) / (Var(signal) + E[rate]) for Poisson noise
    expected_fev = signal.var() / (signal.var() + signal.mean())
    assert m["fev"][0] == pytest.approx(expected_fev, abs=0.03)
    assert m["correlation_to_average"][0] > 0.95


def test_noise_only_neuron_has_no_explainable_variance(population):
    y, rates, _ = population
    m = metrics.evaluate(y, rates)
    assert abs(float(m["fev"][1])) < 0.03
    assert abs(float(m["oracle_correlation"][1])) < 0.1  # sampling sd ≈ 0.025
    assert float(m["snr"][1]) < 0.15  # Var over images of the mean of 10 repeats ≈ noise / 10
    assert not bool(metrics.reliable(m)[1])
    rng = np.random.default_rng(1)
    random_pred = rng.normal(size=y.shape)
    assert abs(float(metrics.single_trial_correlation(y, random_pred)[1])) < 0.05


def test_constant_neuron_gives_zero_correlations_and_undefined_variances(population):
    y, rates, _ = population
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant neuron is not a warning-worthy failure
        m = metrics.evaluate(y, rates)
    assert float(m["single_trial_correlation"][2]) == 0.0
    assert float(m["correlation_to_average"][2]) == 0.0
    assert float(m["oracle_correlation"][2]) == 0.0
    assert np.isnan(m["fev"][2]) and np.isnan(m["feve"][2]) and np.isnan(m["snr"][2])
    assert not bool(metrics.reliable(m)[2])


def test_exact_small_case_by_hand():
    # 2 images x 2 repeats, one neuron: y = [[1, 3], [5, 9]] (image, repeat)
    y = _test_tier(np.array([[1.0], [5.0], [3.0], [9.0]]), n_images=2, n_repeats=2)
    pred = np.array([[2.0], [7.0], [2.0], [7.0]])
    total = np.var([1, 3, 5, 9], ddof=1)
    noise = np.mean([np.var([1, 3], ddof=1), np.var([5, 9], ddof=1)])
    mse = np.mean((np.array([1, 5, 3, 9]) - np.array([2, 7, 2, 7])) ** 2)
    m = metrics.evaluate(y, pred)
    assert float(m["fev"][0]) == pytest.approx((total - noise) / total)
    assert float(m["feve"][0]) == pytest.approx(1 - (mse - noise) / (total - noise))
    # oracle: each repeat vs the other repeat of its image
    a, b = np.array([1, 5, 3, 9.0]), np.array([3, 9, 1, 5.0])
    za, zb = (a - a.mean()) / (a.std() + 1e-8), (b - b.mean()) / (b.std() + 1e-8)
    assert float(m["oracle_correlation"][0]) == pytest.approx(np.mean(za * zb))
    A = 2 * np.sqrt(np.array([[1, 3], [5, 9.0]]) + 3 / 8)
    assert float(m["snr"][0]) == pytest.approx(A.mean(1).var() / A.var(1, ddof=1).mean())


def test_output_keeps_neuron_coords(population):
    y, rates, _ = population
    m = metrics.evaluate(y, rates)
    assert m.sizes == {"neuron": 3}
    np.testing.assert_array_equal(m["cortical_x"].values, [0, 10, 20])
    assert m.attrs["n_reliable"] == 1 and m.attrs["repeats_available"] == 1
    assert metrics.mean_feve(m) == pytest.approx(float(m["feve"][0]))


def test_nan_responses_are_masked_counted_and_reported(population):
    y, rates, _ = population
    y = y.copy()
    y.values[:50, 0] = np.nan
    with pytest.warns(metrics.MetricWarning, match="50 NaN values"):
        m = metrics.evaluate(y, rates)
    assert int(m["n_masked"][0]) == 50 and m.attrs["n_masked"] == 50
    assert np.isfinite(m["feve"][0]) and float(m["feve"][0]) == pytest.approx(1.0, abs=0.04)
    assert np.isfinite(m["single_trial_correlation"][0])


def test_without_repeats_repeat_metrics_are_nan_with_warning():
    rng = np.random.default_rng(0)
    y = _test_tier(rng.poisson(3.0, size=(30, 4)).astype(float), n_images=30, n_repeats=1)
    with pytest.warns(metrics.MetricWarning, match="repeated presentations"):
        m = metrics.evaluate(y, y + 1)
    for name in ("fev", "feve", "oracle_correlation", "snr"):
        assert np.isnan(m[name]).all(), name
    assert m.attrs["repeats_available"] == 0
    np.testing.assert_allclose(m["correlation_to_average"], 1.0, atol=1e-6)


def test_negative_responses_make_snr_nan():
    rng = np.random.default_rng(0)
    y = _test_tier(rng.normal(size=(40, 2)), n_images=20, n_repeats=2)
    with pytest.warns(metrics.MetricWarning, match="Anscombe"):
        assert np.isnan(metrics.snr(y)).all()


def test_bad_inputs_raise():
    y = _test_tier(np.ones((6, 2)), n_images=3, n_repeats=2)
    with pytest.raises(ValueError, match="shape"):
        metrics.evaluate(y, np.ones((6, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.evaluate(y, np.full((6, 2), np.nan))
    with pytest.raises(TypeError, match="DataArray"):
        metrics.fev(np.ones((6, 2)))
    shuffled = y.assign_coords(image_id=("trial", y["image_id"].values[::-1]))
    with pytest.raises(ValueError, match="different trials"):
        metrics.evaluate(y, shuffled)


def test_unequal_repeats_and_single_metric_functions_agree_with_evaluate(population):
    y, rates, _ = population
    y = y.isel(trial=slice(0, -37))  # the last images lose a repeat
    rates = rates.isel(trial=slice(0, -37))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        m = metrics.evaluate(y, rates)
        np.testing.assert_allclose(metrics.fev(y), m["fev"])
        np.testing.assert_allclose(metrics.feve(y, rates), m["feve"])
        np.testing.assert_allclose(metrics.oracle_correlation(y), m["oracle_correlation"])
        np.testing.assert_allclose(metrics.snr(y), m["snr"])
        np.testing.assert_allclose(metrics.correlation_to_average(y, rates), m["correlation_to_average"])


def test_ceiling_scores_rates_of_a_dataset():
    rng = np.random.default_rng(0)
    n_img, n_rep = 20, 4
    image_id = np.concatenate([np.arange(10), np.tile(np.arange(10, 20), n_rep)])
    tier = np.array(["train"] * 10 + ["test"] * 10 * n_rep, dtype=object)
    rates = rng.gamma(2, 2, size=(n_img, 5))[image_id]
    ds = build_dataset(rng.poisson(rates).astype(np.float32), image_id=image_id, tier=tier,
                       images=rng.normal(size=(n_img, 4, 4)), data_vars={"rates": (("trial", "neuron"), rates)},
                       source="synthetic")
    c = metrics.ceiling(ds)
    test = select_tier(ds, "test")
    xr.testing.assert_allclose(c, metrics.evaluate(test["responses"], test["rates"]))
    with pytest.raises(ValueError, match="rates"):
        metrics.ceiling(ds.drop_vars("rates"))


def test_neuron_without_data_is_nan_not_zero_and_left_out_of_summaries(population):
    """All-NaN test responses: every metric NaN (not a correlation of 0), counted as excluded."""
    y, rates, _ = population
    y = y.copy()
    y.values[:, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        m = metrics.evaluate(y, rates)
        singles = {name: fn(y).values for name, fn in
                   [("oracle_correlation", metrics.oracle_correlation), ("fev", metrics.fev), ("snr", metrics.snr)]}
        singles["single_trial_correlation"] = metrics.single_trial_correlation(y, rates).values
        singles["correlation_to_average"] = metrics.correlation_to_average(y, rates).values
        singles["feve"] = metrics.feve(y, rates).values
    for name in ("single_trial_correlation", "correlation_to_average", "fev", "feve", "oracle_correlation", "snr"):
        assert np.isnan(m[name][0]), name
        assert np.isnan(singles[name][0]), name
    # the other neurons keep their values (the noise-only one ~0, the constant one 0 by convention)
    assert float(m["single_trial_correlation"][2]) == 0.0
    assert m.attrs["n_without_data"] == 1
    s = metrics.neuron_summary(m["oracle_correlation"])
    assert s["n"] == 2 and s["n_excluded"] == 1
    assert s["median"] == pytest.approx(float(np.median(m["oracle_correlation"].values[1:])))


def test_one_measured_trial_is_no_data_for_a_correlation():
    y = _test_tier(np.full((8, 1), np.nan), n_images=4, n_repeats=2)
    y.values[3, 0] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        assert np.isnan(metrics.single_trial_correlation(y, np.ones((8, 1))).values[0])
        assert np.isnan(metrics.oracle_correlation(y).values[0])


def test_neuron_summary_counts_and_quantiles():
    v = xr.DataArray(np.r_[np.nan, np.arange(10.0), np.nan], dims="neuron")
    s = metrics.neuron_summary(v)
    assert s == {"n": 10, "n_excluded": 2, "median": 4.5, "mean": 4.5,
                 "p10": pytest.approx(0.9), "p90": pytest.approx(8.1)}
    empty = metrics.neuron_summary(xr.DataArray(np.full(3, np.nan), dims="neuron"))
    assert empty["n"] == 0 and empty["n_excluded"] == 3 and np.isnan(empty["median"])

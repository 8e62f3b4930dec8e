"""Reference points for model scores: pixel ridge regression and the shuffled-image chance level."""

from __future__ import annotations

import numpy as np
import pytest

from v1nb.data import build_dataset, select_tier
from v1nb.models.baselines import chance_correlation_to_average, pixel_ridge


def linear_population(n_images: int = 240, n_test: int = 30, n_neurons: int = 12, noise: float = 0.1, seed: int = 0):
    """Responses that are a linear function of the 2×2-pooled pixels, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_images, 8, 8))
    pooled = images.reshape(n_images, 4, 2, 4, 2).mean((2, 4)).reshape(n_images, -1)
    weights = rng.normal(size=(16, n_neurons))
    ids = np.concatenate([np.arange(n_images - n_test), np.repeat(np.arange(n_images - n_test, n_images), 2)])
    tier = np.where(ids < n_images - n_test, "train", "test")
    responses = pooled[ids] @ weights + noise * rng.normal(size=(len(ids), n_neurons))
    return build_dataset(responses, image_id=ids, tier=tier, images=images, source="synthetic:linear")


def test_pixel_ridge_recovers_a_linear_population():
    ds = linear_population()
    pred = pixel_ridge(ds, downsample=2)
    test = select_tier(ds, "test")
    assert pred.dims == ("trial", "neuron") and pred.shape == test["responses"].shape
    r = [np.corrcoef(pred.values[:, n], test["responses"].values[:, n])[0, 1] for n in range(ds.sizes["neuron"])]
    assert np.min(r) > 0.95
    assert pred.attrs["alpha"] > 0


def test_chance_level_separates_informative_from_shuffled_predictions():
    ds = linear_population()
    test = select_tier(ds, "test")["responses"]
    good = chance_correlation_to_average(test, pixel_ridge(ds), n_permutations=200)
    assert good.attrs["observed"] > 0.9 and good.attrs["p_value"] < 0.01
    assert abs(float(good["null"].mean())) < 0.1
    rng = np.random.default_rng(1)
    noise = chance_correlation_to_average(test, rng.normal(size=test.shape), n_permutations=200)
    assert noise.attrs["p_value"] > 0.01
    pred = rng.normal(size=test.shape)
    a = chance_correlation_to_average(test, pred, n_permutations=50, random_state=3)
    b = chance_correlation_to_average(test, pred, n_permutations=50, random_state=3)
    np.testing.assert_array_equal(a["null"].values, b["null"].values)


def test_bad_inputs_name_the_problem():
    ds = linear_population()
    with pytest.raises(ValueError, match="images"):
        pixel_ridge(ds.drop_vars("images"))
    with pytest.raises(ValueError, match="downsample"):
        pixel_ridge(ds, downsample=0)
    test = select_tier(ds, "test")["responses"]
    with pytest.raises(ValueError, match="n_permutations"):
        chance_correlation_to_average(test, np.zeros(test.shape), n_permutations=0)
    with pytest.raises(ValueError, match="shape"):
        chance_correlation_to_average(test, np.zeros((3, 3)))

"""Decoding: identification above chance on separable data and at chance on noise; category decoding."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from v1nb.analysis import decode_category, identify, make_decoder, merge_classes
from v1nb.data import build_dataset


def repeats(n_images=80, n_repeats=2, n_neurons=60, signal=1.0, seed=0):
    rng = np.random.default_rng(seed)
    mean = signal * rng.normal(size=(n_images, 1, n_neurons))
    return mean + rng.normal(size=(n_images, n_repeats, n_neurons))


def test_identification_separable_vs_noise():
    separable = identify(repeats(signal=1.0))
    noise = identify(repeats(signal=0.0))
    assert separable.chance == pytest.approx(1 / 80)
    assert separable.accuracy > 0.8 and separable.ci[0] > 10 * separable.chance
    # At chance: the interval includes 1/80 and the estimate is far below the separable one.
    assert noise.ci[0] <= noise.chance <= noise.ci[1] + 0.01
    assert noise.accuracy < 0.06


def test_identification_uses_all_repeats_and_datasets():
    R = repeats(n_images=30, n_repeats=4, signal=0.5, seed=1)
    result = identify(R)
    assert result.correct.shape == (30, 4)
    n_img, n_rep, n_neu = R.shape
    ds = build_dataset(R.transpose(1, 0, 2).reshape(-1, n_neu), image_id=np.tile(np.arange(n_img), n_rep),
                       tier="test", images=np.zeros((n_img, 2, 2)), source="synthetic")
    assert identify(ds).accuracy == pytest.approx(result.accuracy)


def category_dataset(n_classes=4, images_per_class=(30, 30, 12, 12), n_repeats=2, n_neurons=40,
                     separation=1.0, seed=0):
    """Images of unequal classes; each class shifts the responses of a few neurons."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), images_per_class)
    class_means = separation * rng.normal(size=(n_classes, n_neurons))
    image_means = class_means[labels] + 0.5 * rng.normal(size=(len(labels), n_neurons))
    trials = np.repeat(np.arange(len(labels)), n_repeats)
    responses = image_means[trials] + rng.normal(size=(len(trials), n_neurons))
    images = class_means[labels][:, :16].reshape(-1, 4, 4) + 0.1 * rng.normal(size=(len(labels), 4, 4))
    return build_dataset(responses, image_id=trials, tier="train", images=images,
                         image_coords={"category": np.array([f"c{k}" for k in labels])}, source="synthetic")


@pytest.mark.parametrize("model", ["logistic", "forest", "boosting", "mlp"])
def test_category_decoding_above_chance(model):
    # One BLAS/OpenMP thread: gradient boosting's OpenMP loops thrash on a shared, loaded machine.
    with threadpool_limits(1):
        result = decode_category(category_dataset(), model=model, n_splits=3, n_boot=200)
    assert result.chance == 0.25
    assert result.balanced_accuracy > 0.6 and result.ci[0] > result.chance
    assert len(result.fold_scores) == 3
    np.testing.assert_allclose(result.confusion.sum(axis=1), 1.0)


def test_category_decoding_at_chance_without_signal():
    result = decode_category(category_dataset(separation=0.0), model="logistic", n_splits=3, n_boot=200)
    assert result.ci[0] < result.chance + 0.05 and result.balanced_accuracy < 0.4


def test_repeats_of_an_image_never_split_across_folds():
    # Image identity alone (no category signal) must not leak: every image is its own pattern.
    ds = category_dataset(separation=0.0, n_repeats=4)
    rng = np.random.default_rng(5)
    patterns = 3.0 * rng.normal(size=(ds.sizes["image"], ds.sizes["neuron"]))
    ds["responses"] = (("trial", "neuron"), (patterns[ds["image_id"].values] + rng.normal(size=ds["responses"].shape)).astype(np.float32))
    result = decode_category(ds, model="logistic", n_splits=3, n_boot=100)
    assert result.balanced_accuracy < 0.45


@pytest.mark.parametrize("selection", ["kbest", "rfe", "pca", "factor"])
def test_feature_selection_and_extraction(selection):
    result = decode_category(category_dataset(), selection=selection, n_features=8, n_splits=3, n_boot=100)
    assert result.balanced_accuracy > 0.5
    assert make_decoder("logistic", selection, 8).named_steps["select"] is not None


def test_merge_classes_groups_similar_classes():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    labels = np.repeat(["a", "b", "c", "d"], 10)
    features = centres[np.repeat(np.arange(4), 10)] + 0.01 * rng.normal(size=(40, 2))
    merge = merge_classes(features, labels, 2)
    assert merge["a"] == merge["b"] != merge["c"] == merge["d"]
    merged = decode_category(category_dataset(), merge={"c0": 0, "c1": 0, "c2": 1, "c3": 1}, n_splits=3, n_boot=100)
    assert merged.chance == 0.5 and merged.classes == ["0", "1"]


def test_errors_are_explicit():
    ds = category_dataset()
    with pytest.raises(ValueError, match="model"):
        decode_category(ds, model="svm")
    with pytest.raises(ValueError, match="n_features"):
        decode_category(ds, selection="pca")
    with pytest.raises(ValueError, match="category"):
        decode_category(ds.drop_vars("category"))
    with pytest.raises(ValueError, match="merge"):
        decode_category(ds, merge={"c0": 0})


def test_kbest_selection_is_silent_about_constant_neurons():
    # a silent neuron (constant in every fold) scores F = 0: no sklearn warning in a chapter's output
    import warnings

    ds = category_dataset()
    responses = ds["responses"].values.copy()
    responses[:, 0] = 0.0
    ds["responses"] = (("trial", "neuron"), responses)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = decode_category(ds, selection="kbest", n_features=8, n_splits=3, n_boot=50)
    assert result.balanced_accuracy > 0.5

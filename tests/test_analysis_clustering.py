"""Response clustering: repeats of an image agree when clusters reflect the stimulus, not when they are noise."""

import numpy as np
import pytest

from v1nb.analysis import cluster_responses, repeat_agreement


def clustered_repeats(n_clusters=4, n_images=60, n_repeats=3, n_neurons=50, signal=2.0, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_clusters, n_images)
    centres = signal * rng.normal(size=(n_clusters, n_neurons))
    return centres[group][:, None, :] + rng.normal(size=(n_images, n_repeats, n_neurons)), group


def test_repeat_agreement_by_hand():
    labels = np.array([[0, 0], [1, 1], [0, 1]])
    agreement, chance = repeat_agreement(labels)
    assert agreement == pytest.approx(2 / 3)
    assert chance == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["kmeans", "bicluster"])
def test_clustered_stimuli_agree_noise_does_not(method):
    R, group = clustered_repeats()
    result = cluster_responses(R, n_clusters=4, method=method)
    assert result.labels.shape == (60, 3)
    assert result.agreement > 0.9 and result.ari > 0.8
    noise = cluster_responses(np.random.default_rng(1).normal(size=R.shape), n_clusters=4, method=method)
    assert abs(noise.agreement - noise.chance) < 0.1 and abs(noise.ari) < 0.1
    if method == "bicluster":
        assert result.neuron_labels.shape == (50,)


def test_bad_arguments():
    R, _ = clustered_repeats()
    with pytest.raises(ValueError, match="method"):
        cluster_responses(R, method="dbscan")
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_responses(R, n_clusters=1)
    with pytest.raises(ValueError, match="repeat"):
        cluster_responses(R[:, :1])

"""Spatial decoding: the CNN uses the layout when the signal is spatially organised."""

import numpy as np
import pytest

from v1nb.analysis import GridCNNDecoder, position_grid, spatial_decoding
from v1nb.data import build_dataset


def layout_dataset(n_images=60, n_repeats=2, seed=0):
    """Neurons on a 2-plane 8×8 grid; each class drives a compact patch of cortex, but which
    neurons are in the patch varies from image to image (so only the layout is shared)."""
    rng = np.random.default_rng(seed)
    side, planes = 8, 2
    gx, gy, gz = np.meshgrid(np.arange(side), np.arange(side), np.arange(planes), indexing="ij")
    x, y, z = gx.ravel() * 20.0 + 5, gy.ravel() * 20.0 + 5, gz.ravel() * 50.0 + 200
    labels = np.arange(n_images) % 2
    trials = np.repeat(np.arange(n_images), n_repeats)
    responses = rng.normal(size=(len(trials), len(x)))
    for t, img in enumerate(trials):
        cx, cy = (rng.uniform(15, 45), rng.uniform(15, 145)) if labels[img] == 0 else (rng.uniform(115, 145), rng.uniform(15, 145))
        bump = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 25.0 ** 2))
        responses[t] += 3 * bump * rng.choice([-1, 1])  # sign varies: the mean response is uninformative
    return build_dataset(responses, image_id=trials, tier="train", images=np.zeros((n_images, 2, 2)),
                         neuron_coords={"cortical_x": x, "cortical_y": y, "cortical_z": z},
                         image_coords={"category": np.array(["left", "right"])[labels]}, source="synthetic")


def test_position_grid_bins_and_shuffles():
    ds = layout_dataset()
    grid = position_grid(ds, bin_um=20.0)
    assert grid.shape == (2, 8, 8)
    X = ds["responses"].values
    G = grid.to_grid(X)
    assert G.shape == (len(X), 2, 8, 8)
    # One neuron per bin here: the grid is a permutation of the neuron vector.
    np.testing.assert_allclose(np.sort(G[0].ravel()), np.sort(X[0]), rtol=1e-6)
    shuffled = grid.shuffled(0)
    assert sorted(zip(shuffled.plane, shuffled.row, shuffled.col)) == sorted(zip(grid.plane, grid.row, grid.col))


def test_cnn_beats_position_blind_decoders_when_layout_matters():
    result = spatial_decoding(layout_dataset(), bin_um=20.0, n_splits=3, epochs=40, n_threads=1)
    assert result.chance == 0.5
    assert result.scores["cnn"] > 0.8
    assert result.scores["cnn"] > result.scores["cnn_shuffled"] + 0.15
    assert result.scores["cnn"] > result.scores["logistic"] + 0.15


def test_cnn_decoder_is_deterministic():
    ds = layout_dataset(n_images=20)
    G = position_grid(ds, 20.0).to_grid(ds["responses"].values)
    y = ds["category"].values[ds["image_id"].values]
    a = GridCNNDecoder(epochs=3, random_state=1).fit(G, y).predict(G)
    b = GridCNNDecoder(epochs=3, random_state=1).fit(G, y).predict(G)
    assert (a == b).all()


def test_needs_positions():
    ds = layout_dataset().drop_vars(["cortical_x", "cortical_y", "cortical_z"])
    with pytest.raises(ValueError, match="positions"):
        spatial_decoding(ds)

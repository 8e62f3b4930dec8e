"""Receptive fields: RRR recovers a planted low-rank map; RF centres match the twin's ground truth."""

import numpy as np
import pytest

from v1nb.analysis import ReducedRankRegression, receptive_fields, rf_centers, rrr_cross_validate
from v1nb.data import build_dataset, select_tier
from v1nb.metrics import oracle_correlation


@pytest.fixture(scope="module")
def twin_ds():
    from v1nb.data import twin

    return twin("quick", seed=0, n_neurons=120, n_train=2000)


@pytest.fixture(scope="module")
def reliable(twin_ds):
    return oracle_correlation(select_tier(twin_ds, "test")["responses"]).values >= 0.5


def planted(rank=3, n=1500, p=40, q=60, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    B = rng.normal(size=(p, rank)) @ rng.normal(size=(rank, q)) / np.sqrt(p)
    return X, X @ B + noise * rng.normal(size=(n, q)), B


def test_cross_validation_picks_the_planted_rank():
    X, Y, _ = planted(rank=3)
    cv = rrr_cross_validate(X, Y, ranks=[1, 2, 3, 4, 6, 10], alphas=(1e-3,), n_splits=4)
    ev = cv.explained_variance[0].mean(axis=0)
    assert cv.ranks[np.argmax(ev)] in (3, 4)
    assert ev[2] > ev[1] > ev[0] > 0
    assert ev[-1] <= ev[2] + 0.005  # extra rank only fits noise


def test_rrr_recovers_planted_coefficients():
    X, Y, B = planted(rank=3, noise=0.5)
    model = ReducedRankRegression(rank=3, alpha=1e-4).fit(X, Y)
    assert np.linalg.matrix_rank(model.coef_, tol=1e-4 * np.abs(model.coef_).max()) == 3
    assert np.corrcoef(model.coef_.ravel(), B.ravel())[0, 1] > 0.98
    assert model.score(X, Y) > 0.5


def test_rf_centers_of_gaussian_blobs():
    yy, xx = np.mgrid[:20, :30]
    centres = np.array([[5.0, 7.0], [22.5, 12.0], [15.2, 8.4]])
    maps = np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0) for x, y in centres])
    cx, cy = rf_centers(maps, signed=False)
    np.testing.assert_allclose(np.column_stack([cx, cy]), centres, atol=0.3)


@pytest.mark.parametrize("method", ["rwa", "rrr"])
def test_twin_rf_centres_match_ground_truth(twin_ds, reliable, method):
    assert reliable.sum() >= 20
    rf = receptive_fields(twin_ds, method=method, features="both", ranks=(2, 4, 8, 16), alphas=(1.0,), n_splits=3)
    for est, truth in (("rf_x", "true_rf_x"), ("rf_y", "true_rf_y")):
        r = np.corrcoef(rf[est].values[reliable], twin_ds[truth].values[reliable])[0, 1]
        assert r >= 0.9, f"{method} {est}: correlation {r:.3f}"
    assert rf["rf"].dims == ("neuron", "y", "x") and rf.sizes["neuron"] == twin_ds.sizes["neuron"]
    assert float(rf["x"][-1]) < twin_ds.sizes["x"]  # coordinates in original pixels
    if method == "rrr":
        assert rf.attrs["rank"] in (2, 4, 8, 16)
        assert float(rf["explained_variance"].max()) > 0


def test_receptive_fields_errors(twin_ds):
    with pytest.raises(ValueError, match="method"):
        receptive_fields(twin_ds, method="sta")
    no_images = build_dataset(np.zeros((60, 3)), image_id=np.full(60, -2), tier="train", source="x")
    with pytest.raises(ValueError, match="images"):
        receptive_fields(no_images)

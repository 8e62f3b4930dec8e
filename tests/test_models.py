"""Core–readout models: shapes, equivariance, training, prediction, caching, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter

from v1nb import metrics
from v1nb.data import build_dataset, select_tier
from v1nb.models import (CacheWarning, ModelWarning, ResponseModel, fit, load, make_config, save,
                         valid_keys)
from v1nb.models.cores import ImageConv2d, Stacked2dCore, image_conv2d, laplace_l2
from v1nb.models.data import prepare, receptive_field_centres
from v1nb.models.readouts import FactorizedReadout, GaussianReadout
from v1nb.models.rotation import RotationEquivariantCore, evaluate_hermite, hermite_basis, rotation_axis_view

#: Small and fast: every fit in this file takes a second or two.
FAST = dict(layers=2, hidden_channels=8, rotation_features=2, rotations=4, input_kernel=5, hidden_kernel=3,
            basis_order=2, max_epochs=4, patience=2, max_lr_decays=1, progress=False, batch_size=64,
            num_threads=1)  # one thread: far faster than two on a shared, loaded machine


def toy_dataset(n_train=200, n_val=40, n_test=15, reps=4, n_neurons=10, size=(16, 20), seed=0,
                tiers=True) -> xr.Dataset:
    """Smooth noise images and a population of rectified Gabor filters with Poisson noise."""
    rng = np.random.default_rng(seed)
    n_img = n_train + n_val + n_test
    imgs = np.stack([gaussian_filter(rng.normal(size=size), 1.0) for _ in range(n_img)])
    imgs = ((imgs - imgs.mean()) / imgs.std()).astype(np.float32)
    yy, xx = np.mgrid[: size[0], : size[1]]
    filters, centres = [], []
    for _ in range(n_neurons):
        cy, cx, th = rng.uniform(5, size[0] - 5), rng.uniform(5, size[1] - 5), rng.uniform(0, np.pi)
        centres.append((cx, cy))
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8) * np.cos(2 * np.pi * u / 6)
        filters.append(g / np.linalg.norm(g))
    drive = np.einsum("iyx,nyx->in", imgs, np.stack(filters))
    rates_img = 3 * np.log1p(np.exp(2 * drive)) + 0.2
    image_id = np.concatenate([np.arange(n_train), n_train + np.arange(n_val),
                               np.tile(n_train + n_val + np.arange(n_test), reps)])
    tier = np.array(["train"] * n_train + ["validation"] * n_val + ["test"] * (n_test * reps), dtype=object)
    if not tiers:
        tier[tier != "train"] = "train"
    rates = rates_img[image_id]
    pos = rng.uniform(0, 500, size=(n_neurons, 3))
    return build_dataset(rng.poisson(rates).astype(np.float32), image_id=image_id, tier=tier, images=imgs,
                         neuron_coords={"cortical_x": pos[:, 0], "cortical_y": pos[:, 1], "cortical_z": pos[:, 2],
                                        "true_type": np.array(["a", "b"] * (n_neurons // 2), dtype=object),
                                        "true_rf_x": np.array(centres)[:, 0], "true_rf_y": np.array(centres)[:, 1]},
                         data_vars={"rates": (("trial", "neuron"), rates.astype(np.float32))},
                         source=f"toy:{seed}", provenance={"seed": seed})


@pytest.fixture(scope="module")
def ds():
    return toy_dataset()


@pytest.fixture(scope="module")
def fitted(ds):
    return ResponseModel("cnn", "gaussian", random_state=0, **FAST).fit(ds)


# ------------------------------------------------------------------------------ components
@pytest.mark.parametrize("hidden_features, basis_order", [(None, 3), (5, 5)])
def test_rotation_core_is_exactly_equivariant_to_90_degree_rotations(hidden_features, basis_order):
    torch.manual_seed(0)
    R = 8
    core = RotationEquivariantCore(layers=3, rotation_features=3, rotations=R, input_kernel=9, hidden_kernel=5,
                                   basis_order=basis_order, hidden_features=hidden_features).double()
    assert core.out_channels == R * 3
    core.train()
    core(torch.randn(16, 1, 30, 30, dtype=torch.float64))  # non-trivial batch-norm statistics
    core.eval()
    x = torch.randn(2, 1, 30, 30, dtype=torch.float64)
    out = rotation_axis_view(core(x), R)
    out_rot = rotation_axis_view(core(torch.rot90(x, 1, dims=(-2, -1))), R)
    expected = torch.rot90(torch.roll(out, R // 4, dims=1), 1, dims=(-2, -1))
    assert (out_rot - expected).abs().max().item() <= 1e-5
    # and it is not trivially invariant: without the roll the outputs differ
    assert (out_rot - torch.rot90(out, 1, dims=(-2, -1))).abs().max().item() > 1e-2


def test_shared_batch_norm_pools_each_feature_over_orientations_like_a_3d_norm():
    """The (B·R, F, H, W) view gives BatchNorm3d's statistics over the transposed (B, F, R, H, W), with its
    state-dict layout (a model saved with the 3-D form loads into the 2-D one)."""
    from torch import nn

    from v1nb.models.rotation import _SharedBatchNorm

    torch.manual_seed(0)
    b, R, F, h, w = 6, 4, 3, 5, 7
    shared, reference = _SharedBatchNorm(R, F).double(), nn.BatchNorm3d(F, momentum=0.1).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 2.0)
        reference.bias.normal_()
    shared.norm.load_state_dict(reference.state_dict())  # the 3-D norm's state loads as it is

    def as_3d(x):
        y = reference(x.view(b, R, F, h, w).transpose(1, 2))
        return y.transpose(1, 2).reshape(b, R * F, h, w)

    for _ in range(3):  # training mode: batch statistics, and the running averages they update
        x = torch.randn(b, R * F, h, w, dtype=torch.float64) * 3 + 1
        torch.testing.assert_close(shared(x), as_3d(x))
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(shared.norm.state_dict()[name], value)
    shared.eval(), reference.eval()
    x = torch.randn(b, R * F, h, w, dtype=torch.float64)
    torch.testing.assert_close(shared(x), as_3d(x))


def test_hermite_basis_rotation_matches_the_pixel_grid_rotation():
    b = evaluate_hermite(9, 3, [0.0, math.pi / 2])
    np.testing.assert_allclose(np.rot90(b[0], 1, axes=(-2, -1)), b[1], atol=1e-10)
    basis = hermite_basis(7, 2, 8)
    assert basis.shape == (8, 6, 7, 7)
    gram = basis[0].flatten(1) @ basis[0].flatten(1).T
    np.testing.assert_allclose(gram.numpy(), np.eye(6), atol=1e-5)


def test_core_and_readout_shapes():
    x = torch.randn(3, 1, 20, 24)
    core = Stacked2dCore(layers=3, hidden_channels=6, input_kernel=5, hidden_kernel=3)
    assert core(x).shape == (3, 6, 12, 16)  # valid convolutions shrink by k − 1
    sep = Stacked2dCore(layers=2, hidden_channels=6, input_kernel=5, hidden_kernel=3, depth_separable=True,
                        padding=True, gamma_hidden=0.1)
    assert sep(x).shape == (3, 6, 20, 24)
    assert sep.regularizer().item() > 0
    feat = torch.randn(3, 6, 12, 16)
    assert GaussianReadout(6, 7)(feat).shape == (3, 7)
    assert FactorizedReadout(6, 7, (12, 16))(feat).shape == (3, 7)
    positions = torch.randn(7, 3)
    ro = GaussianReadout(6, 7, positions=positions).eval()
    assert ro.mu.shape == (7, 2) and ro.mu.abs().max() < 1
    with pytest.raises(ValueError, match="size the model was trained on"):
        FactorizedReadout(6, 7, (12, 16))(torch.randn(3, 6, 10, 16))


def test_laplace_regulariser_prefers_smooth_filters():
    smooth = torch.tensor(np.outer(np.hanning(9), np.hanning(9)), dtype=torch.float32)[None, None]
    rough = torch.randn(1, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert laplace_l2(smooth) < 0.5 * laplace_l2(rough)



@pytest.mark.parametrize("c_in,padding,bias,input_grad", [(1, 3, False, False), (1, 0, True, False),
                                                           (3, 1, True, True)])
def test_image_conv_has_the_values_and_gradients_of_conv2d(c_in, padding, bias, input_grad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, c_in, 11, 13, generator=g).requires_grad_(input_grad)
    w = torch.randn(4, c_in, 7, 7, generator=g, requires_grad=True)
    b = torch.randn(4, generator=g, requires_grad=True) if bias else None
    out_grad = torch.randn(5, 4, 11 + 2 * padding - 6, 13 + 2 * padding - 6, generator=g)
    inputs = [t for t in (x, w, b) if t is not None and t.requires_grad]
    expected = torch.nn.functional.conv2d(x, w, b, padding=padding)
    got = image_conv2d(x, w, b, padding=padding)
    torch.testing.assert_close(got, expected)
    for e, a in zip(torch.autograd.grad(expected, inputs, out_grad), torch.autograd.grad(got, inputs, out_grad)):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_image_conv_module_keeps_the_conv2d_state_dict():
    conv = torch.nn.Conv2d(1, 4, 5, padding=2, bias=False)
    image = ImageConv2d(1, 4, 5, padding=2, bias=False)
    image.load_state_dict(conv.state_dict())
    x = torch.randn(2, 1, 9, 9)
    torch.testing.assert_close(image(x), conv(x))


def test_gaussian_readout_samples_positions_around_mu_with_the_covariance_sigma():
    ro = GaussianReadout(3, 2, mu=torch.tensor([[0.2, -0.1], [-0.3, 0.4]]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ro.sigma.copy_(torch.tensor([[[0.05, 0.02], [0.0, 0.03]], [[0.01, 0.0], [0.04, 0.02]]]))
    positions = ro.train().grid(20000)[:, :, 0]  # (B, N, 2)
    for n in range(2):
        s = ro.sigma[n].detach()
        torch.testing.assert_close(positions[:, n].mean(0), ro.mu[n].detach(), atol=2e-3, rtol=0)
        torch.testing.assert_close(positions[:, n].T.cov(), s @ s.T, atol=5e-5, rtol=0.05)
    torch.testing.assert_close(ro.eval().grid(3)[:, :, 0], ro.mu.detach().expand(3, -1, -1))


# -------------------------------------------------------------------------------- fitting
def test_fit_predict_embeddings(ds, fitted):
    pred = fitted.predict(ds, tier="test")
    test = select_tier(ds, "test")
    assert pred.dims == ("trial", "neuron") and pred.shape == test["responses"].shape
    np.testing.assert_array_equal(pred["image_id"], test["image_id"])
    assert (pred.values > 0).all()
    m = metrics.evaluate(test["responses"], pred)
    assert float(m["correlation_to_average"].mean()) > 0.3  # 4 epochs on a toy: well above chance
    emb = fitted.embeddings()
    assert emb.dims == ("neuron", "feature") and emb.shape == (10, 8)
    np.testing.assert_array_equal(emb["true_type"].values, ds["true_type"].values)
    assert len(fitted.history_["epochs"]) >= 2 and fitted.history_["images_per_second"] > 0


def test_rotation_model_embeddings_have_a_rotation_axis(ds):
    model = ResponseModel("rotation", "gaussian", 0, **FAST).fit(ds)
    emb = model.embeddings()
    assert emb.dims == ("neuron", "rotation", "feature") and emb.shape == (10, 4, 2)
    np.testing.assert_allclose(emb["rotation_deg"], [0, 90, 180, 270])


@pytest.mark.parametrize("core,readout", [("ln", "gaussian"), ("cnn", "factorized")])
def test_other_cores_and_readouts_train(ds, core, readout):
    model = ResponseModel(core, readout, 0, **FAST).fit(ds)
    assert np.isfinite(model.history_["best_val_corr"])
    assert model.predict(ds).shape == select_tier(ds, "test")["responses"].shape


def test_same_seed_gives_same_validation_correlation(ds, fitted):
    again = ResponseModel("cnn", "gaussian", random_state=0, **FAST).fit(ds)
    assert again.history_["best_val_corr"] == pytest.approx(fitted.history_["best_val_corr"], abs=1e-6)
    other = ResponseModel("cnn", "gaussian", random_state=1, **FAST).fit(ds)
    assert other.history_["epochs"][1]["val_corr"] != fitted.history_["epochs"][1]["val_corr"]


def test_sta_initialisation_finds_receptive_fields(ds):
    data = prepare(ds, make_config(), 0)
    found = receptive_field_centres(data).numpy()
    truth = np.stack([ds["true_rf_x"].values, ds["true_rf_y"].values], 1)
    assert np.median(np.linalg.norm(found - truth, axis=1)) < 2.0
    model = ResponseModel("cnn", "gaussian", 0, init_mu="sta", **FAST).fit(ds)
    assert np.isfinite(model.history_["best_val_corr"])


def test_position_predictor(ds):
    model = ResponseModel("cnn", "gaussian", 0, position_predictor=True, **FAST).fit(ds)
    assert model.readout_positions().shape == (10, 2)
    with pytest.raises(ValueError, match="cortical"):
        ResponseModel("cnn", "gaussian", 0, position_predictor=True, **FAST).fit(
            ds.drop_vars(["cortical_x", "cortical_y", "cortical_z"]))


# ------------------------------------------------------------------------------- the cache
def test_cache_roundtrip_and_corrupt_entry(ds, tmp_path):
    first = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    assert first.history_["cached"] is False
    entries = list(tmp_path.glob("*.pt"))
    assert len(entries) == 1
    second = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    assert second.history_["cached"] is True
    xr.testing.assert_allclose(first.predict(ds), second.predict(ds))
    xr.testing.assert_equal(first.embeddings(), second.embeddings())
    entries[0].write_bytes(b"not a model")
    with pytest.warns(CacheWarning, match="retraining"):
        third = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    assert third.history_["cached"] is False
    np.testing.assert_allclose(third.predict(ds), first.predict(ds), atol=1e-5)
    # a different seed is a different entry
    fit(ds, "cnn", "gaussian", seed=1, cache_dir=tmp_path, **FAST)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_reload_with_other_neuron_count_is_refused(ds, fitted, tmp_path):
    path = save(fitted, tmp_path / "m.pt")
    fewer = ds.isel(neuron=slice(0, 5))
    with pytest.raises(ValueError, match="fitted on 10 neurons"):
        load(path, fewer)
    with pytest.raises(ValueError, match="fitted on 10 neurons"):
        fitted.predict(fewer)
    xr.testing.assert_allclose(load(path, ds).predict(ds), fitted.predict(ds))


# ------------------------------------------------------------------------------- bad input
def test_unknown_setting_lists_valid_keys():
    with pytest.raises(TypeError, match="hidden_channels"):
        make_config(hidden_channel=3)
    with pytest.raises(TypeError, match="must be int"):
        make_config(layers=2.5)
    with pytest.raises(ValueError, match="odd"):
        make_config(input_kernel=4)
    model = ResponseModel("transformer")  # scikit-learn contract: stored as given, checked in fit
    assert model.get_params()["core"] == "transformer"
    with pytest.raises(ValueError, match="core='transformer' is not one of"):
        model.validate()
    with pytest.raises(ValueError, match="core="):
        fit(toy_dataset(), "transformer", use_cache=False)
    assert "lr" in valid_keys()


def test_nan_responses_are_masked_counted_and_reported(ds):
    bad = ds.copy(deep=True)
    bad["responses"].values[:30, 0] = np.nan
    with pytest.warns(ModelWarning, match="30 NaN responses"):
        model = ResponseModel("cnn", "gaussian", 0, **FAST).fit(bad)
    assert model.history_["n_masked"] == 30
    assert np.isfinite(model.predict(bad).values).all()


def test_dataset_without_test_tier_or_validation(ds):
    only_train = toy_dataset(tiers=False)
    with pytest.warns(ModelWarning, match="no validation tier"):
        model = ResponseModel("cnn", "gaussian", 0, **FAST).fit(only_train)
    with pytest.raises(ValueError, match="no 'test' trials"):
        model.predict(only_train, tier="test")


def test_bad_images_and_responses(ds, fitted):
    with pytest.raises(ValueError, match="images must have shape"):
        fitted.predict_images(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="no 'images'"):
        ResponseModel(**FAST).fit(ds.drop_vars("images"))
    negative = ds.copy(deep=True)
    negative["responses"].values[0, 0] = -1.0
    with pytest.raises(ValueError, match="loss='mse'"):
        ResponseModel(**FAST).fit(negative)
    with pytest.raises(ValueError, match="too small"):
        ResponseModel(input_kernel=31, padding=False, **{k: v for k, v in FAST.items() if k != "input_kernel"}).fit(ds)
    with pytest.raises(ValueError, match="downsample"):
        ResponseModel(downsample=32, **FAST).fit(ds)


def test_rotation_invariant_embedding_ignores_cyclic_shifts():
    from v1nb.models.embeddings import project_2d, rotation_invariant

    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, 8, 3))
    shifted = np.concatenate([w, np.roll(w, 3, axis=1)])
    emb = xr.DataArray(shifted, dims=("neuron", "rotation", "feature"), coords={"true_type": ("neuron", ["a", "a"])})
    inv = rotation_invariant(emb)
    np.testing.assert_allclose(inv.values[0], inv.values[1], atol=1e-12)
    assert inv.dims == ("neuron", "feature") and list(inv["true_type"].values) == ["a", "a"]
    with pytest.raises(ValueError, match="rotation"):
        rotation_invariant(inv)
    proj = project_2d(xr.DataArray(rng.normal(size=(20, 5)), dims=("neuron", "feature")))
    assert proj.shape == (20, 2)


def test_learning_curve_subsets_and_shares_the_full_fit(ds, tmp_path):
    from v1nb.models.curves import learning_curve, subsample_train

    n_train = int((ds["tier"].values == "train").sum())
    half = subsample_train(ds, n_train // 2, seed=0)
    assert int((half["tier"].values == "train").sum()) == n_train // 2
    assert (half["tier"].values == "test").sum() == (ds["tier"].values == "test").sum()
    assert subsample_train(ds, n_train) is ds  # the full size is the dataset itself (shared cache key)
    with pytest.raises(ValueError, match="n_images"):
        subsample_train(ds, n_train + 1)
    curve = learning_curve(ds, [n_train // 2, n_train], cache_dir=tmp_path, **FAST)
    assert curve.sizes["n_train"] == 2 and np.isfinite(curve["mean_feve"]).all()
    full = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    assert full.history_["cached"]  # the curve's full-size point is the plain fit


def test_cache_key_changes_with_the_model_code(ds, monkeypatch):
    from v1nb.models import cache

    components = {"core": "cnn", "readout": "gaussian"}
    settings = make_config().non_default()
    before = cache.cache_key(ds, components, 0, settings, "cpu")
    assert before == cache.cache_key(ds, components, 0, settings, "cpu")
    assert len(cache.code_fingerprint()) == 64
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "edited source")
    assert cache.cache_key(ds, components, 0, settings, "cpu") != before


def test_code_fingerprint_ignores_comments_and_docstrings():
    from v1nb.models.cache import source_fingerprint

    code = 'def f(x):\n    """Double."""\n    return 2 * x  # why\n'
    same = '"""Module."""\n\n\ndef f(x):\n    # a comment\n    return 2 * x\n'
    edited = 'def f(x):\n    """Double."""\n    return 3 * x\n'
    only_doc = 'class A:\n    """Only a docstring."""\n'
    assert source_fingerprint(code) == source_fingerprint(same)
    assert source_fingerprint(code) != source_fingerprint(edited)
    assert source_fingerprint(only_doc) == source_fingerprint("class A:\n    pass\n")


def test_code_fingerprint_covers_the_code_a_dec_fine_tune_runs():
    """A DEC fine-tune with init='gmm' or 'spectral' runs v1nb.cluster's wrappers: their source keys the fit."""
    from pathlib import Path

    from v1nb.cluster import embedding_clustering, wrappers
    from v1nb.models import cache, dec

    files, functions = cache.fingerprinted_code()
    resolved = {Path(f).resolve() for f in files}
    assert Path(wrappers.__file__).resolve() in resolved
    assert Path(dec.__file__).resolve().parent in resolved  # v1nb/models/ as a folder
    assert embedding_clustering.cluster_labels in functions

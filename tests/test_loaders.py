"""Real-data loaders and ``open_dataset``: each format on a synthetic fixture of exactly its layout,
bad-input errors, NetCDF round trips, read-only data folders, and the real copies when present."""

from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import fixtures as fx
from v1nb.data import open_dataset, read_netcdf, to_netcdf
from v1nb.data.formats import FormatError, UnrecognisedFormatError, detect, options
from v1nb.data.formats.stringer import subtract_spontaneous_subspace
from v1nb.data.locations import repository_root, shared_data_dir
from v1nb.data.reliability import split_half_reliability
from v1nb.data.schema import UNKNOWN_IMAGE, build_dataset
from v1nb.data.views import repeat_array


def round_trips(ds: xr.Dataset, tmp_path) -> None:
    xr.testing.assert_identical(ds, read_netcdf(to_netcdf(ds, tmp_path / "round_trip.nc")))


def tier_of(ds: xr.Dataset) -> np.ndarray:
    return ds["tier"].values.astype(str)


# --------------------------------------------------------------------------------------- Antolik
@pytest.mark.parametrize("with_inputs", [False, True])
def test_antolik_maps_train_and_test_tiers(tmp_path, with_inputs):
    root, a = fx.write_antolik(tmp_path / "antolik", with_inputs=with_inputs)
    ds = open_dataset(root)  # region 1 by default
    n_train, n_neurons = a["training_set"].shape
    n_reps, n_test, _ = a["raw_validation_set"].shape
    assert ds.sizes["trial"] == n_train + n_reps * n_test and ds.sizes["neuron"] == n_neurons
    assert ds.attrs["source"] == "antolik2016:region1" and "response_unit" in ds.attrs
    assert "order" not in ds.coords and "cortical_x" not in ds.coords
    train = ds.isel(trial=tier_of(ds) == "train")
    np.testing.assert_allclose(train["responses"].values, a["training_set"], rtol=1e-6)
    arr = repeat_array(ds, "test")  # (image, repeat, neuron)
    assert arr.shape == (n_test, n_reps, n_neurons)
    np.testing.assert_allclose(arr.values, a["raw_validation_set"].transpose(1, 0, 2), rtol=1e-6)
    # test images: 31×31 C-order, the ×1e-6 storage scaling undone
    test_images = ds["images"].values[arr["image_id"].values]
    np.testing.assert_allclose(test_images, (a["validation_inputs"] * 1e6).reshape(-1, 31, 31), atol=1e-3)
    if with_inputs:
        assert list(train["image_id"].values) == list(range(n_train)) and set(train["repeat"].values) == {0}
        np.testing.assert_allclose(ds["images"].values[:n_train], (a["training_inputs"] * 1e6).reshape(-1, 31, 31), atol=1e-3)
    else:
        assert set(train["image_id"].values) == {UNKNOWN_IMAGE} and set(train["repeat"].values) == {-1}
        assert ds.sizes["image"] == n_test
    round_trips(ds, tmp_path)


def test_antolik_region_option_and_region_folder(tmp_path):
    root, _ = fx.write_antolik(tmp_path / "antolik", regions=(1, 2))
    assert open_dataset(root, region=2).sizes["neuron"] == 8
    assert open_dataset(root / "region2").attrs["source"] == "antolik2016:region2"
    with pytest.raises(ValueError, match=r"region=3.*regions \[1, 2\]"):
        open_dataset(root, region=3)
    with pytest.raises(ValueError, match="already a single region folder"):
        open_dataset(root / "region1", region=1)


def test_antolik_errors_name_file_and_expectation(tmp_path):
    root, a = fx.write_antolik(tmp_path / "antolik", regions=(1,))
    region = root / "region1"
    np.save(region / "raw_validation_set.npy", a["raw_validation_set"][:, :, :-1])
    with pytest.raises(FormatError, match=r"raw_validation_set.npy: expected shape \(n_reps, 50, n_neurons\) "
                                          r"with n_neurons=7 matching training_set.npy, got \(4, 50, 6\)"):
        open_dataset(region)
    np.save(region / "raw_validation_set.npy", a["raw_validation_set"][:, :49])
    with pytest.raises(FormatError, match=r"validation_inputs.npy: expected shape \(n_test, 961\) with n_test=49"):
        open_dataset(region)
    (region / "raw_validation_set.npy").write_bytes(b"\x93NUMPY garbage bytes, not an array")
    with pytest.raises(FormatError, match=r"raw_validation_set.npy: not a readable .npy file"):
        open_dataset(region)
    data = (region / "training_set.npy").read_bytes()
    (region / "training_set.npy").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(FormatError, match=r"training_set.npy: not a readable .npy file"):
        open_dataset(region)
    np.save(region / "training_set.npy", a["training_set"])
    (region / "raw_validation_set.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"raw_validation_set.npy: missing file; expected \(n_reps, 50, n_neurons\)"):
        open_dataset(region)


# ------------------------------------------------------------------------------------------ Allen
def test_allen_split_and_trial_averaging(tmp_path):
    folder, a = fx.write_allen(tmp_path / "allen")
    ds = open_dataset(folder)
    assert ds.sizes == {"trial": 118, "neuron": 9, "image": 118, "y": 31, "x": 31}
    assert ds.attrs["trial_averaged"] == 1 and ds.attrs["response_unit"] == "dF/F (%)"
    tiers = tier_of(ds)
    assert (tiers == "train").sum() == 100 and (tiers == "test").sum() == 18
    assert set(ds["repeat"].values) == {0}
    np.testing.assert_array_equal(ds["image_id"].values[tiers == "test"], a["perm"][100:])
    np.testing.assert_allclose(ds["responses"].values, a["by_scene"][ds["image_id"].values], rtol=1e-6)
    np.testing.assert_allclose(ds["images"].values, a["scenes"].reshape(118, 31, 31))
    round_trips(ds, tmp_path)


def test_allen_detects_a_wrong_permutation_and_corruption(tmp_path):
    folder, a = fx.write_allen(tmp_path / "allen")
    np.save(folder / "Allen_test_input.npy", a["scenes"][:18])
    with pytest.raises(FormatError, match=r"Allen_test_input.npy: expected the scenes RandomState\(31\)"):
        open_dataset(folder)
    (folder / "Allen_test_input.npy").unlink()  # optional file: the loader works without it
    assert open_dataset(folder).sizes["trial"] == 118
    np.save(folder / "Allen_test_output.npy", np.zeros((18, 8)))
    with pytest.raises(FormatError, match=r"Allen_test_output.npy: expected shape \(18, n_neurons\) with n_neurons=9"):
        open_dataset(folder)
    (folder / "all_input_scenes_118_961.npy").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="all_input_scenes_118_961.npy: not a readable .npy"):
        open_dataset(folder)


# ---------------------------------------------------------------------------------------- Stringer
def test_stringer_maps_ids_tiers_repeats_and_positions(tmp_path):
    path, a = fx.write_stringer(tmp_path / "stringer")
    ds = open_dataset(path, images=a["images_file"], classes=a["classes_file"])
    n_stim, n_neurons = a["resp"].shape
    n_images = a["imgs"].shape[2]
    stim = ds.isel(trial=ds["block"].values == "stimulus")
    np.testing.assert_array_equal(stim["order"].values, np.arange(n_stim))
    np.testing.assert_allclose(stim["responses"].values, a["resp"], rtol=1e-6)
    ids = a["istim"] - 1
    gray = ids == n_images
    np.testing.assert_array_equal(stim["image_id"].values, np.where(gray, -1, ids))
    assert set(tier_of(stim)[gray]) == {"spontaneous"}
    assert set(tier_of(stim)[ids == n_images - 1]) == {"train"}  # the image shown once
    assert set(tier_of(stim)[~gray & (ids < n_images - 1)]) == {"test"}
    spont = ds.isel(trial=ds["block"].values == "spont")
    np.testing.assert_allclose(spont["responses"].values, a["spont"], rtol=1e-6)
    assert set(spont["order"].values) == {-1} and set(tier_of(spont)) == {"spontaneous"}
    arr = repeat_array(ds, "test")  # repeat 0 = first presentation in time
    assert arr.shape == (n_images - 1, 2, n_neurons)
    for k, image in enumerate(arr["image_id"].values):
        rows = np.flatnonzero(ids == image)
        np.testing.assert_allclose(arr.values[k], a["resp"][rows], rtol=1e-6)
    np.testing.assert_allclose(ds["cortical_z"].values, a["med"][:, 2])
    np.testing.assert_array_equal(ds["redcell"].values, a["redcell"] > 0)
    np.testing.assert_allclose(ds["images"].values, np.moveaxis(a["imgs"], -1, 0))
    assert list(ds["category"].values) == [a["names"][c] for c in a["assignment"]]
    round_trips(ds, tmp_path)


def test_stringer_without_images_keeps_image_identity(tmp_path):
    path, a = fx.write_stringer(tmp_path / "stringer", with_stat=False)
    ds = open_dataset(path, images=None, classes=None)
    assert "images" not in ds and ds.sizes["image"] == a["imgs"].shape[2] and "redcell" not in ds.coords
    assert repeat_array(ds, "test").shape[:2] == (a["imgs"].shape[2] - 1, 2)
    round_trips(ds, tmp_path)
    cropped = open_dataset(path, images=a["images_file"], crop="centre")
    assert cropped["images"].shape[1:] == (67, 90)
    with pytest.raises(ValueError, match="crop='left' is not one of"):
        open_dataset(path, crop="left")


def test_stringer_finds_companion_files(tmp_path, monkeypatch):
    import json
    import shutil

    path, a = fx.write_stringer(tmp_path / "stringer")
    ds = open_dataset(path)  # images and classes lie next to the recording, as published
    np.testing.assert_allclose(ds["images"].values, np.moveaxis(a["imgs"], -1, 0))
    assert list(ds["category"].values) == [a["names"][c] for c in a["assignment"]]
    used = {Path(f["path"]).name for f in json.loads(ds.attrs["provenance"])["files"]}
    assert used == {path.name, a["images_file"].name, a["classes_file"].name}
    # no class file beside it: the shared folder's labels, if they label as many images
    shared = tmp_path / "shared"
    (shared / "stringer2019_classes").mkdir(parents=True)
    shutil.move(a["classes_file"], shared / "stringer2019_classes" / a["classes_file"].name)
    monkeypatch.setenv("V1NB_SHARED_DATA", str(shared))
    assert list(open_dataset(path)["category"].values) == [a["names"][c] for c in a["assignment"]]
    assert "category" not in open_dataset(path, classes=None).coords
    other, _ = fx.write_stringer(tmp_path / "other", n_images=9)  # 9 images: the shared labels do not fit
    (other.parent / a["classes_file"].name).unlink()
    assert "category" not in open_dataset(other).coords and "images" in open_dataset(other)


def test_stringer_preprocessing_removes_the_spontaneous_subspace(tmp_path):
    path, a = fx.write_stringer(tmp_path / "stringer", n_neurons=12, n_spont=40)
    k = 3
    ds = open_dataset(path, preprocess=True, n_components=k)
    mu, sd = a["spont"].mean(0), a["spont"].std(0) + 1e-6
    z_spont = (a["spont"] - mu) / sd
    top = np.linalg.svd(z_spont, full_matrices=False)[2][:k].T  # (neuron, k)
    x = ds["responses"].values.astype(np.float64)
    assert np.abs(x @ top).max() < 1e-4  # nothing left along the top spontaneous PCs
    stim = ds["image_id"].values >= 0
    np.testing.assert_allclose(x[stim].mean(0), 0, atol=1e-5)
    # the same map applied by hand
    z = (a["resp"] - mu) / sd
    z -= z @ top @ top.T
    expected = z - z[a["istim"] - 1 < a["imgs"].shape[2]].mean(0)
    np.testing.assert_allclose(x[: len(a["resp"])], expected, atol=1e-4)
    assert ds.attrs["response_unit"].startswith("z-score")
    # the function works on any schema dataset with a spontaneous tier
    raw = open_dataset(path)
    again = subtract_spontaneous_subspace(raw, n_components=k, reference=raw["block"].values == "spont")
    np.testing.assert_allclose(again["responses"].values, ds["responses"].values, atol=1e-5)
    with pytest.raises(ValueError, match="n_components=99"):
        subtract_spontaneous_subspace(raw, n_components=99)
    with pytest.raises(ValueError, match="min_std=-1"):
        subtract_spontaneous_subspace(raw, n_components=k, min_std=-1)


def test_spontaneous_normalisation_floors_silent_neurons(tmp_path):
    """A neuron silent in every spontaneous trial has s.d. 0: the reference's +1e-6 would scale
    it up a million-fold; the floor keeps it on the scale of the others."""
    path, a = fx.write_stringer(tmp_path / "stringer", n_neurons=12, n_spont=40)
    raw = open_dataset(path, images=None, classes=None)
    spont = raw["block"].values == "spont"
    raw["responses"].values[spont, 0] = 0.0  # neuron 0: silent in the spontaneous block
    reference = subtract_spontaneous_subspace(raw, n_components=2, reference=spont, min_std=0)
    floored = subtract_spontaneous_subspace(raw, n_components=2, reference=spont)
    stim = ~spont & (raw["image_id"].values >= 0)
    assert np.abs(reference["responses"].values[stim]).max() > 1e4
    assert np.abs(floored["responses"].values[stim]).max() < 100
    assert "for 1 of 12 neurons" in floored.attrs["preprocessing"]
    assert "for 0 of 12 neurons" in reference.attrs["preprocessing"]
    # the other neurons are unchanged up to the shared projection: their s.d. is above the floor
    sd = raw["responses"].values[spont].std(0)
    assert np.sum(sd < 0.1 * np.median(sd)) == 1


def test_stringer_bad_files(tmp_path):
    path, a = fx.write_stringer(tmp_path / "stringer")
    import scipy.io

    scipy.io.savemat(path, {"stim": {"resp": a["resp"], "istim": a["istim"][:, None].astype(float),
                                     "spont": a["spont"][:, :-1]}, "med": a["med"]})
    with pytest.raises(FormatError, match=r"stim.spont: expected shape \(Ts, N\) with N=8 matching stim.resp"):
        open_dataset(path)
    scipy.io.savemat(path, {"med": a["med"]})
    with pytest.raises(FormatError, match="expected a variable 'stim'"):
        open_dataset(path)
    path.write_bytes(b"MATLAB 5.0 MAT-file garbage" * 3)
    with pytest.raises(FormatError, match="natimg2800_.*not a readable MATLAB file"):
        open_dataset(path)


# --------------------------------------------------------------------------------------- Sensorium
@pytest.mark.parametrize("zipped, top_folder", [(False, True), (True, True), (True, False)])
def test_sensorium_folder_and_zip(tmp_path, zipped, top_folder):
    path, a = fx.write_sensorium(tmp_path, zipped=zipped, top_folder=top_folder)
    ds = open_dataset(path)
    n_trials = len(a["frame"])
    np.testing.assert_allclose(ds["responses"].values, a["resp"])  # file-index order
    np.testing.assert_array_equal(ds["order"].values, a["trial_idx"])
    np.testing.assert_array_equal(ds["sensorium_tier"].values.astype(str), a["tiers"])
    np.testing.assert_array_equal(tier_of(ds), np.where(a["tiers"] == "final_test", "test", a["tiers"]))
    uniq = np.unique(a["frame"])
    np.testing.assert_array_equal(ds["frame_image_id"].values, uniq)
    np.testing.assert_array_equal(uniq[ds["image_id"].values], a["frame"])
    for i, fid in enumerate(uniq):
        np.testing.assert_array_equal(ds["images"].values[i], a["pixels"][fid][0])
    # repeats numbered in temporal order (trial_idx), per image
    for fid in (300, 301, 400):
        rows = np.flatnonzero(a["frame"] == fid)
        np.testing.assert_array_equal(ds["repeat"].values[rows], np.argsort(np.argsort(a["trial_idx"][rows])))
    assert repeat_array(ds, "test").shape == (3, 2, 6)
    np.testing.assert_allclose(ds["cortical_y"].values, a["xyz"][:, 1])
    assert ds["behavior"].shape == (n_trials, 3) and ds["pupil_center"].shape == (n_trials, 2)
    np.testing.assert_allclose(ds["behavior"].values, a["behavior"])
    round_trips(ds, tmp_path)


def test_sensorium_options(tmp_path):
    path, a = fx.write_sensorium(tmp_path)
    lean = open_dataset(path, images=False, behavior=False)
    assert "images" not in lean and "behavior" not in lean and lean.sizes["image"] == len(np.unique(a["frame"]))
    norm = open_dataset(path, normalize=True)
    std = a["resp"].std(0)
    np.testing.assert_allclose(norm["responses"].values, a["resp"] / np.maximum(std, 0.01 * std.mean()), rtol=1e-5)
    assert abs(float(norm["images"].mean())) < 0.05


def test_sensorium_bad_files(tmp_path):
    path, a = fx.write_sensorium(tmp_path)
    np.save(path / "data/responses/3.npy", np.zeros(5))
    with pytest.raises(FormatError, match=r"responses/3.npy: expected shape \(n_neurons,\) with n_neurons=6"):
        open_dataset(path)
    (path / "data/responses/3.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"responses/3.npy: missing file"):
        open_dataset(path)
    np.save(path / "meta/trials/tiers.npy", np.array(["train", "holdout"] * 9))
    with pytest.raises(FormatError, match=r"tiers.npy: unknown tier values \['holdout'\]"):
        open_dataset(path)


def test_sensorium_corrupt_zip(tmp_path):
    path, _ = fx.write_sensorium(tmp_path, zipped=True)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{fx.SENSORIUM_STEM}/data/responses/0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    path.write_bytes(data[:start] + bytes(b ^ 0xFF for b in data[start:start + 20]) + data[start + 20:])
    with pytest.raises(FormatError, match=r"\.zip:.*responses/0.npy"):
        open_dataset(path)


# ------------------------------------------------------------------------------------------ nat60k
def test_nat60k_tiers_repeats_and_padding(tmp_path):
    path, a = fx.write_nat60k(tmp_path / "nat60k")
    ds = open_dataset(path, images=a["images_file"])
    used = np.unique(np.r_[a["istim_sp"], a["istim_ss"]])
    np.testing.assert_array_equal(ds["source_index"].values, used)
    np.testing.assert_array_equal(ds["images"].values, np.moveaxis(a["img"][:, :, used], -1, 0))
    train = ds.isel(trial=tier_of(ds) == "train")
    np.testing.assert_array_equal(used[train["image_id"].values], a["istim_sp"])
    np.testing.assert_allclose(train["responses"].values, a["sp"].T)
    assert list(train["repeat"].values) == [0, 0, 0, 0, 0, 0, 1, 0]  # image 17 shown twice
    test = ds.isel(trial=tier_of(ds) == "test")
    assert test.sizes["trial"] == 4 + 3 + 2  # NaN padding dropped
    per_image = {int(used[i]): sorted(test["repeat"].values[test["image_id"].values == i]) for i in np.unique(test["image_id"].values)}
    assert per_image == {2: [0, 1, 2, 3], 11: [0, 1, 2], 25: [0, 1]}
    assert np.isnan(test["responses"].values).sum() == 1  # a genuine missing value stays
    assert "cortical_x" not in ds.coords and "iplane" in ds.coords and "order" not in ds.coords
    with_z = open_dataset(path, plane_spacing_um=25.0)
    np.testing.assert_allclose(with_z["cortical_z"].values, a["iplane"] * 25.0)
    assert "images" not in with_z
    round_trips(ds, tmp_path)


def test_nat60k_bad_files(tmp_path):
    path, a = fx.write_nat60k(tmp_path / "nat60k")
    np.savez(path, **{k: v for k, v in a.items() if k in ("sp", "istim_sp", "ss_all", "istim_ss", "xpos", "ypos")})
    with pytest.raises(FormatError, match=r"missing \['iplane'\]"):
        open_dataset(path)
    np.savez(path, **{**{k: a[k] for k in ("sp", "istim_sp", "ss_all", "istim_ss", "xpos", "ypos", "iplane")},
                      "istim_ss": a["istim_ss"][:2]})
    with pytest.raises(FormatError, match=r"istim_ss: expected shape \(n_test,\) with n_test=3 matching ss_all"):
        open_dataset(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FormatError, match=r"nat60k_2023_03_06.npz: not a readable .npz"):
        open_dataset(path)


# ------------------------------------------------------------------------------------------ Cowley
def test_cowley_trials_tiers_and_jpegs(tmp_path):
    folder, a = fx.write_cowley(tmp_path / "cowley")
    ds = open_dataset(folder)
    assert ds.attrs["source"] == "cowley2023:190923"
    assert ds.sizes["trial"] == 3 + 2 + 3 + 1 and ds.sizes["image"] == 4 and ds["images"].shape[1:] == (112, 112)
    np.testing.assert_array_equal(ds["image_id"].values, [0, 0, 0, 1, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(ds["repeat"].values, [0, 1, 2, 0, 1, 0, 1, 2, 0])
    np.testing.assert_array_equal(tier_of(ds), ["test"] * 8 + ["train"])
    np.testing.assert_allclose(ds["responses"].values[4], a["raw"][:, 1, 1])
    # JPEG round trip of gray content: within compression error, sorted by name (not zip order)
    assert np.abs(ds["images"].values - a["rgb"][..., 0]).mean() < 3.0
    round_trips(ds, tmp_path)


def test_cowley_sessions_and_bad_files(tmp_path):
    folder, a = fx.write_cowley(tmp_path / "cowley", top_folder=False)
    fx.write_cowley(folder, session="191001")
    with pytest.raises(ValueError, match=r"pass session=.*\['190923', '191001'\]"):
        open_dataset(folder)
    assert open_dataset(folder, session="191001").attrs["source"] == "cowley2023:191001"
    with pytest.raises(FileNotFoundError, match="responses_nope.npy: missing file"):
        open_dataset(folder, session="nope")
    np.save(folder / "responses_raw/responses_190923.npy", a["raw"][:, :3])
    with pytest.raises(FormatError, match=r"images_190923.zip: expected 3 JPEG images .* found 4"):
        open_dataset(folder, session="190923")
    np.save(folder / "responses_raw/responses_190923.npy", a["raw"])
    with zipfile.ZipFile(folder / "images/images_190923.zip", "a") as zf:
        zf.writestr("image0005.jpg", b"not a jpeg")
    np.save(folder / "responses_raw/responses_190923.npy", np.concatenate([a["raw"], a["raw"][:, :1]], axis=1))
    with pytest.raises(FormatError, match=r"image0005.jpg: not a readable JPEG"):
        open_dataset(folder, session="190923")


# -------------------------------------------------------------------------------- open_dataset
def write_every_format(tmp_path) -> dict:
    return {
        "antolik2016": fx.write_antolik(tmp_path / "antolik")[0],
        "allen_boc": fx.write_allen(tmp_path / "allen")[0],
        "stringer2019": fx.write_stringer(tmp_path / "stringer")[0],
        "sensorium2022": fx.write_sensorium(tmp_path / "sensorium")[0],
        "sensorium2022.zip": fx.write_sensorium(tmp_path / "sensorium_zip", zipped=True)[0],
        "nat60k": fx.write_nat60k(tmp_path / "nat60k")[0],
        "cowley2023": fx.write_cowley(tmp_path / "cowley")[0],
    }


def test_detect_every_format_and_reject_unknown_paths(tmp_path):
    for name, path in write_every_format(tmp_path).items():
        assert detect(path).NAME == name.removesuffix(".zip")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(UnrecognisedFormatError, match=r"(?s)notes.txt: not a recognised dataset.*antolik2016.*cowley2023"):
        open_dataset(other)
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        open_dataset(tmp_path / "nowhere")


def test_unknown_options_are_listed(tmp_path):
    root, _ = fx.write_antolik(tmp_path / "antolik")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['regoin'\] for antolik2016.*valid options: region=None"):
        open_dataset(root, regoin=2)
    path, _ = fx.write_stringer(tmp_path / "stringer")
    with pytest.raises(TypeError, match="images='auto', classes='auto', crop='none', preprocess=False"):
        open_dataset(path, normalize=True)
    assert set(options(detect(path))) == {"images", "classes", "crop", "preprocess", "n_components"}


def test_netcdf_spec_round_trip(tmp_path):
    folder, _ = fx.write_allen(tmp_path / "allen")
    ds = open_dataset(folder)
    xr.testing.assert_identical(open_dataset(to_netcdf(ds, tmp_path / "allen.nc")), ds)


def test_twin_spec_delegates_lazily(monkeypatch):
    calls = []
    # the twin (and scikit-image with it) is imported only when a twin is asked for, through its store
    fake = types.ModuleType("v1nb.data.digital_twin.store")
    fake.cached_twin = lambda profile="default", **kw: calls.append((profile, kw)) or "twin-dataset"
    monkeypatch.setitem(sys.modules, "v1nb.data.digital_twin.store", fake)
    assert open_dataset("twin:quick", seed=3) == "twin-dataset"
    assert open_dataset("twin") == "twin-dataset"
    assert calls == [("quick", {"seed": 3}), ("default", {})]


def test_readers_never_write_into_the_data_folder(tmp_path):
    paths = write_every_format(tmp_path / "data")
    before = fx.snapshot(tmp_path / "data")
    fx.make_read_only(tmp_path / "data")
    try:
        for name, path in paths.items():
            ds = open_dataset(path)
            assert ds.sizes["trial"] > 0, name
    finally:
        fx.make_writable(tmp_path / "data")
    after = fx.snapshot(tmp_path / "data")
    # mode changes touch ctime only; sizes, mtimes and the file list must be unchanged
    assert after == before


# ---------------------------------------------------------------------------------- reliability
def test_split_half_reliability_is_even_odd_correlation():
    rng = np.random.default_rng(0)
    n_img, n_rep, n_neu = 30, 6, 4
    resp = rng.normal(size=(n_img, n_rep, n_neu)) + rng.normal(size=(n_img, 1, n_neu)) * [0, 0.5, 1, 3]
    ds = build_dataset(resp.transpose(1, 0, 2).reshape(-1, n_neu), image_id=np.tile(np.arange(n_img), n_rep),
                       tier="test", image_coords={"image": np.arange(n_img)}, source="unit-test")
    r = split_half_reliability(ds)
    even, odd = resp[:, 0::2].mean(1), resp[:, 1::2].mean(1)
    expected = [np.corrcoef(even[:, j], odd[:, j])[0, 1] for j in range(n_neu)]
    np.testing.assert_allclose(r.values, expected, rtol=1e-5)
    assert r.dims == ("neuron",) and np.all(np.diff(r.values[1:]) > 0)
    corrected = split_half_reliability(ds, spearman_brown=True)
    np.testing.assert_allclose(corrected.values, 2 * r.values / (1 + r.values), rtol=1e-6)


# ------------------------------------------------------------------------------------ real data
REAL = shared_data_dir()
realdata = pytest.mark.realdata


@realdata
@pytest.mark.skipif(REAL is None or not (REAL / "antolik2016").is_dir(), reason="../shared/data/antolik2016 absent")
@pytest.mark.parametrize("region, n_train, n_neurons, n_reps, median",
                         [(1, 1800, 103, 10, 0.644), (2, 1260, 55, 8, 0.492), (3, 1800, 102, 12, 0.645)])
def test_real_antolik_shapes_and_reliability(region, n_train, n_neurons, n_reps, median):
    ds = open_dataset(REAL / "antolik2016", region=region)
    tiers = tier_of(ds)
    assert (tiers == "train").sum() == n_train and ds.sizes["neuron"] == n_neurons
    assert repeat_array(ds, "test").shape == (50, n_reps, n_neurons)
    assert ds["images"].shape == (50, 31, 31) and float(ds["images"].max()) <= 255.0 + 1e-3
    assert float(split_half_reliability(ds).median()) == pytest.approx(median, abs=5e-4)


@realdata
@pytest.mark.skipif(REAL is None or not (REAL / "allen_boc_501498760").is_dir(), reason="../shared/data/allen_boc_501498760 absent")
def test_real_allen():
    ds = open_dataset(REAL / "allen_boc_501498760")
    assert ds.sizes == {"trial": 118, "neuron": 212, "image": 118, "y": 31, "x": 31}
    tiers = tier_of(ds)
    assert list(ds["image_id"].values[tiers == "train"][:4]) == [116, 63, 13, 100]
    assert list(ds["image_id"].values[tiers == "test"][:5]) == [113, 81, 25, 18, 117]
    assert ds.attrs["trial_averaged"] == 1


@realdata
@pytest.mark.skipif(not (repository_root().parent / "shared/data/antolik2016").is_dir(),
                    reason="../shared/data/antolik2016 absent beside the repository")
def test_relative_paths_resolve_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # e.g. a chapter's run folder
    ds = open_dataset("../shared/data/antolik2016", region=2)
    assert ds.attrs["source"] == "antolik2016:region2"


def test_infinite_responses_in_a_format_name_the_path_variable_and_count(tmp_path):
    """A loader's output is validated; the error names the full path, not just the source label."""
    from v1nb.data import SchemaError

    folder, _ = fx.write_allen(tmp_path / "allen_boc_1")
    out = np.load(folder / "Allen_test_output.npy")
    out[0, :2] = np.inf
    np.save(folder / "Allen_test_output.npy", out)
    with pytest.raises(SchemaError, match=rf"(?s){tmp_path}/allen_boc_1.*'responses' has 2 infinite values"):
        open_dataset(folder)

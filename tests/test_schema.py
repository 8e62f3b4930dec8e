"""The dataset schema: assembly, validation errors, NetCDF round trip, repeat views."""

import numpy as np
import pytest
import xarray as xr

from v1nb.data import SchemaError, build_dataset, read_netcdf, repeat_array, select_tier, to_netcdf, validate
from v1nb.data.locations import shared_data_dir


def small_dataset(n_neurons: int = 4, with_positions: bool = True) -> xr.Dataset:
    rng = np.random.default_rng(0)
    ids = np.r_[np.arange(5), np.tile(np.arange(5, 8), 4), -np.ones(3, int)]
    tier = np.r_[["train"] * 5, ["test"] * 12, ["spontaneous"] * 3]
    coords = {c: rng.normal(size=n_neurons) for c in ("cortical_x", "cortical_y", "cortical_z")} if with_positions else {}
    return build_dataset(
        rng.random((20, n_neurons)), image_id=ids, tier=tier, images=rng.random((8, 6, 7)),
        order=np.arange(20)[::-1], neuron_coords=coords, image_coords={"category": np.array(list("aabbccdd"))},
        source="unit-test", provenance={"seed": 0},
    )


def test_build_numbers_repeats_in_presentation_order():
    ds = small_dataset()
    test = select_tier(ds, "test")
    # order runs backwards, so the last test trial in the array is the first presentation
    assert test["repeat"].values[-1] == 0 and test["repeat"].values[0] == 3
    assert set(ds["repeat"].values[ds["tier"].values == "spontaneous"]) == {-1}
    assert ds["responses"].dtype == np.float32


def test_netcdf_round_trip_is_identical(tmp_path):
    ds = small_dataset()
    path = to_netcdf(ds, tmp_path / "rec.nc")
    xr.testing.assert_identical(ds, read_netcdf(path))
    assert [p.name for p in tmp_path.iterdir()] == ["rec.nc"]  # no temporary left behind


def test_repeat_array_shape_and_coords():
    arr = repeat_array(small_dataset(), "test")
    assert arr.dims == ("image", "repeat", "neuron") and arr.shape == (3, 4, 4)
    assert list(arr["image_id"].values) == [5, 6, 7]
    assert list(arr["category"].values) == ["c", "d", "d"]
    assert "cortical_x" in arr.coords


def test_repeat_array_without_repeats_is_a_clear_error():
    with pytest.raises(ValueError, match="no image shown at least 2 times"):
        repeat_array(small_dataset(), "train")


def test_missing_tier_is_named():
    with pytest.raises(ValueError, match="no 'validation' trials"):
        select_tier(small_dataset(), "validation")
    with pytest.raises(ValueError, match="not one of"):
        select_tier(small_dataset(), "holdout")


def test_validate_lists_every_problem():
    ds = small_dataset().drop_vars(["cortical_y"])
    ds = ds.assign_coords(tier=("trial", np.r_[["bogus"] * 20].astype(object)))
    ds.attrs.pop("provenance")
    with pytest.raises(SchemaError) as err:
        validate(ds, where="x.nc")
    message = str(err.value)
    for fragment in ("x.nc", "bogus", "cortical position", "provenance"):
        assert fragment in message


def test_image_id_out_of_range_and_blank_spontaneous():
    ds = small_dataset()
    bad = ds.assign_coords(image_id=ds["image_id"] + 5)
    with pytest.raises(SchemaError, match="out of range"):
        validate(bad)
    ids = ds["image_id"].values.copy()
    ids[-1] = 0
    with pytest.raises(SchemaError, match="spontaneous trials must have image_id == -1"):
        validate(ds.assign_coords(image_id=("trial", ids)))


def test_read_netcdf_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        read_netcdf(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(SchemaError, match="junk.nc"):
        read_netcdf(junk)


def test_shared_data_dir_rejects_a_typo(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        shared_data_dir(tmp_path / "nope")
    assert shared_data_dir(tmp_path) == tmp_path


# ---------------------------------------------------------------------------------------------
# Non-finite data (issue 14.6): NaN marks a missing response; infinity is never valid
# ---------------------------------------------------------------------------------------------

def _with_inf(ds: xr.Dataset, name: str, count: int) -> xr.Dataset:
    bad = ds.copy(deep=True)
    flat = bad[name].values.reshape(-1)
    flat[:count] = np.inf
    flat[count] = -np.inf  # both signs count
    return bad


@pytest.mark.parametrize("name", ["responses", "rates", "images"])
def test_validate_rejects_infinity_naming_variable_and_count(name):
    ds = small_dataset()
    if name == "rates":
        ds["rates"] = ds["responses"].copy()
    with pytest.raises(SchemaError, match=rf"'{name}' has 4 infinite values"):
        validate(_with_inf(ds, name, 3), where="rec.nc")
    with pytest.raises(SchemaError, match=r"\(rec.nc\)"):
        validate(_with_inf(ds, name, 3), where="rec.nc")


def test_build_dataset_rejects_infinite_responses_naming_the_source():
    rng = np.random.default_rng(0)
    y = rng.random((6, 3))
    y[2, 1] = np.inf
    with pytest.raises(SchemaError, match=r"(?s)\(my-loader\).*'responses' has 1 infinite value"):
        build_dataset(y, image_id=np.arange(6), tier="train", images=rng.random((6, 2, 2)), source="my-loader")


def test_nan_responses_stay_allowed_as_missing_values():
    ds = small_dataset()
    ds["responses"][:, 0] = np.nan
    validate(ds)


def test_to_netcdf_refuses_infinity_and_writes_nothing(tmp_path):
    path = tmp_path / "rec.nc"
    with pytest.raises(SchemaError, match=r"rec.nc.*\n.*'responses' has 2 infinite values"):
        to_netcdf(_with_inf(small_dataset(), "responses", 1), path)
    assert list(tmp_path.iterdir()) == []


def test_reading_a_file_with_infinity_names_file_variable_and_count(tmp_path):
    from v1nb.data import open_dataset

    path = tmp_path / "rec.nc"
    _with_inf(small_dataset(), "responses", 4).to_netcdf(path, engine="h5netcdf")  # bypasses validation
    for reader in (read_netcdf, open_dataset):
        with pytest.raises(SchemaError, match=r"rec.nc.*\n.*'responses' has 5 infinite values"):
            reader(path)

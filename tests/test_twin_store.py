"""The twin store: simulated once, read back identical, never trusted when broken."""

import json

import pytest
import xarray as xr

import v1nb.data.digital_twin as dt
from v1nb.data import open_dataset
from v1nb.data.digital_twin import store


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("V1NB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def simulations(monkeypatch):
    """Counts the twins actually simulated."""
    calls = []
    original = dt.twin

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(dt, "twin", counting)
    return calls


def _without_created(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    prov = json.loads(out.attrs["provenance"])
    prov.pop("created", None)
    out.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    return out


def test_read_back_is_the_fresh_twin(cache, simulations):
    stored = store.cached_twin("quick", seed=3, interactions=False)
    read = store.cached_twin("quick", seed=3, interactions=False)
    fresh = dt.simulate(dt.make_config("quick", interactions=False), 3, profile="quick",
                        overrides={"interactions": False})
    assert len(simulations) == 1, "the second call must read the stored twin"
    xr.testing.assert_identical(_without_created(read), _without_created(fresh))
    xr.testing.assert_identical(_without_created(stored), _without_created(fresh))
    for name in fresh.variables:
        assert read[name].dtype == fresh[name].dtype, name
    assert json.loads(read.attrs["provenance"])["created"] == json.loads(stored.attrs["provenance"])["created"]


def test_key_follows_every_input():
    base = store.twin_key("quick", 0)
    assert store.twin_key("quick", 0) == base
    others = {store.twin_key("default", 0), store.twin_key("quick", 1),
              store.twin_key("quick", 0, interactions=False), store.twin_key("quick", 0, n_neurons=40)}
    assert base not in others and len(others) == 4
    with pytest.raises(ValueError, match="unknown twin option"):
        store.twin_key("quick", 0, neurons=40)
    with pytest.raises(ValueError, match="seed=-1"):
        store.cached_twin("quick", seed=-1)


def test_open_dataset_goes_through_the_store(cache, simulations):
    first = open_dataset("twin:quick", seed=1)
    files = sorted((cache / "twins").glob("*.nc"))
    assert [f.name.split("-")[0] for f in files] == ["quick"]
    second = open_dataset("twin:quick", seed=1)
    assert len(simulations) == 1
    xr.testing.assert_identical(first, second)


def test_unreadable_file_is_simulated_again(cache, simulations):
    path = store.twin_path("quick", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a netcdf file")
    with pytest.warns(store.TwinCacheWarning, match="cannot be read"):
        ds = store.cached_twin("quick", 0)
    assert len(simulations) == 1 and ds.sizes["neuron"] == 60
    assert sorted(p.name for p in path.parent.iterdir() if p.name != ".locks") == [path.name]
    store.cached_twin("quick", 0)  # now readable: no warning, no simulation
    assert len(simulations) == 1


def test_unwritable_cache_still_returns_the_twin(cache, simulations):
    cache.mkdir(parents=True)
    (cache / "twins").write_text("a file where the folder should be")
    with pytest.warns(store.TwinCacheWarning, match="cannot be written"):
        ds = store.cached_twin("quick", 0)
    assert ds.sizes["neuron"] == 60 and len(simulations) == 1

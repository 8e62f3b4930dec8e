"""Part IV chapters run on a recording without ground truth, and say what has none.

The recording is the quick digital twin written as a NetCDF without anything a real recording lacks:
no true types or other ``true_*`` coordinates, no noise-free rates, and one presentation of each test
image (so no SNR, FEV or oracle correlation either). Truth-based values must be recorded as NaN, never
omitted; the performance chapter must answer with the uncontrolled test alone and say why.
"""

import json
import math
from pathlib import Path

import pytest

from v1nb.book.chapters import find_chapter
from v1nb.book.runner import run_chapter
from v1nb.data import open_dataset
from v1nb.data.schema import to_netcdf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    ds = open_dataset("twin:quick")
    ds = ds.drop_vars(["rates"] + [c for c in ds.coords if str(c).startswith("true_")])
    ds = ds.isel(trial=((ds["tier"] != "test") | (ds["repeat"] == 0)).values)
    ds.attrs["source"] = "a recording without ground truth"
    return to_netcdf(ds, tmp_path_factory.mktemp("recording") / "recording.nc")


def _values(name: str, parameters: dict, out: Path) -> dict:
    result = run_chapter(find_chapter(name, ROOT), parameters, out=out / name)
    return json.loads((result.folder / "results.json").read_text())["values"]


@pytest.mark.slow
def test_classical_and_performance_chapters_run_without_truth_or_snr(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("V1NB_CACHE", str(tmp_path / "cache"))  # the second chapter reuses the first one's fits
    common = {"data": str(recording), "budget": "quick", "n_types": 4}
    classical = _values("classical", {**common, "compare_core": ""}, tmp_path)
    for name in ("ari_truth_best", "ari_truth_best_reliable", "k_true"):
        assert math.isnan(classical[name]), name  # recorded, as NaN
    assert "no ground truth" in classical["ari_truth_best_method"]
    assert 0 <= classical["k_compare"] == 4 and math.isfinite(classical["cross_seed_ari_kmeans"])

    performance = _values("performance_by_cluster", common, tmp_path)
    assert performance["snr_measured"] is False and "no SNR" in performance["snr_note"]
    for name in ("p_value_cluster_given_snr", "partial_eta2_cluster", "p_value_type_given_snr", "k_true"):
        assert math.isnan(performance[name]), name
    assert 0 < performance["p_value_cluster_raw"] <= 1 and performance["n_neurons_tested"] == 60
    assert performance["performance_verdict"].startswith("unknown: no SNR to control for")

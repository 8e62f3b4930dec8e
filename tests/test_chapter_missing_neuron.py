"""A neuron without test responses is left out of the data chapter's summaries, and counted (issue 14.6)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from v1nb import metrics
from v1nb.book.chapters import find_chapter
from v1nb.book.runner import run_chapter
from v1nb.data import select_tier, to_netcdf, twin

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_data_chapter_excludes_and_counts_a_neuron_without_data(tmp_path):
    ds = twin("quick", seed=0)
    ds["responses"][:, 0] = np.nan
    path = to_netcdf(ds, tmp_path / "nan_neuron.nc")
    result = run_chapter(find_chapter("data", ROOT), {"data": str(path)}, out=tmp_path / "run")
    values = json.loads((result.folder / "results.json").read_text())["values"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        oracle = metrics.oracle_correlation(select_tier(ds, "test")["responses"]).values
    assert values["n_excluded"] == 1 and values["n_oracle"] == ds.sizes["neuron"] - 1
    # the median of the other neurons, not one that counts the empty neuron as 0 (0.298 before)
    assert values["median_oracle"] == pytest.approx(float(np.median(oracle[1:])), abs=1e-9)
    assert values["ceiling_n_excluded"] == 1

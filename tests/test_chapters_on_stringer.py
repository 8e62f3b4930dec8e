"""The population chapters run on a recording in Stringer's natimg2800 layout, given only its path.

The recording is the quick digital twin written in that layout (tests/fixtures.py), with its
images and class labels beside it as in the published collection.
"""

import json
from pathlib import Path

import pytest

import fixtures as fx
from v1nb.book.chapters import find_chapter
from v1nb.data import open_dataset
from v1nb.book.runner import run_chapter

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("geometry", "receptive_fields", "decoding", "clustering", "spatial")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return fx.write_stringer_from(open_dataset("twin:quick"), tmp_path_factory.mktemp("stringer"))


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_population_chapter_runs_on_a_natimg2800_path(name, recording, tmp_path):
    result = run_chapter(find_chapter(name, ROOT), {"data": str(recording)}, out=tmp_path / name)
    record = json.loads((result.folder / "results.json").read_text())
    assert record["parameters"]["data"] == str(recording)
    assert json.dumps(record["data"]).count("stringer2019") >= 1  # provenance names the format
    values = record["values"]
    assert values and all(v is not None for v in values.values())
    figures = list((result.folder / "figures").glob("*"))
    assert figures and all(f.stat().st_size > 0 for f in figures)

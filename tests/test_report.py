"""The chapter report: values to results.json and glue, figures to files."""

from __future__ import annotations

import json

import numpy as np

from v1nb.book.report import Report


def test_values_keep_raw_numbers_and_text_ignores_the_number_format(tmp_path):
    report = Report("demo", tmp_path, parameters={"seed": 0})
    assert report.value("alpha", np.float64(1.23456), "{:.2f}") == np.float64(1.23456)
    report.value("dimension", "n/a (too few points)", "{:.1f}")  # text: glued as it is, no format error
    report.save()
    saved = json.loads((tmp_path / "results.json").read_text())
    values = saved.get("values", saved)
    assert values["alpha"] == 1.23456 and isinstance(values["alpha"], float)
    assert values["dimension"] == "n/a (too few points)"

"""What a chapter reports: named numbers, figures saved as files, parameters and provenance.

Every chapter notebook creates one :class:`Report` right after its parameters cell and ends with
:meth:`Report.save`. Numbers go through :meth:`Report.value`, which glues them for the book's
text (``{glue:text}`name```) and records them in ``results.json`` in the run folder, so a
re-run with new parameters produces a machine-readable record beside the executed notebook.

Run-folder layout (``output_dir``)::

    results.json      {"chapter", "parameters", "values", "figures", "data", "versions", "created"}
    figures/<name>.png
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from v1nb.io import atomic_path, write_json
from v1nb.machine import machine
from v1nb.provenance import provenance


class Report:
    """Collects a chapter's results and writes them atomically.

    Parameters
    ----------
    chapter : str
        The chapter's name (e.g. ``"data"``).
    output_dir : path
        The run folder (a chapter parameter, so the runner can point it anywhere).
    parameters : mapping
        The chapter's parameter values, recorded verbatim.
    """

    def __init__(self, chapter: str, output_dir: str | os.PathLike, parameters: Mapping[str, Any]):
        self.chapter = chapter
        self.output_dir = Path(output_dir)
        self.parameters = dict(parameters)
        self.values: dict[str, Any] = {}
        self.figures: dict[str, str] = {}
        self.data: dict[str, Any] = {}

    def record_data(self, ds: Any, name: str = "data") -> None:
        """Record a dataset's source and provenance (its ``source``/``provenance`` attributes)."""
        import json

        self.data[name] = {"source": ds.attrs.get("source"), "provenance": json.loads(ds.attrs.get("provenance", "{}"))}

    def value(self, name: str, value: Any, fmt: str | None = None) -> Any:
        """Record a number (or short text) under ``name`` and glue it for the book's prose.

        ``fmt`` (e.g. ``"{:.2f}"``) sets how a number reads in the text (text values are glued
        as they are); the raw value goes to ``results.json``. Returns ``value`` so calls can be
        inlined.
        """
        raw = value.item() if isinstance(value, np.generic) else value
        self.values[name] = raw
        text = fmt.format(raw) if fmt and not isinstance(raw, str) else str(raw)
        try:
            from myst_nb import glue

            glue(name, text, display=False)
        except ImportError:  # running outside the book toolchain: results.json still has it
            pass
        return value

    def figure(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` in the run folder (atomically)."""
        path = self.output_dir / "figures" / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        self.figures[name] = str(path.relative_to(self.output_dir))
        return path

    def save(self) -> None:
        """Write ``results.json`` (atomically) and say what it holds."""
        record = provenance(
            chapter=self.chapter, parameters=self.parameters, values=self.values,
            figures=self.figures, data=self.data,
            machine=machine(),  # fits differ across CPU families for the same seed: say which one ran
        )
        write_json(self.output_dir / "results.json", record)
        print(f"{self.chapter}: {len(self.values)} values and {len(self.figures)} figures recorded in results.json")

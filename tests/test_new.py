"""``v1nb new <part>/<name> "Question?"``: a chapter that follows the conventions and runs at once.

Always in a temporary copy of the book root: the repository's _toc.yml is never touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from typer.testing import CliRunner

from v1nb.book.chapters import Chapter, ChapterError, book_chapters, toc_files
from v1nb.book.cli import app
from v1nb.book.new import add_to_toc, new_chapter

REPO = Path(__file__).resolve().parents[1]
cli = CliRunner()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the real book root (config, toc, bibliography, book/)."""
    target = tmp_path / "root"
    target.mkdir()
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "book", target / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_build"))
    return target


def test_new_writes_a_conventional_chapter_that_runs_at_once(root: Path) -> None:
    real_toc = (REPO / "_toc.yml").read_text()
    result = cli.invoke(app, ["new", "population/tuning", "How sharply are V1 neurons tuned?", "--root", str(root)])
    assert result.exit_code == 0, result.output
    path = root / "book" / "population" / "tuning.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source.startswith("# Tuning\n\n**Question.** How sharply are V1 neurons tuned?")
    chapter = Chapter.from_notebook(path)
    assert list(chapter.parameters) == ["data", "seed", "output_dir"]
    assert "parameters" in nb.cells[1].metadata["tags"]
    assert 'Report("tuning", output_dir' in nb.cells[2].source
    assert any(c.cell_type == "markdown" and c.source.startswith("## Answer") for c in nb.cells)
    assert nb.cells[-1].source == "report.save()"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")

    toc = (root / "_toc.yml").read_text()
    assert toc.startswith("# Table of contents")  # the comments stay
    assert "book/population/tuning" in toc_files(root)
    parts = yaml.safe_load(toc)["parts"]
    population = next(p for p in parts if any(c["file"].startswith("book/population/") for c in p["chapters"]))
    assert population["chapters"][-1] == {"file": "book/population/tuning"}
    assert "tuning" in [c.name for c in book_chapters(root)]

    run = cli.invoke(app, ["run", "tuning", "-p", "data", "twin:quick", "--root", str(root)])
    assert run.exit_code == 0, run.output
    results = json.loads(next((root / "runs" / "tuning").glob("*/results.json")).read_text())
    assert results["values"]["n_neurons"] == 60 and results["figures"] == {"mean_responses": "figures/mean_responses.png"}
    assert (REPO / "_toc.yml").read_text() == real_toc


def test_a_new_part_goes_before_the_back_matter(root: Path) -> None:
    created = new_chapter(root, "behaviour/pupil", "Does the pupil predict gain?")
    parts = yaml.safe_load((root / "_toc.yml").read_text())["parts"]
    captions = [p["caption"] for p in parts]
    assert captions[-1] == "Back matter"
    new = parts[-2]
    assert new["chapters"] == [{"file": "book/behaviour/pupil"}]
    numbered = [c for c in captions[:-2] if c.startswith("Part ")]
    assert new["caption"] == f"Part {['I', 'II', 'III', 'IV', 'V', 'VI'][len(numbered)]} — Behaviour"
    assert created.notebook == root / "book" / "behaviour" / "pupil.ipynb" and created.notebook.is_file()


def test_an_entry_after_a_chapter_with_sections_keeps_them() -> None:
    text = ("format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n      - file: book/a/one\n"
            "        sections:\n          - file: book/a/one_more\n  - caption: B  # the second part\n"
            "    chapters:\n      - file: book/b/two\n")
    out = add_to_toc(text, "a", "book/a/three")
    assert "  - caption: B  # the second part\n" in out
    assert yaml.safe_load(out)["parts"][0]["chapters"] == [
        {"file": "book/a/one", "sections": [{"file": "book/a/one_more"}]}, {"file": "book/a/three"}]


@pytest.mark.parametrize("entry, question, message", [
    ("tuning", "Q?", "expected PART/NAME"),
    ("Population/Tuning", "Q?", "expected PART/NAME"),
    ("population/tuning", "  ", "the question is empty"),
    ("population/data", "Q?", "already has a chapter or page named 'data'"),
])
def test_bad_requests_are_refused_and_write_nothing(root: Path, entry: str, question: str, message: str) -> None:
    toc = (root / "_toc.yml").read_text()
    with pytest.raises(ChapterError, match=message):
        new_chapter(root, entry, question)
    assert (root / "_toc.yml").read_text() == toc
    assert not (root / "book" / "population" / "tuning.ipynb").exists()

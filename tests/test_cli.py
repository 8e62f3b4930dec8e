"""The ``v1nb`` command line, through typer's CliRunner, on the tiny book in tests/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from v1nb.book.cli import app


cli = CliRunner()



def test_list_shows_chapters_parameters_defaults_and_help(book: Path) -> None:
    result = cli.invoke(app, ["list", "--root", str(book)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tiny: A tiny chapter" in out
    assert "book/part/tiny.ipynb" in out
    for fragment in ("seed", "= 0", "(int)", "random seed", "scale", "= 1.0", "(float)", "multiplies the numbers",
                     "data", "'twin:default'", "(str)"):
        assert fragment in out
    assert out.index("data ") < out.index("seed ") < out.index("output_dir")  # notebook order


def test_list_finds_the_root_from_the_current_folder(book: Path, monkeypatch) -> None:
    monkeypatch.chdir(book / "book" / "part")
    result = cli.invoke(app, ["list"])
    assert result.exit_code == 0 and "tiny: A tiny chapter" in result.output


def test_list_outside_a_book_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["list"])
    assert result.exit_code == 1 and "no _toc.yml in" in result.output


def test_run_rejects_bad_parameters_before_running(book: Path) -> None:
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "n", "2.5"])
    assert result.exit_code == 1
    assert "parameter 'n' expects int (default 5), got '2.5'" in result.output
    assert "scale       = 1.0" in result.output
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "bogus", "1"])
    assert result.exit_code == 1 and "has no parameter 'bogus'" in result.output
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "output_dir", "x"])
    assert result.exit_code == 1 and "use --out" in result.output
    result = cli.invoke(app, ["run", "nochapter", "--root", str(book)])
    assert result.exit_code == 1 and "no chapter 'nochapter'" in result.output
    assert not (book / "runs").exists()


def test_run_executes_and_then_reuses(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "myrun"
    args = ["run", "tiny", "--root", str(book), "-p", "seed", "3", "-p", "n", "4", "--out", str(out)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tiny: ran in" in result.output and f"run folder: {out}" in result.output
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["seed"] == 3 and record["parameters"]["n"] == 4
    assert "mean = " in result.output
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "reused cached run" in again.output
    forced = cli.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and "tiny: ran in" in forced.output


def test_run_reports_a_failing_chapter(book: Path) -> None:
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "fail", "yes"])
    assert result.exit_code == 1
    assert "chapter 'tiny' failed in cell 3 (`if fail:`): ValueError: asked to fail" in result.output


def test_book_rejects_a_parameter_no_chapter_has(book: Path) -> None:
    result = cli.invoke(app, ["book", "--root", str(book), "-p", "nope", "1"])
    assert result.exit_code == 1 and "no chapter of the book has parameter(s) nope" in result.output
    result = cli.invoke(app, ["book", "--root", str(book), "--profile", "huge"])
    assert result.exit_code == 1 and "unknown profile 'huge'" in result.output


# --- option values that are not values (issue 14 item 9) -----------------------------------------


def test_an_option_is_not_taken_as_a_parameter_value(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "X"
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "seed", "--out", str(out)])
    assert result.exit_code == 2  # a usage error, like any other malformed command line
    assert "parameter 'seed' has no value: '--out' is an option of this command" in _flat(result.output)
    # a string parameter would otherwise silently take the flag as its value
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "data", "--force"])
    assert result.exit_code == 2
    assert "parameter 'data' has no value: '--force' is an option" in _flat(result.output)
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "--out", str(out)])
    assert result.exit_code == 2 and "-p needs NAME VALUE, but '--out' is an option" in _flat(result.output)
    assert not out.exists() and not (book / "runs").exists()


def _flat(output: str) -> str:
    """Click's usage errors come in a box that wraps lines: compare the words only."""
    import re

    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


def test_a_negative_number_is_still_a_value(book: Path, tmp_path: Path) -> None:
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "scale", "-2", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "results.json").read_text())["parameters"]["scale"] == -2.0


def test_empty_data_is_an_error_not_the_current_folder(book: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["run", "tiny", "--root", str(book), "-p", "data", ""])
    assert result.exit_code == 1
    assert "parameter 'data' is empty; expected \"twin\" or \"twin:<profile>\"" in result.output
    assert not (book / "runs").exists()


def test_jobs_must_be_positive(book: Path) -> None:
    result = cli.invoke(app, ["book", "--root", str(book), "--jobs", "0"])
    assert result.exit_code == 1 and "--jobs must be at least 1, got 0" in result.output

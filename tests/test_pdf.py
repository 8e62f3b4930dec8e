"""Preparing the staged book for pdflatex (v1nb.book.latex); the PDF itself is built by the slow
test in test_rendered.py where TeX is installed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from v1nb.book.latex import _part_command, latex_for, prepare_stage, unicode_preamble


def test_unicode_preamble_declares_what_inputenc_lacks() -> None:
    preamble = unicode_preamble(["α ≈ 1, r ≥ 0.5 − 2 → µm, x² · y, Σ_k Ω", "café – naïve — “quotes”"])
    assert r"\DeclareUnicodeCharacter{03B1}{\ensuremath{\alpha}}" in preamble
    assert r"\DeclareUnicodeCharacter{2212}{\ensuremath{-}}" in preamble
    assert r"\DeclareUnicodeCharacter{03A3}{\ensuremath{\Sigma}}" in preamble
    assert r"\DeclareUnicodeCharacter{00B2}{\ensuremath{^{2}}}" in preamble
    for handled_by_inputenc in ("00E9", "2013", "2014", "201C"):  # é – — “
        assert f"{{{handled_by_inputenc}}}" not in preamble
    assert latex_for("ο") == "o" and latex_for("Α") is None  # omicron; capital alpha looks like A


def test_unknown_characters_are_printed_visibly_and_named() -> None:
    with pytest.warns(UserWarning, match=r"U\+2603 SNOWMAN"):
        preamble = unicode_preamble(["let it ☃"])
    assert r"\DeclareUnicodeCharacter{2603}{\texttt{[U+2603]}}" in preamble


def test_part_commands_number_the_numbered_parts_only() -> None:
    assert _part_command("Part II — The population code") == r"\part{The population code}"
    assert _part_command("Back matter") == r"\part*{Back matter}\addcontentsline{toc}{part}{Back matter}"
    assert _part_command("Part I — Data & 50% more") == r"\part{Data \& 50\% more}"


def test_prepare_stage_gives_parts_an_introduction_and_the_preamble_once(tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\nsphinx:\n  config:\n    latex_elements:\n      papersize: a4paper\n")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({
        "format": "jb-book", "root": "book/intro",
        "parts": [{"caption": "Part I — Data", "chapters": [{"file": "book/ch"}]},
                  {"caption": "Back matter", "chapters": [{"file": "book/end"}]}]}))
    (tmp_path / "book" / "intro.md").write_text("# Title\n\nOpening.\n\n## First\n\ntext ≈ 1\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter\n\nα")]
    nbformat.write(nb, tmp_path / "book" / "ch.ipynb")
    (tmp_path / "book" / "end.md").write_text("# End\n")
    for _ in range(2):  # idempotent: a second PDF build from the same stage changes nothing more
        prepare_stage(tmp_path)
    intro = (tmp_path / "book" / "intro.md").read_text()
    assert intro.count("## Introduction") == 1 and "### First" in intro
    cells = nbformat.read(tmp_path / "book" / "ch.ipynb", as_version=4).cells
    assert cells[0].source == "```{raw} latex\n\\part{Data}\n```" and len(cells) == 2
    assert (tmp_path / "book" / "end.md").read_text().count(r"\part*{Back matter}") == 1
    elements = yaml.safe_load((tmp_path / "_config.yml").read_text())["sphinx"]["config"]["latex_elements"]
    assert elements["papersize"] == "a4paper"
    assert r"{\ensuremath{\approx}}" in elements["preamble"] and r"{\ensuremath{\alpha}}" in elements["preamble"]
    assert elements["preamble"].count(r"\renewcommand{\contentsname}{Contents}") == 1

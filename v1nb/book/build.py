"""Building the book: run every chapter (or reuse its cached run), stage, render strictly.

Chapter sources are committed without outputs and Jupyter Book is configured not to execute
(``execute_notebooks: "off"``), so the HTML is built from a staging copy of the book in which
every chapter notebook is replaced by its executed run::

    _build/stage/   _config.yml, _toc.yml, references.bib, book/ (executed notebooks, run figures)
    _build/html/    the rendered book

Jupyter Book 1 runs with warnings as errors (``-W``, without ``--keep-going``) and ``--all``,
because Sphinx does not repeat the warnings of pages it does not rebuild.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import nbformat

from v1nb.book.chapters import Chapter, ParameterError, book_chapters
from v1nb.book.runner import RunResult, cached_run, default_run_folder, resolve_parameters, run_chapter
from v1nb.book.latex import prepare_stage
from v1nb.book.staging import ANSWERS_MARKER, answers_markdown, present_notebook

PROFILES = ("quick", "default")
#: Files of the book root that the build needs besides ``book/``.
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
#: Marker line in a MyST page that staging replaces by the table of every chapter's parameters.
PARAMETERS_MARKER = "<!-- v1nb:parameters -->"


class BookBuildError(RuntimeError):
    """Jupyter Book failed (a warning counts as failure)."""


@dataclass(frozen=True)
class BookResult:
    """Where the HTML landed and which runs it shows."""

    html: Path
    runs: list[RunResult]
    #: ``_build/latex/<name>.pdf`` when the PDF was built (``pdf=True``), else None.
    pdf: Path | None = None


def chapter_overrides(chapter: Chapter, profile: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a chapter gets in a book build.

    ``profile="quick"`` sets ``data="twin:quick"`` for chapters whose default data is a twin;
    book-wide ``overrides`` apply to the chapters that declare the parameter (and win).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    out: dict[str, Any] = {}
    default_data = chapter.parameters["data"].default
    if profile == "quick" and isinstance(default_data, str) and default_data.startswith("twin"):
        out["data"] = "twin:quick"
    out.update({k: v for k, v in overrides.items() if k in chapter.parameters})
    return out


def build_book(
    root: str | os.PathLike,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    *,
    execute: bool = True,
    progress: bool = True,
    quiet: bool = False,
    jobs: int | None = None,
    pdf: bool = False,
) -> BookResult:
    """Execute (or reuse) every chapter of ``<root>/_toc.yml`` and build the HTML strictly.

    Parameters
    ----------
    root : path
        The book root (holds ``_toc.yml``).
    profile : {"quick", "default"}
    overrides : mapping, optional
        Parameter values applied to every chapter that has the parameter; a name no chapter has
        is an error.
    execute : bool
        If False, never execute: every chapter must have a cached run for these parameters.
    progress : bool
        Show a tqdm bar over chapters.
    quiet : bool
        Pass ``-q`` to Jupyter Book (warnings are still shown).
    jobs : int, optional
        The cores the build uses (default: every core): above 1, the chapters without a cached run
        execute that many at a time on a local Dask cluster, the longest first; below the number
        of cores, each chapter is confined to that many (:func:`v1nb.book.executor.run_chapters`).
    pdf : bool
        Also build the PDF (``_build/latex/*.pdf``, LaTeX builder with pdflatex) from the same stage.

    Raises
    ------
    ParameterError, ChapterFailed, BookBuildError
    """
    from v1nb.book.executor import run_chapters

    root = Path(root).resolve()
    overrides = dict(overrides or {})
    chapters = book_chapters(root)
    known = {name for c in chapters for name in c.parameters}
    unknown = sorted(set(overrides) - known)
    if unknown:
        listing = "\n".join(c.describe_parameters() for c in chapters) or "(the book has no notebook chapters)"
        raise ParameterError(f"no chapter of the book has parameter(s) {', '.join(unknown)}.\n{listing}")

    params = [chapter_overrides(chapter, profile, overrides) for chapter in chapters]
    runs: list[RunResult] = []
    if execute:
        runs = run_chapters(root, chapters, params, jobs=jobs, progress=progress)
    else:
        for chapter, given in zip(chapters, params):
            resolved = resolve_parameters(chapter, given)
            hit = cached_run(default_run_folder(root, chapter, resolved), chapter, resolved)
            if hit is None:
                raise FileNotFoundError(
                    f"--no-execute: chapter {chapter.name!r} has no cached run for these parameters "
                    f"(profile {profile!r}); run `v1nb book` (or `v1nb run {chapter.name}`) first"
                )
            runs.append(hit)

    stage_dir = stage(root, chapters, runs)
    html = render(stage_dir, root / "_build", quiet=quiet)
    pdf_path = render(stage_dir, root / "_build", quiet=quiet, builder="pdflatex") if pdf else None
    return BookResult(html, runs, pdf_path)


def stage(root: Path, chapters: list[Chapter], runs: list[RunResult]) -> Path:
    """Copy the book into ``<root>/_build/stage`` with each chapter replaced by its executed run."""
    target = root / "_build" / "stage"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in BOOK_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, target / name)
    shutil.copytree(root / "book", target / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for chapter, run in zip(chapters, runs):
        rel = chapter.path.resolve().relative_to(root)
        # the page shows the parameters once, with the values used, and no bookkeeping output
        shown = present_notebook(nbformat.read(run.notebook, as_version=4), run.parameters, chapter.defaults)
        nbformat.write(shown, target / rel)
        figures = run.folder / "figures"
        if figures.is_dir():  # so prose can link a chapter's saved figure files
            shutil.copytree(figures, target / rel.parent / "figures" / chapter.name, dirs_exist_ok=True)
    table = parameters_markdown(chapters)
    answers = None
    for page in (target / "book").rglob("*.md"):
        text = page.read_text()
        if PARAMETERS_MARKER in text:
            text = text.replace(PARAMETERS_MARKER, table)
        if ANSWERS_MARKER in text:  # the Discussion: every chapter's answer, glued from its run
            if answers is None:
                answers = answers_markdown(
                    (c, c.path.resolve().relative_to(root),
                     {"notebook": r.notebook, "parameters": r.parameters, "values": r.results.get("values", {})})
                    for c, r in zip(chapters, runs)
                )
            text = text.replace(ANSWERS_MARKER, answers)
        page.write_text(text)
    return target


def parameters_markdown(chapters: list[Chapter]) -> str:
    """A MyST table per chapter of its parameters, defaults and help."""
    if not chapters:
        return "*The book has no notebook chapters yet.*"
    blocks = []
    for c in chapters:
        rows = [f"**{c.title}** — `v1nb run {c.name}`", "", "| parameter | default | type | meaning |",
                "|---|---|---|---|"]
        for p in c.parameters.values():
            note = "set by the runner to the run folder" if p.name == "output_dir" else p.help
            rows.append(f"| `{p.name}` | `{p.default!r}` | {p.type.__name__} | {note.replace('|', '&#124;')} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def render(stage_dir: Path, build_dir: Path, quiet: bool = False, builder: str = "html") -> Path:
    """Run ``jupyter-book build -W --all`` on ``stage_dir``.

    Returns ``<build_dir>/html`` for ``builder="html"``; for ``"pdflatex"`` (the thesis-style PDF;
    needs ``latexmk`` and pdflatex) the PDF in ``<build_dir>/latex``.
    """
    if build_dir.name != "_build":
        raise ValueError(f"Jupyter Book always writes into a folder named _build, not {build_dir}")
    if builder not in ("html", "pdflatex"):
        raise ValueError(f"unknown builder {builder!r}; expected 'html' or 'pdflatex'")
    if builder == "pdflatex":
        missing = [tool for tool in ("latexmk", "pdflatex") if shutil.which(tool) is None]
        if missing:
            raise BookBuildError(
                f"the PDF needs {' and '.join(missing)} on PATH; on Debian/Ubuntu: "
                "apt-get install latexmk texlive-latex-extra texlive-fonts-recommended tex-gyre"
            )
        prepare_stage(stage_dir)  # parts, one Introduction chapter, Unicode for pdflatex
        # latexmk compiles every .tex there, and a failed build must leave no stale PDF behind
        shutil.rmtree(build_dir / "latex", ignore_errors=True)
    exe = Path(sys.executable).with_name("jupyter-book")  # the one installed beside this Python
    command = [str(exe) if exe.exists() else "jupyter-book", "build", str(stage_dir),
               "--path-output", str(build_dir.parent), "--warningiserror", "--all", "--builder", builder]
    if quiet:
        command.append("-q")
    done = subprocess.run(command)
    if done.returncode != 0:
        raise BookBuildError(
            f"jupyter-book build failed (exit {done.returncode}); warnings count as errors. "
            f"Command: {' '.join(command)}"
        )
    if builder == "pdflatex":
        pdfs = sorted((build_dir / "latex").glob("*.pdf"))
        if not pdfs:
            raise BookBuildError(f"jupyter-book reported success but wrote no PDF in {build_dir / 'latex'}")
        return pdfs[0]
    return build_dir / "html"

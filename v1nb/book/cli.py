"""The ``v1nb`` command line: list chapters, run one, build the book.

Examples
--------
::

    v1nb list
    v1nb run data -p seed 1 -p data twin:quick
    v1nb run book/data/data.ipynb --out /tmp/data-run
    v1nb book --profile quick
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import click
import typer
from typer.core import TyperCommand

from v1nb.book.chapters import ChapterError, ParameterError, book_chapters, find_chapter, find_root

app = typer.Typer(
    help="Run the chapters of the v1nb book and build it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



class _PairOptionCommand(TyperCommand):
    """Makes ``-p/--parameter`` take two values (``-p NAME VALUE``, as papermill does).

    Typer cannot declare a repeatable two-value option from annotations, so the click option it
    builds is given ``nargs=2`` here.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "parameter":
                param.nargs = 2
                param.type = click.Tuple([str, str])


ParamOption = typer.Option(
    None, "--parameter", "-p", metavar="NAME VALUE",
    help="Set a chapter parameter (repeatable), e.g. -p seed 1.",
)
RootOption = typer.Option(
    None, "--root", envvar="V1NB_ROOT",
    help="Book root holding _toc.yml (default: the nearest one at or above the current folder).",
)


def _overrides(pairs: Optional[List[tuple]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs or []:
        if name in out:
            raise ParameterError(f"parameter {name!r} given twice")
        out[name] = value
    return out


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command("list")
def list_chapters(root: Optional[Path] = RootOption) -> None:
    """List the book's chapters (from _toc.yml) with their parameters, defaults and help."""
    try:
        root = root or find_root()
        chapters = book_chapters(root)
    except ChapterError as exc:
        _fail(str(exc))
    if not chapters:
        typer.echo(f"{root / '_toc.yml'} lists no notebook chapters.")
    for chapter in chapters:
        typer.secho(f"{chapter.name}: {chapter.title}", bold=True)
        typer.echo(f"  {chapter.path.resolve().relative_to(Path(root).resolve())}")
        width = max(len(p) for p in chapter.parameters)
        shown = max(len(repr(p.default)) for p in chapter.parameters.values())
        for p in chapter.parameters.values():
            kind = f"({p.type.__name__})"
            typer.echo(f"    {p.name:<{width}} = {p.default!r:<{shown}}  {kind:<7}  {p.help}")
        typer.echo("")


@app.command(cls=_PairOptionCommand)
def run(
    chapter: str = typer.Argument(..., help="Chapter name from _toc.yml (e.g. data) or a notebook path."),
    parameter: Optional[List[tuple]] = ParamOption,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/<chapter>/<hash>/)."),
    force: bool = typer.Option(False, "--force", help="Execute even if an identical run is cached."),
    root: Optional[Path] = RootOption,
) -> None:
    """Execute one chapter with papermill into a run folder (notebook, figures, results.json)."""
    from v1nb.book.runner import ChapterFailed, run_chapter

    try:
        chap = find_chapter(chapter, root)
        overrides = _overrides(parameter)
        if "output_dir" in overrides:
            raise ParameterError("output_dir is set by the runner; use --out to choose the run folder")
        try:
            book_root = root or find_root(chap.path.parent)
        except ChapterError:  # a notebook outside any book: runs go beside it
            book_root = chap.path.parent
        result = run_chapter(chap, overrides, out, root=book_root, reuse=not force, progress=True)
    except (ChapterError, ParameterError, ChapterFailed, FileExistsError) as exc:
        _fail(str(exc))
    how = "reused cached run" if result.cached else f"ran in {result.wall_time:.1f} s"
    typer.echo(f"{result.chapter}: {how}")
    typer.echo(f"  run folder: {result.folder}")
    values = result.results.get("values", {})
    for name, value in values.items():
        typer.echo(f"  {name} = {value}")


@app.command(cls=_PairOptionCommand)
def book(
    profile: str = typer.Option("default", "--profile", help="quick (small twin, as in CI) or default."),
    parameter: Optional[List[tuple]] = ParamOption,
    execute: bool = typer.Option(True, "--execute/--no-execute", help="--no-execute: use cached runs only."),
    root: Optional[Path] = RootOption,
) -> None:
    """Execute every chapter (reusing unchanged runs) and build the HTML, warnings as errors."""
    from v1nb.book.build import PROFILES, BookBuildError, build_book
    from v1nb.book.runner import ChapterFailed

    if profile not in PROFILES:
        _fail(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    start = time.perf_counter()
    try:
        result = build_book(root or find_root(), profile, _overrides(parameter), execute=execute)
    except (ChapterError, ParameterError, ChapterFailed, BookBuildError, FileNotFoundError, FileExistsError) as exc:
        _fail(str(exc))
    fresh = sum(not r.cached for r in result.runs)
    typer.echo(f"{len(result.runs)} chapter(s), {fresh} executed, {len(result.runs) - fresh} from cache; "
               f"{time.perf_counter() - start:.1f} s")
    typer.echo(f"HTML: {result.html / 'index.html'}")


if __name__ == "__main__":
    app()

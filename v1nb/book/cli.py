"""The ``v1nb`` command line: list chapters, run one, build the book.

Examples
--------
::

    v1nb list
    v1nb run data -p seed 1 -p data twin:quick
    v1nb run book/data/data.ipynb --out /tmp/data-run
    v1nb sweep data -p seed 0,1,2 -p data twin:quick --out sweeps/data-seeds
    v1nb book --profile quick --jobs 2
    v1nb new population/tuning "How sharply are V1 neurons tuned?"
"""

from __future__ import annotations

import signal
import threading
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

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        # click gives `-p seed --out X` to -p as ("seed", "--out"): an option is never a value
        options = {"--help"}
        for param in self.params:  # (typer may carry its own copy of click: no isinstance)
            if getattr(param, "param_type_name", "") == "option":
                options.update(param.opts, param.secondary_opts)
        for i, token in enumerate(args):
            if token == "--":
                break
            if token not in ("-p", "--parameter"):
                continue
            for j, given in enumerate(args[i + 1:i + 3]):
                if given.split("=", 1)[0] in options:
                    what = f"{token} needs NAME VALUE, but" if j == 0 else f"parameter {args[i + 1]!r} has no value:"
                    ctx.fail(f"{what} {given!r} is an option of this command, not a value; "
                             f"write {token} NAME VALUE (e.g. -p seed 1) before or after the other options")
        return super().parse_args(ctx, args)


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


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a killed run cleans up as after Ctrl-C.

    Python's default SIGTERM action ends the process without unwinding: the run's temporary
    folder beside the run folder would stay. As an exception, the runner's cleanup
    (:func:`v1nb.io.atomic_dir`) and papermill's kernel shutdown run.
    """
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


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

    _exit_on_sigterm()
    try:
        chap = find_chapter(chapter, root)
        overrides = _overrides(parameter)
        if "output_dir" in overrides:
            raise ParameterError("output_dir is set by the runner; use --out to choose the run folder")
        result = run_chapter(chap, overrides, out, root=_book_root(chap, root), reuse=not force, progress=True)
    except (ChapterError, ParameterError, ChapterFailed, FileExistsError) as exc:
        _fail(str(exc))
    how = "reused cached run" if result.cached else f"ran in {result.wall_time:.1f} s"
    typer.echo(f"{result.chapter}: {how}")
    typer.echo(f"  run folder: {result.folder}")
    values = result.results.get("values", {})
    for name, value in values.items():
        typer.echo(f"  {name} = {value}")


def _book_root(chap, root: Optional[Path]) -> Path:
    try:
        return root or find_root(chap.path.parent)
    except ChapterError:  # a notebook outside any book: runs go beside it
        return chap.path.parent


@app.command(cls=_PairOptionCommand)
def sweep(
    chapter: str = typer.Argument(..., help="Chapter name from _toc.yml or a notebook path."),
    parameter: Optional[List[tuple]] = typer.Option(
        None, "--parameter", "-p", metavar="NAME V1,V2,...",
        help="Values of a parameter to sweep, comma-separated (repeatable; the grid is their product).",
    ),
    zip_: bool = typer.Option(False, "--zip", help="Pair the lists (equal lengths) instead of their product."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Sweep folder for table.csv, table.nc, failures.json "
                                  "(default sweeps/<chapter>-<hash>/)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler."),
    cluster: str = typer.Option("local", "--cluster", help="local (a LocalCluster) or slurm (dask-jobqueue)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Workers to start (default: number of cores)."),
    root: Optional[Path] = RootOption,
) -> None:
    """Run a chapter over a grid of parameter values on Dask (cached runs) and tabulate the results."""
    from v1nb.book.executor import CLUSTERS
    from v1nb.book.sweep import parse_values, run_sweep

    _exit_on_sigterm()
    if cluster not in CLUSTERS:
        _fail(f"unknown --cluster {cluster!r}; expected one of {', '.join(CLUSTERS)}")
    if jobs is not None and jobs < 1:
        _fail(f"--jobs must be at least 1, got {jobs}")
    try:
        chap = find_chapter(chapter, root)
        grid = {name: parse_values(name, values) for name, values in _overrides(parameter).items()}
        result = run_sweep(chap, grid, root=_book_root(chap, root), zip_=zip_, out=out, jobs=jobs,
                           scheduler=scheduler, cluster=cluster)
    except (ChapterError, ParameterError, FileExistsError) as exc:
        _fail(str(exc))
    failures = result.failures
    typer.echo(f"{chap.name}: {len(result.points)} point(s), {result.executed} executed, "
               f"{result.cached} from cache, {len(failures)} failed")
    typer.echo(f"  table: {result.out / 'table.csv'} (and table.nc)")
    if failures:
        for failure in failures:
            shown = ", ".join(f"{k}={v}" for k, v in failure["parameters"].items())
            typer.secho(f"failed point {shown}: {failure['error']}", fg=typer.colors.RED, err=True)
        typer.secho(f"{len(failures)} point(s) failed; see {result.out / 'failures.json'}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@app.command(cls=_PairOptionCommand)
def book(
    profile: str = typer.Option("default", "--profile", help="quick (small twin, as in CI) or default."),
    parameter: Optional[List[tuple]] = ParamOption,
    execute: bool = typer.Option(True, "--execute/--no-execute", help="--no-execute: use cached runs only."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", help="Cores to use: chapters executing at once, and each chapter's threads and fit "
                              "processes where fewer than the cores (default: number of cores; 1: one after "
                              "another on one core)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also build the PDF (_build/latex/*.pdf; needs latexmk and pdflatex)."),
    root: Optional[Path] = RootOption,
) -> None:
    """Execute every chapter (reusing unchanged runs) and build the HTML (and the PDF), warnings as errors."""
    from v1nb.book.build import PROFILES, BookBuildError, build_book
    from v1nb.book.executor import default_jobs
    from v1nb.book.runner import ChapterFailed

    _exit_on_sigterm()
    if profile not in PROFILES:
        _fail(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if jobs is not None and jobs < 1:
        _fail(f"--jobs must be at least 1, got {jobs}")
    start = time.perf_counter()
    try:
        result = build_book(root or find_root(), profile, _overrides(parameter), execute=execute,
                            jobs=jobs or default_jobs(), pdf=pdf)
    except (ChapterError, ParameterError, ChapterFailed, BookBuildError, FileNotFoundError, FileExistsError) as exc:
        _fail(str(exc))
    fresh = sum(not r.cached for r in result.runs)
    typer.echo(f"{len(result.runs)} chapter(s), {fresh} executed, {len(result.runs) - fresh} from cache; "
               f"{time.perf_counter() - start:.1f} s")
    typer.echo(f"HTML: {result.html / 'index.html'}")
    if result.pdf is not None:
        typer.echo(f"PDF: {result.pdf}")


@app.command("new")
def new_chapter(
    entry: str = typer.Argument(..., metavar="PART/NAME", help="Where the chapter goes: book/<PART>/<NAME>.ipynb."),
    question: str = typer.Argument(..., help='The question the chapter answers, e.g. "How sharply are V1 neurons tuned?"'),
    title: Optional[str] = typer.Option(None, "--title", help="The chapter's title (default: from NAME)."),
    root: Optional[Path] = RootOption,
) -> None:
    """Start a chapter of your own: its notebook (book conventions) and its _toc.yml line."""
    from v1nb.book.new import new_chapter as create

    try:
        created = create(root or find_root(), entry, question, title=title)
    except (ChapterError, FileExistsError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {created.notebook}")
    typer.echo(f"added `- file: {created.toc_entry}` to {created.toc} (part {created.part!r})")
    typer.echo(f"run it: v1nb run {created.name} -p data twin:quick")


if __name__ == "__main__":
    app()

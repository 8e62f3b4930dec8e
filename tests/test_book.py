"""Building the book: profiles, staging, and a strict Jupyter Book build of a tiny book.

The tiny book (tests/data/tinybook) is rendered with the repository's own _config.yml,
references.bib and back-matter pages, so these tests also check that configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from v1nb.book.build import BookBuildError, PARAMETERS_MARKER, build_book, chapter_overrides, parameters_markdown, stage
from v1nb.book.chapters import Chapter, ParameterError, book_chapters

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture
def chapter(book: Path) -> Chapter:
    return book_chapters(book)[0]


def test_quick_profile_switches_twin_data_only(chapter: Chapter) -> None:
    assert chapter_overrides(chapter, "default", {}) == {}
    assert chapter_overrides(chapter, "quick", {}) == {"data": "twin:quick"}
    # a book-wide override wins, and applies only to chapters that have the parameter
    assert chapter_overrides(chapter, "quick", {"data": "twin:default", "seed": "2"}) == {
        "data": "twin:default", "seed": "2"}
    assert chapter_overrides(chapter, "default", {"not_here": "1"}) == {}
    real = Chapter(chapter.name, chapter.path, chapter.title, {
        **chapter.parameters, "data": type(chapter.parameters["data"])("data", "../data/antolik", "real data")})
    assert chapter_overrides(real, "quick", {}) == {}
    with pytest.raises(ValueError, match="unknown profile 'large'"):
        chapter_overrides(chapter, "large", {})


def test_unknown_book_parameter_fails_before_running(book: Path) -> None:
    with pytest.raises(ParameterError, match="no chapter of the book has parameter\\(s\\) sed"):
        build_book(book, "quick", {"sed": 1}, progress=False)
    assert not (book / "runs").exists()


def test_no_execute_needs_cached_runs(book: Path) -> None:
    with pytest.raises(FileNotFoundError, match="chapter 'tiny' has no cached run"):
        build_book(book, "quick", execute=False, progress=False)


def test_parameters_table(chapter: Chapter) -> None:
    table = parameters_markdown([chapter])
    assert "**A tiny chapter** — `v1nb run tiny`" in table
    assert "| `scale` | `1.0` | float | multiplies the numbers |" in table
    assert "| `output_dir` | `'.'` | str | set by the runner to the run folder |" in table
    assert "no notebook chapters" in parameters_markdown([])


def test_repository_config_is_strict_and_offline() -> None:
    import yaml

    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["latex"]["use_jupyterbook_latex"] is False
    assert config["bibtex_bibfiles"] == ["references.bib"]
    for pattern in (".venv", ".pytest_cache", "_build", "runs", "**/.ipynb_checkpoints", "README.md", "tests",
                    "bench"):
        assert pattern in config["exclude_patterns"]
    assert PARAMETERS_MARKER in (REPO / "book" / "reproducibility.md").read_text()


def test_every_citation_in_the_book_is_in_references_bib() -> None:
    import re

    keys = set(re.findall(r"^@\w+\{([^,]+),", (REPO / "references.bib").read_text(), flags=re.M))
    import nbformat

    texts = [page.read_text() for page in (REPO / "book").rglob("*.md")]
    for notebook in (REPO / "book").rglob("*.ipynb"):
        texts += [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "markdown"]
    cited = set()
    for text in texts:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= keys, sorted(cited - keys)


def test_strict_build_renders_executed_chapters_with_glue(book: Path) -> None:
    result = build_book(book, "quick", progress=False, quiet=True)
    assert result.html == book / "_build" / "html"
    page = (result.html / "book" / "part" / "tiny.html").read_text()
    run = result.runs[0]
    assert not run.cached and run.parameters["data"] == "twin:quick"
    mean = json.loads((run.folder / "results.json").read_text())["values"]["mean"]
    assert f"The mean of the draws is {mean:.3f} on data twin:quick." in _text(page)
    assert "Stringer" in (result.html / "book" / "intro.html").read_text()  # citation resolved
    assert "multiplies the numbers" in (result.html / "book" / "reproducibility.html").read_text()
    assert (book / "_build" / "stage" / "book" / "part" / "figures" / "tiny" / "numbers.png").is_file()
    # the source notebook stays without outputs
    assert '"outputs": []' in (book / "book" / "part" / "tiny.ipynb").read_text()

    # second build: reused from the cache, and --no-execute works from the same runs
    again = build_book(book, "quick", execute=False, progress=False, quiet=True)
    assert again.runs[0].cached and again.runs[0].folder == run.folder


def test_a_warning_fails_the_build(book: Path) -> None:
    intro = book / "book" / "intro.md"
    intro.write_text(intro.read_text() + "\nA broken reference: {doc}`no_such_page`.\n")
    with pytest.raises(BookBuildError, match="warnings count as errors"):
        build_book(book, "quick", progress=False, quiet=True)


def test_stage_replaces_notebooks_with_executed_runs(book: Path, chapter: Chapter) -> None:
    from v1nb.book.runner import run_chapter

    run = run_chapter(chapter, {"data": "twin:quick"}, root=book)
    target = stage(book, [chapter], [run])
    assert (target / "_config.yml").is_file() and (target / "references.bib").is_file()
    import nbformat

    staged = nbformat.read(target / "book" / "part" / "tiny.ipynb", as_version=4)
    # the parameters once, with the values used (v1nb.book.staging.present_notebook)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in staged.cells)
    assert any(c.source.startswith('data = "twin:quick"') for c in staged.cells)
    assert any(c.get("outputs") for c in staged.cells)  # executed, unlike the source
    assert PARAMETERS_MARKER not in (target / "book" / "reproducibility.md").read_text()


def _text(html: str) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


# --- chapters in parallel (v1nb book --jobs) -------------------------------------------------


def _two_chapter_book(book: Path) -> list[Chapter]:
    import shutil

    shutil.copy(book / "book" / "part" / "tiny.ipynb", book / "book" / "part" / "tiny2.ipynb")
    toc = book / "_toc.yml"
    toc.write_text(toc.read_text().replace("      - file: book/part/tiny\n",
                                           "      - file: book/part/tiny\n      - file: book/part/tiny2\n"))
    return book_chapters(book)


def test_chapters_run_at_once_on_dask_and_a_failure_keeps_the_others(book: Path) -> None:
    import numpy as np

    from v1nb.book.executor import run_chapters
    from v1nb.book.runner import ChapterFailed

    chapters = _two_chapter_book(book)
    assert [c.name for c in chapters] == ["tiny", "tiny2"]
    with pytest.raises(ChapterFailed, match="chapter 'tiny2' failed in cell 3 .*asked to fail"):
        run_chapters(book, chapters, [{"n": 3}, {"fail": True}], jobs=2, progress=False)
    runs = run_chapters(book, chapters, [{"n": 3}, {"n": 4}], jobs=2, progress=False)
    assert runs[0].cached and not runs[1].cached  # the chapter that ran beside the failure was kept
    assert [r.chapter for r in runs] == ["tiny", "tiny2"]
    mean = float(np.random.default_rng(0).standard_normal(3).mean())
    assert runs[0].results["values"]["mean"] == pytest.approx(mean)


def test_the_longest_chapter_is_submitted_first(book: Path) -> None:
    from v1nb.book.executor import COLD_SECONDS, expected_seconds
    from v1nb.io import write_json

    write_json(book / "runs" / "tiny" / "a" / "run.json", {"wall_time_s": 3.0})
    write_json(book / "runs" / "tiny" / "b" / "run.json", {"wall_time_s": 7.5})
    assert expected_seconds(book, "tiny") == 7.5
    assert expected_seconds(book, "never_ran") == 0.0
    assert "models" in COLD_SECONDS and expected_seconds(book, "models") == float("inf")


def test_a_cold_build_starts_models_then_decoding_then_the_rest_in_book_order(book: Path) -> None:
    from v1nb.book.executor import COLD_SECONDS, start_order
    from v1nb.io import write_json

    assert sorted(COLD_SECONDS, key=COLD_SECONDS.get, reverse=True)[:2] == ["models", "decoding"]
    names = ["data", "decoding", "clustering", "models", "spatial"]
    # cold: models (the critical path), then decoding (the longest of the rest), then book order
    assert [names[i] for i in start_order(book, names)] == ["models", "decoding", "data", "clustering", "spatial"]
    # a measured history outranks book order, and the hints where it is longer
    write_json(book / "runs" / "spatial" / "a" / "run.json", {"wall_time_s": 90.0})
    assert [names[i] for i in start_order(book, names)] == ["models", "decoding", "spatial", "data", "clustering"]
    write_json(book / "runs" / "models" / "a" / "run.json", {"wall_time_s": 1114.0})  # decoding never ran
    assert [names[i] for i in start_order(book, names)] == ["models", "decoding", "spatial", "data", "clustering"]
    # with histories of their own, measured times decide
    write_json(book / "runs" / "decoding" / "a" / "run.json", {"wall_time_s": 10.0})
    write_json(book / "runs" / "models" / "b" / "run.json", {"wall_time_s": 5.0})
    (book / "runs" / "models" / "a" / "run.json").unlink()
    assert [names[i] for i in start_order(book, names)] == ["spatial", "decoding", "models", "data", "clustering"]


def test_a_parallel_build_nices_every_chapter_but_the_longest(book: Path, monkeypatch) -> None:
    from v1nb.book import executor
    from v1nb.book.executor import BACKGROUND_NICENESS, Outcome, run_chapters
    from v1nb.io import write_json

    chapters = _two_chapter_book(book)
    write_json(book / "runs" / "tiny2" / "old" / "run.json", {"wall_time_s": 50.0})  # tiny2 took longer before
    seen = []

    def record(tasks, client, **kwargs):
        seen.extend(tasks)
        return [Outcome(False, ename="Stop", evalue="recorded", message="recorded") for _ in tasks]

    monkeypatch.setattr(executor, "execute", record)
    monkeypatch.setattr(executor, "dask_client", lambda jobs: contextlib.nullcontext(None))
    with pytest.raises(Exception, match="recorded"):
        run_chapters(book, chapters, [{}, {}], jobs=2, progress=False)
    assert [(t.name, t.niceness) for t in seen] == [("tiny2", 0), ("tiny", BACKGROUND_NICENESS)]


def _sleep_task(task, env=None):
    """A stand-in for run_task in a Dask worker: sleeps ``task.label`` seconds, reports when it ended."""
    import time

    from v1nb.book.executor import Outcome

    time.sleep(float(task.label))
    return Outcome(True, wall_time=time.time())


def test_an_idle_worker_takes_the_next_task_instead_of_waiting_for_a_busy_one(monkeypatch) -> None:
    from v1nb.book import executor
    from v1nb.book.executor import Task, dask_client, execute

    monkeypatch.setattr(executor, "run_task", _sleep_task)
    monkeypatch.setattr(executor, "POLL_SECONDS", 0.2)  # looks for new workers while the long task runs, too
    # one long task, then short ones: dealt out alternately at submission, task 2 would wait for
    # task 0 on the first worker while the second worker ran out of work
    tasks = [Task(Path("x.ipynb"), f"t{i}", {}, Path("."), Path("."), label=str(d))
             for i, d in enumerate([3.0, 0.2, 0.2, 0.2, 0.2])]
    with dask_client(2) as client:
        ended = [o.wall_time for o in execute(tasks, client, progress=False)]
    assert all(end < ended[0] for end in ended[1:]), ended  # all four short ones on the free worker


def test_one_task_per_worker_whatever_its_threads() -> None:
    from v1nb.book.executor import task_slots

    class Client:  # a SLURM cluster of two jobs of 4 cores: two workers of 4 threads each
        def nthreads(self):
            return {"tcp://a:1": 4, "tcp://b:1": 4}

    assert task_slots(Client()) == 2


def test_jobs_is_the_build_s_share_of_the_cores(book: Path, monkeypatch) -> None:
    from v1nb.book import executor, runner
    from v1nb.book.executor import Outcome, run_chapters

    chapters = _two_chapter_book(book)
    monkeypatch.setattr(executor, "available_cores", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("V1NB_CORES", raising=False)
    seen = []

    def record(chapter, parameters, folder, root):  # what a chapter's kernel would inherit
        seen.append((os.environ.get("OMP_NUM_THREADS"), os.environ.get("V1NB_CORES")))
        raise RuntimeError("recorded")

    monkeypatch.setattr(runner, "run_chapter", record)
    with pytest.raises(RuntimeError, match="recorded"):
        run_chapters(book, chapters, [{}, {}], jobs=1, progress=False)
    assert seen == [("1", "1")]  # --jobs 1 on 4 cores: one core, not one chapter that fits on all four
    assert os.environ["OMP_NUM_THREADS"] == "3" and "V1NB_CORES" not in os.environ  # restored after

    shares = []

    def record_share(tasks, client, **kwargs):
        shares.append(kwargs.get("threads"))
        return [Outcome(False, ename="Stop", evalue="recorded", message="recorded") for _ in tasks]

    monkeypatch.setattr(executor, "execute", record_share)
    monkeypatch.setattr(executor, "dask_client", lambda jobs: contextlib.nullcontext(None))
    for jobs in (2, 4, 8):
        with pytest.raises(Exception, match="recorded"):
            run_chapters(book, chapters, [{}, {}], jobs=jobs, progress=False)
    assert shares == [2, None, None]  # fewer jobs than cores: each chapter gets that many; else every core
    with pytest.raises(ValueError, match="jobs=0"):
        executor.core_share(0)


def test_lower_priority_only_ever_raises_the_niceness_and_a_kernel_s_autogroup_follows() -> None:
    import subprocess
    import sys

    autogroup = "int(open('/proc/self/autogroup').read().split('nice')[1]) if os.path.exists('/proc/self/autogroup') else -1"
    # the kernel stand-in: a process leading a session of its own that imports v1nb
    kernel = f"import os, v1nb; print(os.getpriority(os.PRIO_PROCESS, 0), {autogroup})"
    code = ("import os, subprocess, sys; from v1nb.book.executor import lower_priority; "
            "lower_priority(5); lower_priority(2); a = os.getpriority(os.PRIO_PROCESS, 0); "
            f"print(a, {autogroup}); "
            f"subprocess.run([sys.executable, '-c', {kernel!r}], start_new_session=True, check=True)")
    # in a session of its own too: the worker stand-in must leave its session's autogroup alone,
    # and this test's session (pytest's terminal) must not be touched at all
    # (bash leads that session, the worker stand-in is its child)
    out = subprocess.run(["bash", "-c", '"$0" -c "$1" </dev/null; exit $?', sys.executable, code],
                         capture_output=True, text=True, check=True, start_new_session=True).stdout.split()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    worker_nice, worker_group, kernel_nice, kernel_group = (int(x) for x in out)
    assert worker_nice == kernel_nice == max(5, base)
    if os.path.exists("/proc/self/autogroup"):
        assert worker_group == 0  # the worker does not lead its session
        assert kernel_group == 5  # the kernel's new session follows the niceness

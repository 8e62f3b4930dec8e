"""The chapter runner: parameters read from notebooks, validated, executed by papermill, cached.

Uses the tiny chapter in tests/data/tinybook (draws ``n`` normal numbers with ``seed``, scales
them, reports their mean; ``fail=True`` makes cell 3 raise).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from v1nb.book.chapters import Chapter, ChapterError, ParameterError, book_chapters, find_chapter, read_parameters
from v1nb.book.runner import ChapterFailed, cached_run, default_run_folder, parameters_hash, run_chapter




@pytest.fixture
def chapter(book: Path) -> Chapter:
    return Chapter.from_notebook(book / "book" / "part" / "tiny.ipynb")


def expected_mean(seed: int, n: int, scale: float) -> float:
    return float((scale * np.random.default_rng(seed).standard_normal(n)).mean())


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


# --- reading parameters ----------------------------------------------------------------------


def test_parameters_are_read_from_the_tagged_cell(chapter: Chapter) -> None:
    params = chapter.parameters
    assert list(params) == ["data", "seed", "n", "scale", "fail", "output_dir"]
    assert params["n"].default == 5 and params["n"].type is int
    assert params["scale"].default == 1.0 and params["scale"].type is float
    assert params["fail"].type is bool and params["data"].type is str
    assert params["n"].help == "how many numbers to draw"
    assert chapter.title == "A tiny chapter"


@pytest.mark.parametrize(
    "source, message",
    [
        ('data = "x"  # d\nseed = 0  # s\noutput_dir = "."  # o\nn = len("ab")  # bad', "literal default"),
        ('data = "x"  # d\nseed = 0  # s\noutput_dir = "."  # o\nimport os', "only `name = literal"),
        ('data = "x"  # d\noutput_dir = "."  # o', "lacks required parameter(s) seed"),
        ('data = "x"  # d\nseed = 0  # s\noutput_dir = "."  # o\nxs = [1, 2]  # list', "bool, int, float or str"),
    ],
)
def test_malformed_parameters_cells_are_rejected(source: str, message: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})]
    with pytest.raises(ChapterError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_parameters(nb, "x.ipynb")


def test_a_notebook_without_parameters_cell_is_rejected() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("seed = 0")]
    with pytest.raises(ChapterError, match="exactly one code cell tagged 'parameters', found 0"):
        read_parameters(nb, "x.ipynb")


# --- validation ------------------------------------------------------------------------------


def test_unknown_parameter_is_rejected_listing_valid_ones(chapter: Chapter) -> None:
    with pytest.raises(ParameterError) as info:
        chapter.resolve({"seeds": "1"})
    text = str(info.value)
    assert "no parameter 'seeds'" in text
    for line in ("seed        = 0", "n           = 5", "scale       = 1.0", "how many numbers to draw"):
        assert line in text


@pytest.mark.parametrize("name, value", [("n", "3.5"), ("n", "three"), ("scale", "big"), ("fail", "maybe"),
                                         ("n", 2.0), ("seed", True)])
def test_wrong_type_is_rejected(chapter: Chapter, name: str, value: object) -> None:
    with pytest.raises(ParameterError, match=f"parameter '{name}' expects") as info:
        chapter.resolve({name: value})
    assert "Valid parameters of chapter 'tiny'" in str(info.value)


def test_values_are_parsed_to_the_default_type(chapter: Chapter) -> None:
    values = chapter.resolve({"n": "3", "scale": "2", "fail": "no", "data": "twin:quick", "seed": 7})
    assert values == {"data": "twin:quick", "seed": 7, "n": 3, "scale": 2.0, "fail": False, "output_dir": "."}
    assert type(values["scale"]) is float
    assert chapter.resolve({"scale": 3})["scale"] == 3.0  # int accepted for float
    assert chapter.resolve({"fail": "True"})["fail"] is True


def test_validation_happens_before_execution(chapter: Chapter, tmp_path: Path, monkeypatch) -> None:
    import papermill

    def boom(*args, **kwargs):
        raise AssertionError("papermill must not run for invalid parameters")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    with pytest.raises(ParameterError):
        run_chapter(chapter, {"n": "x"}, out=tmp_path / "run")
    with pytest.raises(ParameterError):
        run_chapter(chapter, {"nope": "1"}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- the table of contents -------------------------------------------------------------------


def test_chapters_come_from_the_toc(book: Path) -> None:
    chapters = book_chapters(book)
    assert [c.name for c in chapters] == ["tiny"]
    assert find_chapter("tiny", book).path == book / "book" / "part" / "tiny.ipynb"
    assert find_chapter("book/part/tiny", book).name == "tiny"
    assert find_chapter(book / "book" / "part" / "tiny.ipynb").name == "tiny"
    with pytest.raises(ChapterError, match="the book's chapters are: tiny"):
        find_chapter("data", book)


def test_a_toc_entry_without_file_is_an_error(book: Path) -> None:
    toc = book / "_toc.yml"
    toc.write_text(toc.read_text().replace("book/part/tiny", "book/part/missing"))
    with pytest.raises(ChapterError, match="book/part/missing.ipynb nor book/part/missing.md"):
        book_chapters(book)


# --- execution -------------------------------------------------------------------------------


def test_run_executes_into_a_complete_run_folder(chapter: Chapter, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "tiny-run"
    result = run_chapter(chapter, {"n": "3", "scale": "2"}, out=out)
    assert not result.cached and result.folder == out.resolve()
    results = json.loads((out / "results.json").read_text())
    assert results["values"]["mean"] == pytest.approx(expected_mean(0, 3, 2.0))
    assert results["parameters"]["n"] == 3
    assert (out / "figures" / "numbers.png").stat().st_size > 0
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"] == {"data": "twin:default", "seed": 0, "n": 3, "scale": 2.0, "fail": False,
                                    "output_dir": record["parameters"]["output_dir"]}
    assert Path(chapter.path.parent, record["parameters"]["output_dir"]).resolve() == out.resolve()
    assert record["notebook_sha256"] == chapter.content_hash()
    assert record["versions"]["v1nb"] and record["wall_time_s"] > 0
    # the executed notebook shows where its run really is, not the temporary folder
    executed = nbformat.read(out / "tiny.ipynb", as_version=4)
    injected = [c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and ".tmp-" not in injected[0] and "n = 3" in injected[0]
    assert leftovers(tmp_path) == []


def test_cache_reuses_identical_runs_only(chapter: Chapter, book: Path) -> None:
    first = run_chapter(chapter, {"n": 2}, root=book)
    assert first.folder == default_run_folder(book, chapter, first.parameters).resolve()
    assert first.folder.parent == (book / "runs" / "tiny").resolve()
    created, first_sha = first.record["created"], first.record["notebook_sha256"]

    again = run_chapter(chapter, {"n": "2"}, root=book)  # same values, given as text
    assert again.cached and again.folder == first.folder and again.record["created"] == created

    other = run_chapter(chapter, {"n": 3}, root=book)
    assert not other.cached and other.folder != first.folder
    assert other.results["values"]["mean"] == pytest.approx(expected_mean(0, 3, 1.0))

    # editing a cell invalidates the cache; the run folder is replaced
    nb = nbformat.read(chapter.path, as_version=4)
    nb.cells[0].source += "\n\nEdited."
    nbformat.write(nb, chapter.path)
    edited = Chapter.from_notebook(chapter.path)
    assert cached_run(first.folder, edited, first.parameters) is None
    rerun = run_chapter(edited, {"n": 2}, root=book)
    assert not rerun.cached and rerun.folder == first.folder
    assert rerun.record["notebook_sha256"] == edited.content_hash() != first_sha


def test_a_folder_without_run_record_is_not_trusted(chapter: Chapter, tmp_path: Path) -> None:
    done = run_chapter(chapter, {"n": 2}, out=tmp_path / "run")
    params = done.parameters
    assert cached_run(tmp_path / "run", chapter, params) is not None
    (tmp_path / "run" / "run.json").unlink()
    assert cached_run(tmp_path / "run", chapter, params) is None
    # and it is not silently overwritten either: it might be someone's folder
    with pytest.raises(FileExistsError, match="not a v1nb run folder"):
        run_chapter(chapter, {"n": 2}, out=tmp_path / "run")


def test_failing_chapter_reports_cell_and_error_and_leaves_no_result(chapter: Chapter, book: Path) -> None:
    folder = default_run_folder(book, chapter, chapter.resolve({"fail": True}))
    with pytest.raises(ChapterFailed) as info:
        run_chapter(chapter, {"fail": "true"}, root=book)
    err = info.value
    assert (err.chapter, err.cell_index, err.first_line) == ("tiny", 3, "if fail:")
    assert (err.ename, err.evalue) == ("ValueError", "asked to fail")
    assert "chapter 'tiny' failed in cell 3 (`if fail:`): ValueError: asked to fail" in str(err)
    assert not folder.exists()
    assert err.notebook == folder.with_name(folder.name + ".failed.ipynb") and err.notebook.is_file()
    assert leftovers(book) == []


def test_interrupted_run_leaves_nothing_behind(chapter: Chapter, tmp_path: Path, monkeypatch) -> None:
    import papermill

    def interrupted(input_path, output_path, parameters, **kwargs):
        # a run that got as far as writing results, then was killed (Ctrl-C)
        out = Path(output_path).parent
        (out / "results.json").write_text('{"values": {"mean": 1.0}}')
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_chapter(chapter, {"n": 2}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert leftovers(tmp_path) == []


def test_output_dir_is_the_runners(chapter: Chapter, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="output_dir is set by the runner"):
        run_chapter(chapter, {"output_dir": "/elsewhere"}, out=tmp_path / "run")


def test_parameters_hash_ignores_output_dir() -> None:
    a = parameters_hash({"seed": 0, "output_dir": "a"})
    assert a == parameters_hash({"seed": 0, "output_dir": "b"}) != parameters_hash({"seed": 1, "output_dir": "a"})


# --- interrupted runs, input checks, the kernel's console noise (issue 14 items 7 and 9) ---------


def test_a_stale_temporary_folder_is_removed_by_the_next_run(chapter: Chapter, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess

    from v1nb.book.runner import OWNER

    out = tmp_path / "run"
    dead = _dead_pid()
    abandoned = tmp_path / ".run.tmp-killed"  # its owner, a run on this host, no longer exists
    abandoned.mkdir()
    (abandoned / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": dead}))
    (abandoned / "results.json").write_text("{}")
    unowned = tmp_path / ".run.tmp-old"  # left by a run that died before naming itself, long ago
    unowned.mkdir()
    os.utime(unowned, (0, 0))
    live = tmp_path / ".run.tmp-live"  # a run of the same folder still going (this process)
    live.mkdir()
    (live / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    other = tmp_path / ".other.tmp-x"  # another folder's: not this run's business
    other.mkdir()
    run_chapter(chapter, {"n": 2}, out=out)
    assert not abandoned.exists() and not unowned.exists()
    assert live.is_dir() and other.is_dir()
    assert not (out / OWNER).exists()  # the marker does not end up in the run folder


def _dead_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid  # reaped: no process has this id (until the kernel reuses it)


def _slow_copy(chapter: Chapter) -> None:
    """Make the analysis cell of the (copied) tiny chapter sleep, so a run can be interrupted."""
    nb = nbformat.read(chapter.path, as_version=4)
    nb.cells[3].source = "import time\ntime.sleep(120)\n" + nb.cells[3].source
    nbformat.write(nb, chapter.path)


def test_sigterm_to_v1nb_run_leaves_no_temporary_folder(chapter: Chapter, book: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    _slow_copy(chapter)
    out = tmp_path / "runs" / "slow"
    exe = Path(sys.executable).with_name("v1nb")
    proc = subprocess.Popen([str(exe), "run", "tiny", "--root", str(book), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        # wait until the kernel is executing (the partial notebook is written into the temporary folder)
        while time.time() < deadline and not list(out.parent.glob(".slow.tmp-*/tiny.ipynb")):
            time.sleep(0.2)
        assert list(out.parent.glob(".slow.tmp-*")), "the run never started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    time.sleep(1.0)  # the kernel (a child) must not re-create anything either
    assert leftovers(tmp_path) == [] and not out.exists()


def test_the_kernel_does_not_warn_about_tcp_on_the_console(book: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("v1nb")
    done = subprocess.run([str(exe), "run", "tiny", "--root", str(book), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "without encryption" not in done.stderr + done.stdout
    assert "tiny: ran in" in done.stdout


def test_failing_cell_right_after_the_parameters_is_numbered_in_the_source(chapter: Chapter, book: Path) -> None:
    nb = nbformat.read(chapter.path, as_version=4)
    assert "parameters" in nb.cells[1].metadata["tags"]
    nb.cells[2].source = 'if fail:\n    raise ValueError("early")\n' + nb.cells[2].source
    nbformat.write(nb, chapter.path)
    with pytest.raises(ChapterFailed) as info:
        run_chapter(Chapter.from_notebook(chapter.path), {"fail": True}, root=book)
    assert (info.value.cell_index, info.value.first_line, info.value.evalue) == (2, "if fail:", "early")


@pytest.mark.parametrize("data, message", [
    ("", "parameter 'data' is empty"),
    ("  ", "parameter 'data' is empty"),
    ("twin:huge", "unknown twin profile 'huge'; expected one of twin:quick"),
    ("no/such/recording.nc", "no such file or folder"),
])
def test_an_invalid_data_spec_is_rejected_before_the_kernel_starts(chapter: Chapter, tmp_path: Path, monkeypatch,
                                                                    data: str, message: str) -> None:
    import papermill

    def boom(*args, **kwargs):
        raise AssertionError("papermill must not run for an invalid data spec")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=message) as info:
        run_chapter(chapter, {"data": data}, out=tmp_path / "run")
    assert "chapter 'tiny'" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_a_folder_that_is_no_dataset_is_rejected(chapter: Chapter, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a recording")
    with pytest.raises(ParameterError, match="not a recognised dataset"):
        run_chapter(chapter, {"data": str(tmp_path / "notes")}, out=tmp_path / "run")


def test_the_run_cache_fingerprints_the_package_like_the_model_cache() -> None:
    import v1nb
    from v1nb.book.runner import package_hash
    from v1nb.fingerprint import package_fingerprint

    package = Path(v1nb.__file__).resolve().parent
    assert package_hash() == package_fingerprint([package], root=package.parent)


def test_papermill_false_alarms_about_parameters_are_dropped(caplog) -> None:
    import logging

    from papermill.log import logger

    from v1nb.book.runner import _quiet_papermill

    _quiet_papermill()
    with caplog.at_level("WARNING", logger="papermill"):
        logger.warning("Passed unknown parameter: data")
        logging.getLogger("papermill.translators").warning("Unable to parse line 1 'data = \"twin\"  # spec'.")
        logger.warning("Input notebook is missing")
    assert [r.getMessage() for r in caplog.records] == ["Input notebook is missing"]


def test_kernels_are_shut_down_without_jupyter_clients_interrupt(monkeypatch) -> None:
    """The runner's kernel manager skips the SIGINT jupyter_client sends before a shutdown request (it
    made idle kernels log "KeyboardInterrupt caught in kernel" on the console), and passes every other
    interrupt on."""
    import asyncio

    from jupyter_client import AsyncKernelManager

    from v1nb.book.runner import quiet_kernel_manager

    sent: list[str] = []

    async def record(self) -> None:
        sent.append("interrupt")

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", record)
    km = quiet_kernel_manager()(kernel_name="python3")
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())
    assert sent == []
    km.shutting_down = False
    asyncio.run(km._async_interrupt_kernel())
    assert sent == ["interrupt"]

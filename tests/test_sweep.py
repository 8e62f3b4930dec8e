"""``v1nb sweep``: a grid of cached runs of the tiny chapter on a Dask LocalCluster, into one table."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from v1nb.book.chapters import Chapter, ParameterError
from v1nb.book.cli import app
from v1nb.book.sweep import grid_points, parse_values, plan_sweep

cli = CliRunner()


def expected_mean(seed: int, n: int, scale: float) -> float:
    return float((scale * np.random.default_rng(seed).standard_normal(n)).mean())


@pytest.fixture
def chapter(book: Path) -> Chapter:
    """The tiny chapter, made to fail at the point n=3, scale=2 (and only there)."""
    path = book / "book" / "part" / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[3].source.startswith("if fail:")
    nb.cells[3].source = nb.cells[3].source.replace("if fail:", "if fail or (n == 3 and scale == 2.0):", 1)
    nbformat.write(nb, path)
    return Chapter.from_notebook(path)


def test_grid_is_the_product_or_the_pairing() -> None:
    assert grid_points({"n": ["2", "3"], "scale": ["1", "2"]}) == [
        {"n": "2", "scale": "1"}, {"n": "2", "scale": "2"}, {"n": "3", "scale": "1"}, {"n": "3", "scale": "2"}]
    assert grid_points({"n": ["2", "3"], "scale": ["1", "2"]}, zip_=True) == [
        {"n": "2", "scale": "1"}, {"n": "3", "scale": "2"}]
    with pytest.raises(ParameterError, match="equal lengths"):
        grid_points({"n": ["2", "3"], "scale": ["1"]}, zip_=True)
    with pytest.raises(ParameterError, match="appears twice"):
        grid_points({"n": ["2", "2"]})
    with pytest.raises(ParameterError, match="empty value in '2,,3'"):
        parse_values("n", "2,,3")


def test_two_spellings_of_one_point_are_refused(chapter: Chapter, book: Path) -> None:
    with pytest.raises(ParameterError, match="sweep points scale=1 and scale=1.0 are the same run"):
        plan_sweep(chapter, {"scale": ["1", "1.0"]}, root=book)


def test_every_point_is_validated_before_anything_runs(chapter: Chapter, book: Path) -> None:
    with pytest.raises(ParameterError, match="sweep point n=2, scale=x: chapter 'tiny': parameter 'scale' expects float"):
        plan_sweep(chapter, {"n": ["2", "3"], "scale": ["1", "x"]}, root=book)
    result = cli.invoke(app, ["sweep", "tiny", "--root", str(book), "-p", "n", "2,3", "-p", "data", "twin:quick,twin:huge"])
    assert result.exit_code == 1 and "unknown twin profile 'huge'" in result.output
    result = cli.invoke(app, ["sweep", "tiny", "--root", str(book), "-p", "output_dir", "a,b"])
    assert result.exit_code == 1 and "cannot be swept" in result.output
    assert not (book / "runs").exists() and not (book / "sweeps").exists()


def test_a_2x2_sweep_on_a_local_cluster_with_one_failing_point(chapter: Chapter, book: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "tiny", "--root", str(book), "-p", "n", "2,3", "-p", "scale", "1,2", "--out", str(out), "--jobs", "2"]
    result = cli.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "4 point(s), 4 executed, 0 from cache, 1 failed" in result.output, result.output
    assert "failed point n=3, scale=2: chapter 'tiny' failed in cell 3" in result.output
    assert "ValueError: asked to fail" in result.output

    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == ["n", "scale", "data_spec", "mean", "run_folder"]  # values as in results.json
    assert [tuple(r) for r in table[["n", "scale"]].itertuples(index=False)] == [(2, 1.0), (2, 2.0), (3, 1.0)]
    for row in table.itertuples(index=False):
        assert row.mean == pytest.approx(expected_mean(0, row.n, row.scale))
        assert json.loads((Path(row.run_folder) / "run.json").read_text())["parameters"]["n"] == row.n
    with xr.open_dataset(out / "table.nc", engine="h5netcdf") as ds:
        assert ds.sizes["point"] == 3 and set(ds.coords) >= {"n", "scale"}
        np.testing.assert_allclose(ds["mean"].values, table["mean"].values)
    failures = json.loads((out / "failures.json").read_text())
    assert len(failures) == 1
    assert failures[0]["parameters"] == {"n": "3", "scale": "2"}
    assert failures[0]["ename"] == "ValueError" and failures[0]["cell_index"] == 3
    assert "asked to fail" in failures[0]["error"]

    # the points that ran are cached: a re-run executes only the one without a complete run
    created = {row.run_folder: json.loads((Path(row.run_folder) / "run.json").read_text())["created"]
               for row in table.itertuples(index=False)}
    again = cli.invoke(app, args)
    assert again.exit_code == 1 and "4 point(s), 1 executed, 3 from cache, 1 failed" in again.output, again.output
    for folder, stamp in created.items():
        assert json.loads((Path(folder) / "run.json").read_text())["created"] == stamp
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv"), table)


def test_a_finished_sweep_starts_no_cluster(chapter: Chapter, book: Path, tmp_path: Path, monkeypatch) -> None:
    from v1nb.book import sweep

    args = ["sweep", "tiny", "--root", str(book), "-p", "n", "2", "-p", "scale", "1", "--out", str(tmp_path / "s")]
    first = cli.invoke(app, [*args, "--jobs", "1"])
    assert first.exit_code == 0, first.output
    assert "1 point(s), 1 executed, 0 from cache, 0 failed" in first.output, first.output

    def no_cluster(*a, **k):
        raise AssertionError("nothing to execute: no cluster")

    monkeypatch.setattr(sweep, "dask_client", no_cluster)
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 executed, 1 from cache" in again.output, again.output
    assert json.loads((tmp_path / "s" / "failures.json").read_text()) == []


def test_points_running_at_once_share_the_cores(chapter: Chapter, book: Path, tmp_path: Path, monkeypatch) -> None:
    from v1nb.book import sweep
    from v1nb.book.executor import Outcome, submitter_environment

    seen = {}

    def record(tasks, client, **kwargs):
        seen.update(kwargs, n=len(tasks))
        return [Outcome(False, ename="Stop", evalue="recorded", message="recorded") for _ in tasks]

    monkeypatch.setattr(sweep, "execute", record)
    monkeypatch.setattr(sweep, "dask_client", lambda *a: contextlib.nullcontext(None))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    sweep.run_sweep(chapter, {"n": ["2", "3"]}, root=book, jobs=2, out=tmp_path / "s", progress=False)
    assert seen["n"] == 2 and seen["threads"] == 2  # 4 cores, 2 points at once
    sweep.run_sweep(chapter, {"n": ["2", "3"]}, root=book, jobs=2, out=tmp_path / "s", progress=False,
                    scheduler="tcp://elsewhere:8786")
    assert seen["threads"] is None  # another cluster's machines: the submitter's settings

    env = submitter_environment(threads=1)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["V1NB_CORES"] == "1"
    with pytest.raises(ValueError, match="threads=0"):
        submitter_environment(threads=0)


def test_a_task_undoes_what_dask_s_nanny_sets_in_its_workers(monkeypatch) -> None:
    """The nanny's MALLOC_TRIM_THRESHOLD_ made every fit in a kernel page-fault (1.46x slower)."""
    import dask.config

    from v1nb.book.executor import apply_environment, nanny_variables, submitter_environment

    nanny = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert set(nanny) <= set(nanny_variables()) and "MALLOC_TRIM_THRESHOLD_" in nanny
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = submitter_environment()
    assert env["MALLOC_TRIM_THRESHOLD_"] is None and env["OMP_NUM_THREADS"] == "2"
    for name, value in nanny.items():  # what a worker process starts with
        monkeypatch.setenv(name, str(value))
    apply_environment(env)
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ and os.environ["OMP_NUM_THREADS"] == "2"


def test_starting_a_local_cluster_leaves_this_process_s_environment_alone(monkeypatch) -> None:
    """The nanny leaves its pre-spawn-environ in the starting process: kernels inherited it from there."""
    from v1nb.book.executor import apply_environment, dask_client, submitter_environment

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with dask_client(1) as client:
        assert "MALLOC_TRIM_THRESHOLD_" not in os.environ and "OMP_NUM_THREADS" not in os.environ
        env = submitter_environment()

        def in_worker(env):
            before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
            apply_environment(env)
            return before, os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")

        assert client.submit(in_worker, env).result() == ("65536", None, None)


FAKE_SBATCH = """#!/bin/bash
# sbatch stand-in: keep the job script (dask-jobqueue deletes it after submitting), run it in the
# background as its own process group, answer like SLURM does
set -e
id=$$  # unique while the job runs (jobs are submitted concurrently)
cp "$1" "$FAKE_SLURM/job-$id.sh"
setsid bash "$FAKE_SLURM/job-$id.sh" > "$FAKE_SLURM/job-$id.log" 2>&1 < /dev/null &
echo $! > "$FAKE_SLURM/job-$id.pid"
echo "Submitted batch job $id"
"""
FAKE_SCANCEL = """#!/bin/bash
# scancel stand-in: stop the job's process group, record that it was cancelled
for id in "$@"; do
    kill -TERM -- -"$(cat "$FAKE_SLURM/job-$id.pid")" 2>/dev/null || true
    touch "$FAKE_SLURM/job-$id.cancelled"
done
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch):
    """``sbatch`` / ``scancel`` on PATH that run the job scripts on this machine, and a jobqueue.yaml."""
    import sys

    import dask.config

    jobs = tmp_path / "slurm-jobs"
    bin_dir = tmp_path / "slurm-bin"
    config = tmp_path / "dask-config"
    for folder in (jobs, bin_dir, config):
        folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    # the configuration a lab would write in ~/.config/dask/jobqueue.yaml (book/reproducibility.md)
    (config / "jobqueue.yaml").write_text(
        "jobqueue:\n  slurm:\n    cores: 1\n    processes: 1\n    memory: 2GB\n    walltime: '00:10:00'\n"
        f"    python: {sys.executable}\n    local-directory: {tmp_path / 'worker-space'}\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(jobs))
    # what a new process with the file in ~/.config/dask/ (or $DASK_CONFIG) reads at start-up
    dask.config.refresh(paths=[*dask.config.paths, str(config)])
    yield jobs
    monkeypatch.undo()
    dask.config.refresh()
    for pid in jobs.glob("*.pid"):  # a job the sweep failed to cancel must not outlive the test
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid.read_text()), signal.SIGKILL)


@pytest.mark.slow
def test_a_sweep_on_slurm_submits_jobs_from_the_jobqueue_configuration(book: Path, tmp_path: Path, fake_slurm) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "tiny", "--root", str(book), "-p", "n", "2,3", "--cluster", "slurm", "--jobs", "2",
            "--out", str(out)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output + "".join(p.read_text() for p in fake_slurm.glob("*.log"))
    assert "2 point(s), 2 executed, 0 from cache, 0 failed" in result.output, result.output
    scripts = sorted(fake_slurm.glob("job-*.sh"))
    assert len(scripts) == 2  # one SLURM job per worker
    for script in scripts:
        text = script.read_text()
        assert "#SBATCH" in text and "--mem=" in text and "-t 00:10:00" in text and "dask_worker" in text
        assert (fake_slurm / (script.stem + ".cancelled")).exists()  # the sweep gave its jobs back
    table = pd.read_csv(out / "table.csv")
    assert sorted(table["n"]) == [2, 3]
    for row in table.itertuples(index=False):
        assert row.mean == pytest.approx(expected_mean(0, row.n, 1.0))


def test_a_failing_sbatch_stops_the_slurm_cluster_at_once(tmp_path: Path, fake_slurm) -> None:
    """dask-jobqueue only logs a failing sbatch; dask_client raises it, naming the configuration."""
    from v1nb.book.executor import dask_client

    (tmp_path / "slurm-bin" / "sbatch").write_text("#!/bin/bash\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    with pytest.raises(RuntimeError, match="submitting 2 SLURM job.*invalid partition.*jobqueue"):
        with dask_client(2, cluster="slurm"):
            pytest.fail("the client must not start without workers")
    assert not list(fake_slurm.glob("job-*.sh"))  # nothing ran

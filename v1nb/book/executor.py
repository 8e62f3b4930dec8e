"""Many chapter runs at once, on Dask: the points of a sweep, the chapters of a book.

Each task is one ordinary :func:`v1nb.book.runner.run_chapter` call executed in a Dask worker
process, so it has the same run folder, the same cache and the same atomic write as ``v1nb run``.
The work itself happens in the chapter's Jupyter kernel, a child process of the worker; a worker
therefore needs one thread, and the cluster one worker per chapter run that should proceed at
the same time.

Where the workers come from
---------------------------
``local`` (default)
    :class:`distributed.LocalCluster`: ``jobs`` worker processes with one thread each.
``scheduler="tcp://host:8786"``
    An existing Dask cluster (its workers must see the book root, the run folders and the data at
    the same paths, and run the same environment).
``cluster="slurm"``
    :class:`dask_jobqueue.SLURMCluster`, configured by the usual jobqueue configuration
    (``~/.config/dask/jobqueue.yaml``, section ``jobqueue: slurm:``), scaled to ``jobs`` workers.

Environment, threads and cores
------------------------------
Dask's nanny sets ``OMP_NUM_THREADS=1`` (and the MKL/OpenBLAS equivalents) and
``MALLOC_TRIM_THRESHOLD_=65536`` in every worker it starts (``distributed.nanny.pre-spawn-environ``).
Both are right for a worker that computes in its own threads and wrong for the kernel it starts
here: with that trim threshold glibc hands freed memory back to the system after every large
``free``, and a network's training steps, which allocate and free the same activations each
batch, page-fault it back in: measured on the 2-core AMD EPYC box, two fits side by side took
1.46x as long (51.3 s against 35.1 s, 21 s of system time against 4 s). Every task therefore
restores the submitter's value of each of these variables (:func:`submitter_environment`),
unless the caller gives it a share of the machine:

* a **sweep** on a local cluster runs ``jobs`` points at once, so each point gets
  ``cores // jobs`` threads and as many cores for its own worker processes (``V1NB_CORES``, read
  by :func:`v1nb.machine.available_cores`): points that each used every core would only slow
  each other down. A point's numbers can then differ in the last digits from a ``v1nb run`` with
  more threads (the order of floating-point sums), never more.
* a parallel **book** build keeps every chapter's threads and runs the longest chapter (the
  critical path) at normal priority and the others *niced* (:data:`BACKGROUND_NICENESS`): they
  take the cores that chapter leaves idle instead of slowing it, and the numbers are those of
  ``v1nb run``.
* a book built with fewer ``jobs`` than there are cores (``v1nb book --jobs 1`` on a shared lab
  machine) is confined to that many: each chapter gets ``jobs`` threads and as many cores for its
  own worker processes (:func:`core_share`), the same share as a sweep's point.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from v1nb.machine import available_cores

#: Variables that decide how many threads a kernel's numerical libraries use (Dask's nanny sets
#: them to 1 in its workers).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: v1nb's own environment variables (model cache, real-data folder) travel with every task too.
V1NB_PREFIX = "V1NB_"
CLUSTERS = ("local", "slurm")
#: Niceness of the chapters a parallel book build runs beside its longest one (Linux scheduler
#: weight 36 against 1,024 at niceness 0: about 3 % of a core while the longest chapter wants it).
BACKGROUND_NICENESS = 15


def default_jobs() -> int:
    """Chapters to run at once by default: the cores this process may use."""
    return available_cores()


def nanny_variables() -> list[str]:
    """The variables Dask's nanny sets in the workers it starts, and :data:`THREAD_VARIABLES`.

    Read from the Dask configuration (``distributed.nanny.pre-spawn-environ`` and
    ``distributed.nanny.environ``), so a lab's own settings there are undone for kernels too.
    """
    import dask.config
    import distributed  # noqa: F401  (its configuration defaults load with it)

    names = list(THREAD_VARIABLES)
    for key in ("distributed.nanny.pre-spawn-environ", "distributed.nanny.environ"):
        names += [name for name in (dask.config.get(key, default={}) or {}) if name not in names]
    return names


def submitter_environment(threads: int | None = None) -> dict[str, str | None]:
    """The thread and ``V1NB_*`` variables of this process (``None``: unset), for the workers.

    Parameters
    ----------
    threads : int, optional
        A share of the machine per task instead: this many threads for the numerical libraries
        and as many cores for the task's own worker processes (``V1NB_CORES``).

    Returns
    -------
    dict
        Every variable of :func:`nanny_variables` and every ``V1NB_*`` variable.
    """
    from v1nb.machine import CORES_VARIABLE

    env: dict[str, str | None] = {name: os.environ.get(name) for name in nanny_variables()}
    env.update({k: v for k, v in os.environ.items() if k.startswith(V1NB_PREFIX)})
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be at least 1")
        env.update({name: str(threads) for name in THREAD_VARIABLES})
        env[CORES_VARIABLE] = str(threads)
    return env


@dataclass(frozen=True)
class Task:
    """One chapter run to execute.

    Attributes
    ----------
    notebook : Path
        The chapter's source notebook.
    name : str
        The chapter's name.
    parameters : dict
        Validated parameter values (without ``output_dir``).
    folder : Path
        The run folder.
    root : Path
        The book root.
    label : str
        How progress and errors name the task (e.g. ``"n=2, scale=1.0"``).
    niceness : int
        Run at (at least) this Unix niceness, 0 = normal priority (:data:`BACKGROUND_NICENESS`).
    """

    notebook: Path
    name: str
    parameters: dict[str, Any]
    folder: Path
    root: Path
    label: str = ""
    niceness: int = 0


@dataclass(frozen=True)
class Outcome:
    """What became of a :class:`Task`: a run folder, or the error that stopped it.

    ``cell_index``, ``first_line`` and ``notebook`` are those of
    :class:`v1nb.book.runner.ChapterFailed` when the chapter itself raised.
    """

    ok: bool
    folder: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    wall_time: float = 0.0
    ename: str = ""
    evalue: str = ""
    message: str = ""
    cell_index: int | None = None
    first_line: str = ""
    notebook: Path | None = None


def run_task(task: Task, env: Mapping[str, str | None] | None = None) -> Outcome:
    """Execute one task (in a Dask worker, or in this process); never raises for a failed run.

    A failing run must not take the others down and its error must reach the submitter intact,
    so every exception is turned into an :class:`Outcome` here, where it happened.
    """
    from v1nb.book.chapters import Chapter
    from v1nb.book.runner import ChapterFailed, run_chapter

    apply_environment(env or {})
    if task.niceness:
        lower_priority(task.niceness)
    try:
        chapter = Chapter.from_notebook(task.notebook, task.name)
        result = run_chapter(chapter, task.parameters, task.folder, root=task.root)
    except ChapterFailed as exc:
        return Outcome(False, ename=exc.ename, evalue=exc.evalue, message=str(exc), cell_index=exc.cell_index,
                       first_line=exc.first_line, notebook=exc.notebook)
    except Exception as exc:  # a broken notebook, a full disk: reported with the task, not lost
        return Outcome(False, ename=type(exc).__name__, evalue=str(exc), message=f"{type(exc).__name__}: {exc}")
    return Outcome(True, result.folder, result.parameters, result.cached, result.wall_time)


def apply_environment(env: Mapping[str, str | None]) -> None:
    """Set (or, for ``None``, unset) these variables in this process, for the kernels it starts."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def environment(env: Mapping[str, str | None]) -> Iterator[None]:
    """Apply these variables (:func:`apply_environment`) for the block, then restore the previous values."""
    previous = {name: os.environ.get(name) for name in env}
    apply_environment(env)
    try:
        yield
    finally:
        apply_environment(previous)


def core_share(jobs: int) -> int | None:
    """The cores each chapter of a book built with ``jobs`` may use; ``None``: every core.

    ``--jobs N`` is the build's share of the machine. With at least as many jobs as this process
    has cores (:func:`v1nb.machine.available_cores`, the default) each chapter keeps the shell's
    thread settings and every core; with fewer, each chapter is confined to ``jobs`` threads and as
    many worker processes, so ``v1nb book --jobs 1`` runs on one core rather than one chapter at a
    time that still fits on every core.
    """
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be at least 1")
    return jobs if jobs < available_cores() else None


def lower_priority(niceness: int) -> None:
    """Make this process, and every process it starts from now on, at least this nice.

    Sets ``V1NB_NICENESS`` and applies it (:func:`v1nb.machine.follow_niceness`); a chapter's
    kernel, in a session of its own, applies it again to its scheduler autogroup when it imports
    :mod:`v1nb`. Niceness only ever goes up: lowering it needs privileges a user does not have,
    and a worker that ran a background chapter has no task left that needs normal priority.
    """
    from v1nb.machine import NICENESS_VARIABLE, follow_niceness

    current = int(os.environ.get(NICENESS_VARIABLE, "0") or 0)
    os.environ[NICENESS_VARIABLE] = str(min(max(niceness, current), 19))
    follow_niceness()


#: Dask settings of the local cluster. Its tasks are a few long chapter runs, each waiting on a
#: kernel, so the statistical profiler, the 1 ms GIL monitor, a 20 ms event-loop tick and work
#: stealing buy nothing, and on 2 cores they cost: two idle workers and the scheduler took 17 %
#: of a core with Dask's defaults, 2.7 % with these (AMD EPYC, measured with psutil over 20 s).
QUIET_LOCAL_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "200ms",
    "distributed.scheduler.work-stealing": False,
}


def submit_slurm_jobs(slurm: Any, jobs: int) -> None:
    """Submit ``jobs`` SLURM jobs of a dask-jobqueue cluster now, and fail if ``sbatch`` fails.

    ``SLURMCluster.scale`` submits in the background and only logs a failing ``sbatch`` (a wrong
    partition or account, no SLURM on this machine), so a sweep would wait for workers that never
    come. Here the same worker specs are added and the cluster's own start-up step is awaited, so
    the first failure is raised, with the command's message, before any point is sent.
    """
    while len(slurm.worker_spec) < jobs:  # what SpecCluster.scale does, without its fire-and-forget
        slurm.worker_spec.update(slurm.new_worker_spec())
    try:
        slurm.sync(slurm._correct_state_internal)
    except Exception as exc:
        from distributed.core import Status

        # the jobs that were never submitted never started: say so, or closing the cluster (which
        # cancels the ones that were) asserts that every worker it created has been started
        for worker in list(getattr(slurm, "_created", ())):
            if worker.status == Status.created:
                worker.status = Status.failed
        said = " ".join(str(exc).split())  # sbatch's multi-line report on one line
        raise RuntimeError(f"--cluster slurm: submitting {jobs} SLURM job(s) failed ({said}); check the "
                           "jobqueue configuration (~/.config/dask/jobqueue.yaml: queue, account, memory, "
                           "walltime) and that sbatch works on this machine") from exc


@contextlib.contextmanager
def dask_client(jobs: int | None = None, scheduler: str | None = None, cluster: str = "local") -> Iterator[Any]:
    """A :class:`distributed.Client` on a local, existing or SLURM cluster; closed afterwards.

    Parameters
    ----------
    jobs : int, optional
        Worker processes to start (``local``, ``slurm``); default :func:`default_jobs`.
    scheduler : str, optional
        Address of a running scheduler; ``jobs`` and ``cluster`` are then not used.
    cluster : {"local", "slurm"}
    """
    from distributed import Client

    if cluster not in CLUSTERS:
        raise ValueError(f"unknown cluster {cluster!r}; expected one of {', '.join(CLUSTERS)}")
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if cluster == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise RuntimeError("--cluster slurm needs dask-jobqueue (pip install dask-jobqueue)") from exc
        with SLURMCluster() as slurm:  # cores, memory, queue, ...: from the jobqueue configuration
            submit_slurm_jobs(slurm, jobs)
            with Client(slurm) as client:
                yield client
        return
    import dask.config
    from distributed import LocalCluster

    # processes, one thread each: the kernel does the work. No dashboard (no port to clash over),
    # no memory limit (the nanny would measure the worker, not the kernel that holds the data),
    # and none of the bookkeeping meant for many short tasks (QUIET_LOCAL_CLUSTER).
    #
    # The nanny applies its pre-spawn-environ to this process's environment to spawn a worker and
    # leaves it there: undo that here, or this process (and every kernel started from a worker
    # with this process's settings) would run with one thread and the page-faulting malloc.
    kept = {name: os.environ.get(name) for name in nanny_variables()}
    with dask.config.set(QUIET_LOCAL_CLUSTER), LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
            # without a dashboard the scheduler still serves its health routes, by default on port 8787:
            # a free port instead, so that two builds (or sweeps) at once do not warn about the clash
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            memory_limit=0) as local, Client(local) as client:
        apply_environment(kept)
        yield client


def execute(tasks: Sequence[Task], client: Any, *, progress: bool = True, desc: str = "runs",
            threads: int | None = None) -> list[Outcome]:
    """Run ``tasks`` on ``client``'s cluster, started in the given order; outcomes in that order.

    A task is handed to the cluster only when a worker is free for it (:func:`task_slots`), so
    whichever worker finishes first takes the next task in the queue. Submitting all of them at once
    would not: the scheduler assigns each task to a worker the moment it arrives (tasks of different
    names are not "root-ish", so it does not queue them) and, with work stealing off, it stays there.
    On 2 workers a book's chapters were thus dealt out alternately: in a cold Part IV build on the
    Zen 1 one worker finished its share at 1,529 s while n_clusters waited behind dec_tradeoff on the
    other until 1,762 s. (That build did not get faster from this, since dec_tradeoff's fits had kept
    both cores busy; tasks that each use one worker's share do, e.g. a sweep's points of different
    lengths.)

    A tqdm bar counts finished tasks on the console. ``threads``: each task's share of the
    machine (:func:`submitter_environment`); default the submitter's own settings.
    """
    from distributed import wait
    from tqdm.auto import tqdm

    env = submitter_environment(threads)
    queue = collections.deque(range(len(tasks)))  # task indices, first to start on the left
    running: dict[Any, int] = {}  # future -> task index
    outcomes: list[Outcome | None] = [None] * len(tasks)
    failed = 0
    with tqdm(total=len(tasks), desc=desc, unit="run", disable=not progress or not tasks) as bar:
        while queue or running:
            # at least one in flight: on a cluster whose workers are still starting, it waits there
            while queue and (not running or len(running) < task_slots(client)):
                i = queue.popleft()
                future = client.submit(run_task, tasks[i], env, pure=False,
                                       key=f"v1nb-{tasks[i].name}-{i}-{os.getpid()}")
                running[future] = i
            try:  # with tasks queued, look again now and then for workers that joined since
                done, _ = wait(list(running), timeout=POLL_SECONDS if queue else None, return_when="FIRST_COMPLETED")
            except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on
                continue
            for future in done:
                i = running.pop(future)
                try:
                    outcomes[i] = future.result()
                except Exception as exc:  # the worker died (killed, out of memory): the task is lost, not the rest
                    outcomes[i] = Outcome(False, ename=type(exc).__name__, evalue=str(exc),
                                          message=f"the Dask worker running it failed: {type(exc).__name__}: {exc}")
                failed += not outcomes[i].ok
                bar.set_postfix_str(f"{tasks[i].label or tasks[i].name}" + (f", {failed} failed" if failed else ""))
                bar.update()
    return [o for o in outcomes if o is not None]


#: Seconds between looks for new workers while tasks wait for one (a SLURM cluster's workers join as
#: their jobs start).
POLL_SECONDS = 5.0


def task_slots(client: Any) -> int:
    """How many tasks may be in flight: the workers connected to ``client``'s scheduler now.

    One task per worker, whatever its threads: the task's kernel does the work, with the cores of
    the worker's machine or job (a SLURM job's worker has a thread per core of the job; a LocalCluster
    here, one thread per worker).
    """
    return len(client.nthreads())


def execute_locally(tasks: Sequence[Task], *, progress: bool = True, desc: str = "runs") -> list[Outcome]:
    """The same as :func:`execute`, one task after another in this process (no Dask)."""
    from tqdm.auto import tqdm

    outcomes = []
    with tqdm(total=len(tasks), desc=desc, unit="run", disable=not progress or not tasks) as bar:
        for task in tasks:
            bar.set_postfix_str(task.label or task.name)
            outcomes.append(run_task(task))
            bar.update()
    return outcomes



#: Expected seconds of the longest chapters where no earlier run of theirs gives a duration (a cold
#: build). The models chapter fits every network and is the critical path: it ranks above everything.
#: Decoding is the longest of the others (159 s cold on the Zen 1, bench/results/book.json, as measured
#: there): started second, it runs in the idle time the models chapter leaves instead of after it (on
#: the Zen 1 the cold Parts I-III had ended with a 264 s tail of Part II chapters, decoding in it).
COLD_SECONDS = {"models": float("inf"), "decoding": 159.0}


def expected_seconds(root: str | os.PathLike, chapter_name: str) -> float:
    """How long a chapter took before: the longest ``wall_time_s`` of its runs under ``<root>/runs``.

    Unknown (no run yet) is 0, except for the chapters of :data:`COLD_SECONDS` (the models chapter:
    infinite, so it ranks above every chapter with a history).
    """
    import json

    times = []
    for record in Path(root, "runs", chapter_name).glob("*/run.json"):
        try:
            times.append(float(json.loads(record.read_text()).get("wall_time_s", 0.0)))
        except (OSError, ValueError, TypeError):
            continue
    if times:
        return max(times)
    return COLD_SECONDS.get(chapter_name, 0.0)


def start_order(root: str | os.PathLike, names: Sequence[str]) -> list[int]:
    """Indices of ``names`` in the order a parallel build starts them: longest expected first
    (:func:`expected_seconds`), ties in the given (book) order.

    A history outranks the decoding hint only where it is longer, so a models chapter that ran before
    still starts before a decoding chapter that never did."""
    return sorted(range(len(names)), key=lambda i: -expected_seconds(root, names[i]))


def run_chapters(
    root: str | os.PathLike,
    chapters: Sequence[Any],
    overrides: Sequence[Mapping[str, Any]],
    *,
    jobs: int | None = None,
    progress: bool = True,
) -> list[Any]:
    """Execute (or reuse) chapters of a book; with ``jobs > 1``, at once on a local Dask cluster.

    Parameters
    ----------
    root : path
        The book root (run folders in ``<root>/runs``).
    chapters : sequence of Chapter
    overrides : sequence of mappings
        Each chapter's parameter values (validated for every chapter before anything runs).
    jobs : int, optional
        The cores the build uses (default :func:`default_jobs`: every core): chapters executing at
        the same time, and, where that is fewer than the cores, each chapter's threads and worker
        processes too (:func:`core_share`). Chapters with a complete cached run are reused
        without starting a cluster; the rest are submitted longest first
        (:func:`expected_seconds`), so the longest chapter never waits for a free worker at the
        end, and every chapter but the longest runs niced (:data:`BACKGROUND_NICENESS`), so that
        it uses the cores the longest leaves idle rather than slowing it down. Independent chapters only: chapters that fit the same model rely on the model
        cache's lock, which makes the second wait for the first fit and reuse it.
    progress : bool
        A progress bar over chapters.

    Returns
    -------
    list of RunResult
        In the order of ``chapters``.

    Raises
    ------
    ParameterError
        Before anything runs. ``ChapterFailed`` once the other chapters have finished (their runs
        are kept in the cache), for the first failing chapter in book order; the message names
        the other failures.
    """
    from tqdm.auto import tqdm

    from v1nb.book.runner import ChapterFailed, RunResult, cached_run, default_run_folder, resolve_parameters, run_chapter

    root = Path(root).resolve()
    resolved = [resolve_parameters(c, o) for c, o in zip(chapters, overrides)]
    for params in resolved:
        params.pop("output_dir", None)
    folders = [default_run_folder(root, c, p).resolve() for c, p in zip(chapters, resolved)]
    runs: list[Any] = [cached_run(f, c, p) for f, c, p in zip(folders, chapters, resolved)]
    todo = [i for i, run in enumerate(runs) if run is None]
    jobs = default_jobs() if jobs is None else jobs
    share = core_share(jobs)
    if jobs <= 1 or len(todo) <= 1:  # one after another in book order, in this process
        # the kernels inherit this process's environment: confined to the share while they run
        with environment(submitter_environment(share) if share else {}), \
                tqdm(total=len(chapters), desc="chapters", unit="chapter", disable=not progress or not chapters) as bar:
            for i, chapter in enumerate(chapters):
                bar.set_postfix_str(chapter.name)
                if runs[i] is None:
                    runs[i] = run_chapter(chapter, resolved[i], folders[i], root=root)
                bar.update()
        return runs

    order = [todo[j] for j in start_order(root, [chapters[i].name for i in todo])]
    # the longest chapter is the build's critical path: it keeps normal priority (and fits with every
    # core, e.g. the models chapter's fit_many); the rest fill what it leaves idle
    tasks = [Task(chapters[i].path.resolve(), chapters[i].name, resolved[i], folders[i], root, chapters[i].name,
                  niceness=0 if rank == 0 else BACKGROUND_NICENESS)
             for rank, i in enumerate(order)]
    with dask_client(min(jobs, len(tasks))) as client:
        outcomes = execute(tasks, client, progress=progress, desc="chapters", threads=share)
    failed = []
    for i, outcome in zip(order, outcomes):
        if outcome.ok and outcome.folder is not None:
            runs[i] = RunResult(chapters[i].name, outcome.folder, outcome.parameters, outcome.cached, outcome.wall_time)
        else:
            failed.append((i, outcome))
    if failed:
        failed.sort(key=lambda item: item[0])
        i, first = failed[0]
        others = "".join(f"\n(also failed: chapter {chapters[j].name!r}: {o.message})" for j, o in failed[1:])
        raise ChapterFailed(chapters[i].name, first.ename, first.evalue + others, first.cell_index, first.first_line,
                            first.notebook)
    return runs

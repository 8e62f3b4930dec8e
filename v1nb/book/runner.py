"""Executing one chapter: parameters in, a complete run folder out (or nothing).

A run folder holds::

    <chapter>.ipynb   the executed notebook (papermill, kernel ``python3``)
    results.json      the chapter's numbers, written by its :class:`v1nb.book.report.Report`
    figures/*.png     the chapter's figures
    run.json          written last by the runner: parameters, notebook hash, versions, wall time

The chapter executes in a temporary folder beside the target, which is renamed into place only
after ``results.json`` and ``run.json`` exist (:func:`v1nb.io.atomic_dir`). A run folder therefore
either is complete or does not exist, and ``run.json`` is the marker that a cache lookup trusts.

The default run folder is ``<book root>/runs/<chapter>/<hash of parameters>/``; a run is reused
when its notebook content, parameters and package versions (including a hash of the ``v1nb``
sources) all match.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import nbformat

from v1nb.book.chapters import Chapter, ParameterError
from v1nb.io import atomic_dir, atomic_path, write_json
from v1nb.machine import machine
from v1nb.provenance import provenance, versions

#: Kernel every chapter runs on (the one in the environment running ``v1nb``).
KERNEL = "python3"
#: Per-cell timeout in seconds: generous, model fitting cells on 2 CPU cores can take minutes.
CELL_TIMEOUT = 3600
RUN_RECORD = "run.json"
RESULTS = "results.json"
#: Hidden file in a run's temporary folder naming the process that writes it ({"host", "pid"}).
OWNER = ".v1nb-owner"
#: A temporary folder without an owner we can check is left alone for this long (seconds).
STALE_AFTER_S = {"unowned": 60.0, "other_host": 48 * 3600.0}
#: Tag of the markdown cells papermill adds to a failed notebook (``papermill.execute.ERROR_MARKER_TAG``).
_PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


class ChapterFailed(RuntimeError):
    """A chapter raised while executing.

    Attributes
    ----------
    chapter : str
    cell_index : int | None
        0-based index of the failing cell in the chapter's source notebook.
    first_line : str
        The first line of the failing cell's source.
    ename, evalue : str
        The exception's type name and message.
    notebook : Path | None
        The partly executed notebook, kept for inspection (not a trusted result).
    """

    def __init__(self, chapter: str, ename: str, evalue: str, cell_index: int | None = None,
                 first_line: str = "", notebook: Path | None = None):
        self.chapter, self.ename, self.evalue = chapter, ename, evalue
        self.cell_index, self.first_line, self.notebook = cell_index, first_line, notebook
        where = f" in cell {cell_index} (`{first_line}`)" if cell_index is not None else ""
        kept = f"\nPartly executed notebook: {notebook}" if notebook else ""
        super().__init__(f"chapter {chapter!r} failed{where}: {ename}: {evalue}{kept}")


@dataclass(frozen=True)
class RunResult:
    """A completed run.

    Attributes
    ----------
    chapter : str
    folder : Path
        The run folder.
    parameters : dict
        All parameter values the chapter ran with.
    cached : bool
        True if an earlier identical run was reused instead of executing.
    wall_time : float
        Seconds the execution took (of the original run when cached).
    """

    chapter: str
    folder: Path
    parameters: dict[str, Any]
    cached: bool
    wall_time: float

    @property
    def notebook(self) -> Path:
        return self.folder / f"{self.chapter}.ipynb"

    @property
    def results(self) -> dict[str, Any]:
        return json.loads((self.folder / RESULTS).read_text())

    @property
    def record(self) -> dict[str, Any]:
        return json.loads((self.folder / RUN_RECORD).read_text())


@functools.lru_cache(maxsize=1)
def package_hash() -> str:
    """Fingerprint of the ``v1nb`` package's code: any code change invalidates cached runs.

    Stricter than comparing the version number, which does not change while the code is being
    worked on. The same fingerprint as the model cache's (:func:`v1nb.fingerprint.package_fingerprint`:
    syntax trees without docstrings), so an edit to prose or comments alone re-runs nothing.
    Computed once per process, so one ``v1nb book`` compares all chapters against the same sources.
    """
    from v1nb.fingerprint import package_fingerprint

    package = Path(__file__).resolve().parent.parent  # v1nb/, not only v1nb/book/
    return package_fingerprint([package], root=package.parent)


def parameters_hash(parameters: Mapping[str, Any]) -> str:
    """Short hash naming a run folder; ``output_dir`` is excluded (it is where, not what)."""
    key = {k: v for k, v in parameters.items() if k != "output_dir"}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def default_run_folder(root: str | os.PathLike, chapter: Chapter, parameters: Mapping[str, Any]) -> Path:
    """``<root>/runs/<chapter>/<parameters hash>``."""
    return Path(root) / "runs" / chapter.name / parameters_hash(parameters)


def resolve_parameters(chapter: Chapter, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validated parameters; a ``data`` value naming an existing relative path is made absolute.

    The notebook executes in its own folder, so a path the user typed relative to where they ran
    ``v1nb`` would otherwise point elsewhere. The ``data`` spec is checked here too
    (:func:`check_data_spec`), so a typo stops before a kernel starts.

    Raises
    ------
    ParameterError
        Unknown parameter, a value of the wrong type, or an unusable ``data`` spec.
    """
    overrides = dict(overrides or {})
    data = overrides.get("data")
    if isinstance(data, str) and data.strip() and not data.startswith("twin") and Path(data).exists():
        overrides["data"] = str(Path(data).resolve())
    values = chapter.resolve(overrides)
    if isinstance(values.get("data"), str):
        try:
            check_data_spec(values["data"])
        except ParameterError as exc:
            raise ParameterError(f"chapter {chapter.name!r}: {exc}") from None
    return values


def check_data_spec(spec: str) -> None:
    """Reject a ``data`` value that :func:`v1nb.data.open_dataset` cannot open, without opening it.

    Checks what is cheap: the spec is not empty (``Path("")`` would silently mean the current
    folder), a ``twin:<profile>`` names a known profile, and a path exists (from the current
    folder or the repository root, as ``open_dataset`` looks) and is a recognised format. A
    corrupt file is still found only when the chapter reads it.

    Raises
    ------
    ParameterError
        Naming the parameter, the value and what was expected.
    """
    expected = '"twin" or "twin:<profile>", a NetCDF file in the v1nb schema, or a real-data path'
    if not spec.strip():
        raise ParameterError(f"parameter 'data' is empty; expected {expected}")
    if spec == "twin" or spec.startswith("twin:"):
        from v1nb.data.digital_twin.config import PROFILES

        profile = spec.partition(":")[2] or "default"
        if profile not in PROFILES:
            raise ParameterError(
                f"parameter 'data' = {spec!r}: unknown twin profile {profile!r}; "
                f"expected one of {', '.join('twin:' + p for p in PROFILES)}"
            )
        return
    from v1nb.data import formats
    from v1nb.data.open import _resolve  # the same lookup open_dataset does (cwd, then repo root)

    try:
        formats.detect(_resolve(spec))
    except (FileNotFoundError, formats.UnrecognisedFormatError) as exc:
        raise ParameterError(f"parameter 'data' = {spec!r}: {exc}\n(expected {expected})") from None


def cached_run(folder: str | os.PathLike, chapter: Chapter, parameters: Mapping[str, Any]) -> RunResult | None:
    """The run in ``folder`` if it is complete and matches this chapter, parameters and versions."""
    folder = Path(folder)
    try:
        record = json.loads((folder / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    key = _cache_key(chapter, parameters)
    if any(record.get(k) != v for k, v in key.items()):
        return None
    if not (folder / RESULTS).is_file() or not (folder / f"{chapter.name}.ipynb").is_file():
        return None
    return RunResult(chapter.name, folder, record["parameters"], True, record.get("wall_time_s", 0.0))


def run_chapter(
    chapter: Chapter,
    overrides: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    *,
    root: str | os.PathLike | None = None,
    reuse: bool = True,
    timeout: int = CELL_TIMEOUT,
    progress: bool = False,
) -> RunResult:
    """Execute ``chapter`` with papermill into a run folder (or reuse an identical earlier run).

    Parameters
    ----------
    chapter : Chapter
    overrides : mapping, optional
        Parameter values (command-line strings or Python values), validated against the chapter's
        parameters cell before anything executes. ``output_dir`` is always the run folder.
    out : path, optional
        The run folder. Default ``<root>/runs/<chapter>/<parameters hash>``.
    root : path, optional
        The book root (default: the notebook's folder, used only for the default run folder).
    reuse : bool
        Return an existing complete run with the same notebook, parameters and versions.
    timeout : int
        Per-cell timeout in seconds.
    progress : bool
        Show papermill's progress bar over cells.

    Raises
    ------
    ParameterError
        Unknown parameter or wrong type (nothing is executed).
    ChapterFailed
        The notebook raised; the partly executed notebook is kept beside the run folder as
        ``<folder>.failed.ipynb`` and no run folder is created.
    """
    import papermill as pm

    _quiet_papermill()
    if overrides and "output_dir" in overrides:
        raise ValueError("output_dir is set by the runner; choose the run folder with `out`")
    parameters = resolve_parameters(chapter, overrides)
    folder = Path(out) if out is not None else default_run_folder(root or chapter.path.parent, chapter, parameters)
    folder = folder.resolve()
    _check_replaceable(folder)
    remove_stale_temporaries(folder)
    if reuse and (hit := cached_run(folder, chapter, parameters)) is not None:
        return hit

    cwd = chapter.path.parent.resolve()
    failed_copy = folder.with_name(folder.name + ".failed.ipynb")
    start = time.perf_counter()
    with atomic_dir(folder) as tmp:
        # so that a later run can tell this folder from one an interrupted run left behind
        (tmp / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        executed = tmp / f"{chapter.name}.ipynb"
        run_params = {**parameters, "output_dir": _shown_path(tmp, cwd)}
        try:
            pm.execute_notebook(
                str(chapter.path), str(executed), parameters=run_params, kernel_name=KERNEL,
                cwd=str(cwd), execution_timeout=timeout, progress_bar=progress, log_output=False,
                kernel_manager_class=quiet_kernel_manager(),
            )
        except Exception as exc:
            if executed.exists():
                os.replace(executed, failed_copy)
            raise _failure(chapter, exc, failed_copy if failed_copy.exists() else None) from exc
        wall = time.perf_counter() - start
        if not (tmp / RESULTS).is_file():
            raise ChapterFailed(chapter.name, "MissingResults",
                                f"the notebook wrote no {RESULTS}; does it end with report.save()?")
        parameters["output_dir"] = _shown_path(folder, cwd)
        _relocate(tmp, executed, run_params["output_dir"], parameters["output_dir"])
        write_json(tmp / RUN_RECORD, provenance(
            chapter=chapter.name, notebook=str(chapter.path.resolve()), parameters=parameters,
            wall_time_s=round(wall, 3), machine=machine(), **_cache_key(chapter, parameters),
        ))
        (tmp / OWNER).unlink()
    failed_copy.unlink(missing_ok=True)
    return RunResult(chapter.name, folder, parameters, False, wall)


class _NoUnknownParameterWarning(logging.Filter):
    """Drops papermill's "Passed unknown parameter" and "Unable to parse line" warnings.

    papermill infers a notebook's parameters with its own regular expressions and warns about any
    line it cannot parse and any name it did not find; some valid lines (a help comment holding
    quotes and colons) defeat it. The runner has already read the parameters cell with :mod:`ast`
    and checked every name against it, so here those warnings are only ever false alarms.
    """

    PREFIXES = ("Passed unknown parameter", "Unable to parse line")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def _quiet_papermill() -> None:
    # a logger's filters do not see its children's records: each logger that warns gets one
    for name in ("papermill", "papermill.translators"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoUnknownParameterWarning) for f in log.filters):
            log.addFilter(_NoUnknownParameterWarning())


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the hidden ``.<name>.tmp-*`` / ``.<name>.old-*`` folders that interrupted runs of
    ``folder`` left beside it; return what was removed.

    A run killed hard (SIGKILL, a power cut) cannot clean up after itself, so the next run of the
    same folder does. A temporary folder still in use by a live run (two processes running the
    same point) is kept: it is removed only when its owner (``.v1nb-owner``: host and process id)
    is a process that no longer exists on this host, when it has no owner and is older than a
    minute, or when its owner is on another host (a cluster's shared disk) and it is older than
    two days.
    """
    folder = Path(folder)
    removed = []
    if not folder.parent.is_dir():
        return removed
    for pattern in (f".{folder.name}.tmp-*", f".{folder.name}.old-*"):
        for tmp in folder.parent.glob(pattern):
            if tmp.is_dir() and _abandoned(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    return removed


def _abandoned(tmp: Path) -> bool:
    try:
        age = time.time() - tmp.stat().st_mtime
        owner = json.loads((tmp / OWNER).read_text())
        host, pid = owner["host"], int(owner["pid"])
    except FileNotFoundError:
        return not tmp.exists() or age > STALE_AFTER_S["unowned"]
    except (OSError, ValueError, KeyError, TypeError):
        return age > STALE_AFTER_S["unowned"]
    if host != socket.gethostname():
        return age > STALE_AFTER_S["other_host"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


@functools.lru_cache(maxsize=1)
def quiet_kernel_manager() -> type:
    """The kernel manager class the runner starts kernels with.

    ipykernel warns "Kernel is running over TCP without encryption" on every start of a kernel
    whose sockets are plain TCP, which floods the console of ``v1nb book`` and ``v1nb sweep``.
    Rather than hide the warning, give it nothing to warn about: provision CurveZMQ keys
    (jupyter_client's ``transport_encryption="auto"``) when jupyter_client, libzmq and the
    kernelspec support it, otherwise use local IPC sockets instead of TCP. Kernels are shut down
    without jupyter_client's interrupt (see ``_async_interrupt_kernel``).
    """
    import zmq
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            if self.has_trait("transport_encryption") and zmq.has("curve") and self._curve_ok():
                self.transport_encryption = "auto"
            else:
                from jupyter_core.paths import jupyter_runtime_dir

                runtime = Path(jupyter_runtime_dir())
                runtime.mkdir(parents=True, exist_ok=True)
                self.transport = "ipc"
                self.ip = str(runtime / f"v1nb-kernel-{os.getpid()}-{id(self):x}")

        def _curve_ok(self) -> bool:
            try:
                return bool(self._kernel_supports_curve_encryption())
            except Exception:  # an older jupyter_client without the check
                return False

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client sends SIGINT to every kernel it shuts down, before the shutdown request;
            # a kernel that is just answering a late message then prints "[IPKernelApp] ERROR |
            # KeyboardInterrupt caught in kernel" on the console (one in three chapters of a book
            # build). The runner shuts a kernel down only after its last cell, and a kernel that is
            # still busy then gets SIGTERM and SIGKILL (``shutdown_wait_time``), so the interrupt
            # adds nothing there. Interrupts outside a shutdown (a cell's timeout) go through.
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

    return QuietKernelManager


def _cache_key(chapter: Chapter, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "notebook_sha256": chapter.content_hash(),
        "parameters_key": {k: v for k, v in parameters.items() if k != "output_dir"},
        "package_sha256": package_hash(),
        "versions": versions(),
    }


def _shown_path(path: Path, cwd: Path) -> str:
    """``path`` relative to the notebook's folder when they share a tree (portable in the book)."""
    if os.path.commonpath([path, cwd]) != os.sep:
        return os.path.relpath(path, cwd)
    return str(path)


def _relocate(tmp: Path, executed: Path, tmp_shown: str, final_shown: str) -> None:
    """Point the executed notebook's injected ``output_dir`` and results.json at the final folder."""
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = cell.source.replace(tmp_shown, final_shown)  # the temp name is unique
    with atomic_path(executed) as path:
        nbformat.write(nb, path)
    results = json.loads((tmp / RESULTS).read_text())
    if isinstance(results.get("parameters"), dict) and "output_dir" in results["parameters"]:
        results["parameters"]["output_dir"] = final_shown
        write_json(tmp / RESULTS, results)


def _check_replaceable(folder: Path) -> None:
    # A run folder is replaced wholesale; never do that to a folder that is not one.
    if folder.is_file() or (folder.is_dir() and any(folder.iterdir()) and not (folder / RUN_RECORD).is_file()):
        raise FileExistsError(f"refusing to write a run into {folder}: it exists and is not a v1nb run folder")


def _failure(chapter: Chapter, exc: Exception, notebook: Path | None) -> ChapterFailed:
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(exc, PapermillExecutionError):
        return ChapterFailed(chapter.name, type(exc).__name__, str(exc), notebook=notebook)
    index = exc.cell_index  # in the executed notebook, before papermill added its error cells
    if notebook is not None:
        # The executed notebook has papermill's "injected-parameters" cell, and the failed copy
        # also its error banner (at the top) and anchor (before the failing cell): leave those
        # out to find the injected cell's index, then map back to the source notebook's index.
        cells = [c for c in nbformat.read(notebook, as_version=4).cells
                 if _PAPERMILL_ERROR_TAG not in c.metadata.get("tags", [])]
        injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
        if injected and index > injected[0]:
            index -= 1
    first = next((line for line in exc.source.splitlines() if line.strip()), "")
    return ChapterFailed(chapter.name, exc.ename, exc.evalue, index, first, notebook)

"""Parameter sweeps: one chapter over a grid of parameter values, on Dask, into one table.

``v1nb sweep CHAPTER -p NAME V1,V2,... [-p ...]`` runs every combination of the lists (their
product; ``--zip`` pairs them instead) as ordinary cached runs (:mod:`v1nb.book.runner`): each
point lands in its own ``runs/<chapter>/<hash>/`` folder, so re-running a sweep executes only the
points that have no complete run yet, and a point run by hand with ``v1nb run`` counts too.

Every point is validated before anything executes. A point that fails is reported with its
parameters and error, and the others go on. The sweep folder (``--out``) then holds

``table.csv``
    one row per successful point: the swept parameters, then every scalar value the chapter
    recorded in its ``results.json`` (a value named like a swept parameter becomes
    ``result.<name>``), then ``run_folder``;
``table.nc``
    the same as an xarray Dataset along dimension ``point``, the parameters as coordinates;
``failures.json``
    ``[{"point", "parameters", "error", "ename", "evalue", "cell_index", "notebook"}]``
    (an empty list when every point succeeded).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from v1nb.book.chapters import Chapter, ParameterError
from v1nb.book.executor import Outcome, Task, dask_client, default_jobs, execute
from v1nb.book.runner import RESULTS, cached_run, default_run_folder, resolve_parameters
from v1nb.io import atomic_path, write_json
from v1nb.machine import available_cores

TABLE_CSV = "table.csv"
TABLE_NC = "table.nc"
FAILURES = "failures.json"


def parse_values(name: str, text: str) -> list[str]:
    """Split a command-line list ``"V1,V2,..."``; an empty item is an error naming ``name``."""
    values = [v.strip() for v in text.split(",")]
    if any(not v for v in values):
        raise ParameterError(f"sweep parameter {name!r}: empty value in {text!r}; expected V1,V2,... without blanks")
    return values


def grid_points(grid: Mapping[str, Sequence[Any]], zip_: bool = False) -> list[dict[str, Any]]:
    """The points of a sweep: the product of the value lists, or (``zip_``) their pairing.

    Examples
    --------
    >>> grid_points({"a": [1, 2], "b": ["x", "y"]})
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    >>> grid_points({"a": [1, 2], "b": ["x", "y"]}, zip_=True)
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    if not grid:
        raise ParameterError("a sweep needs at least one -p NAME V1,V2,...")
    names = list(grid)
    lists = [list(grid[n]) for n in names]
    for name, values in zip(names, lists):
        if not values:
            raise ParameterError(f"sweep parameter {name!r} has no values")
    if zip_:
        lengths = {n: len(v) for n, v in zip(names, lists)}
        if len(set(lengths.values())) > 1:
            raise ParameterError(f"--zip pairs the lists, so they must have equal lengths; got {lengths}")
        combos = zip(*lists)
    else:
        combos = itertools.product(*lists)
    points = [dict(zip(names, combo)) for combo in combos]
    seen = set()
    for point in points:
        key = json.dumps(point, sort_keys=True, default=str)
        if key in seen:
            raise ParameterError(f"sweep point {_label(point)} appears twice; remove the repeated value")
        seen.add(key)
    return points


@dataclass(frozen=True)
class SweepPoint:
    """A validated point: what was given, what the chapter runs with, and where its run lives."""

    given: dict[str, Any]
    parameters: dict[str, Any]
    folder: Path

    @property
    def label(self) -> str:
        return _label(self.given)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced.

    Attributes
    ----------
    out : Path
        The sweep folder (``table.csv``, ``table.nc``, ``failures.json``).
    points : list[SweepPoint]
    outcomes : list[Outcome]
        In the order of ``points``.
    executed, cached : int
        Points run now, and points whose complete run already existed.
    """

    out: Path
    points: list[SweepPoint]
    outcomes: list[Outcome]
    executed: int
    cached: int

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [_failure_record(i, p, o) for i, (p, o) in enumerate(zip(self.points, self.outcomes)) if not o.ok]

    @property
    def table(self):
        import pandas as pd

        return pd.read_csv(self.out / TABLE_CSV)


def plan_sweep(chapter: Chapter, grid: Mapping[str, Sequence[Any]], *, zip_: bool = False,
               root: str | os.PathLike) -> list[SweepPoint]:
    """Validate every point of the grid (as ``v1nb run`` would) before anything executes.

    Raises
    ------
    ParameterError
        For the first invalid point, naming its parameters; ``output_dir`` cannot be swept.
    """
    if "output_dir" in grid:
        raise ParameterError("output_dir is set by the runner for each point; it cannot be swept")
    points = []
    for given in grid_points(grid, zip_):
        try:
            parameters = resolve_parameters(chapter, given)
        except ParameterError as exc:
            raise ParameterError(f"sweep point {_label(given)}: {exc}") from None
        parameters.pop("output_dir", None)
        point = SweepPoint(given, parameters, default_run_folder(root, chapter, parameters).resolve())
        same = next((p for p in points if p.folder == point.folder), None)
        if same is not None:  # e.g. seed 1 and 01: one run, which two workers must not write at once
            raise ParameterError(f"sweep points {same.label} and {point.label} are the same run; remove one value")
        points.append(point)
    return points


def default_sweep_folder(root: str | os.PathLike, chapter: Chapter, points: Sequence[SweepPoint]) -> Path:
    """``<root>/sweeps/<chapter>-<hash of the points>``."""
    key = json.dumps([p.parameters for p in points], sort_keys=True, default=str)
    return Path(root) / "sweeps" / f"{chapter.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def run_sweep(
    chapter: Chapter,
    grid: Mapping[str, Sequence[Any]],
    *,
    root: str | os.PathLike,
    zip_: bool = False,
    out: str | os.PathLike | None = None,
    client: Any = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    cluster: str = "local",
    progress: bool = True,
) -> SweepResult:
    """Run a chapter over a parameter grid on Dask and write the sweep's table.

    Parameters
    ----------
    chapter : Chapter
    grid : mapping of str to sequence
        Parameter name → values (command-line strings or Python values).
    root : path
        The book root (run folders go to ``<root>/runs/``).
    zip_ : bool
        Pair the lists instead of taking their product.
    out : path, optional
        The sweep folder; default :func:`default_sweep_folder`.
    client : distributed.Client, optional
        Use this client; else one is made by :func:`v1nb.book.executor.dask_client` from
        ``jobs``, ``scheduler`` and ``cluster`` (only if some point has to execute).
    progress : bool
        A progress bar over points on the console.

    Raises
    ------
    ParameterError
        An invalid point (nothing executes); ``FileExistsError`` if ``out`` is a file.
    """
    root = Path(root).resolve()
    points = plan_sweep(chapter, grid, zip_=zip_, root=root)
    out = Path(out).resolve() if out is not None else default_sweep_folder(root, chapter, points)
    if out.is_file():
        raise FileExistsError(f"sweep folder {out} is a file")

    outcomes: list[Outcome | None] = []
    todo: list[int] = []
    for i, point in enumerate(points):
        hit = cached_run(point.folder, chapter, point.parameters)
        if hit is not None:  # cheap to check here, and no cluster is started for a finished sweep
            outcomes.append(Outcome(True, hit.folder, hit.parameters, True, hit.wall_time))
        else:
            outcomes.append(None)
            todo.append(i)
    if todo:
        tasks = [Task(chapter.path.resolve(), chapter.name, points[i].parameters, points[i].folder, root,
                      points[i].label) for i in todo]
        if client is not None:
            done = execute(tasks, client, progress=progress, desc=f"sweep {chapter.name}")
        else:
            wanted = jobs or (default_jobs() if cluster == "local" else len(tasks))
            workers = min(wanted, len(tasks))
            # on this machine, the points running at once share its cores; on a cluster each
            # worker has its own machine (or allocation) and keeps the submitter's settings
            share = max(1, available_cores() // workers) if cluster == "local" and not scheduler else None
            with dask_client(workers, scheduler, cluster) as own:
                done = execute(tasks, own, progress=progress, desc=f"sweep {chapter.name}", threads=share)
        for i, outcome in zip(todo, done):
            outcomes[i] = outcome
    result = SweepResult(out, points, [o for o in outcomes if o is not None], len(todo), len(points) - len(todo))
    write_tables(result)
    return result


def write_tables(result: SweepResult) -> None:
    """Write ``table.csv``, ``table.nc`` and ``failures.json`` into ``result.out`` (atomically)."""
    import pandas as pd

    result.out.mkdir(parents=True, exist_ok=True)
    swept = list(result.points[0].given) if result.points else []
    rows = []
    for point, outcome in zip(result.points, result.outcomes):
        if not outcome.ok or outcome.folder is None:
            continue
        values = json.loads((outcome.folder / RESULTS).read_text()).get("values", {})
        row: dict[str, Any] = {name: point.parameters[name] for name in swept}
        for name, value in values.items():
            if value is None or isinstance(value, (bool, int, float, str)):  # scalars only
                row[f"result.{name}" if name in swept else name] = value
        row["run_folder"] = str(outcome.folder)
        rows.append(row)
    table = pd.DataFrame(rows)
    if rows:  # parameters, then values in first-seen order, then the run folder
        table = table[[*swept, *[c for c in table.columns if c not in swept and c != "run_folder"], "run_folder"]]
    with atomic_path(result.out / TABLE_CSV) as tmp:
        table.to_csv(tmp, index=False)
    dataset = _to_dataset(table, swept)
    with atomic_path(result.out / TABLE_NC) as tmp:
        dataset.to_netcdf(tmp, engine="h5netcdf")
    write_json(result.out / FAILURES, result.failures)


def _to_dataset(table, swept: list[str]):
    import numpy as np
    import xarray as xr

    table = table.rename_axis("point").reset_index(drop=True).rename_axis("point")
    data = {}
    for column in table.columns:
        values = table[column]
        if values.dtype.kind in "biuf":
            data[column] = ("point", values.to_numpy())
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            data[column] = ("point", values.to_numpy(dtype=bool))
        else:  # text, or a column mixing types: NetCDF stores it as strings
            data[column] = ("point", np.array(["" if v is None or v != v else str(v) for v in values], dtype=object))
    ds = xr.Dataset(data, coords={"point": np.arange(len(table))})
    ds = ds.set_coords([c for c in swept if c in ds])
    ds.attrs["description"] = "v1nb sweep: one entry per successful point (parameters as coordinates)"
    return ds


def _failure_record(index: int, point: SweepPoint, outcome: Outcome) -> dict[str, Any]:
    return {
        "point": index,
        "parameters": point.given,
        "error": outcome.message,
        "ename": outcome.ename,
        "evalue": outcome.evalue,
        "cell_index": outcome.cell_index,
        "notebook": str(outcome.notebook) if outcome.notebook else None,
    }


def _label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())

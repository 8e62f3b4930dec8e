"""The one dataset schema that every loader returns and every analysis reads.

A recording (real or simulated) is an :class:`xarray.Dataset` with these names. Students rely on
them; change them only with a deprecation path.

Dimensions
----------
``trial``   one presentation (a stimulus or a blank screen), in any order
``neuron``  one recorded cell
``image``   one unique stimulus (present even when the format ships no pixels, so that
            ``image_id`` still identifies repeats; then an ``image`` coordinate holds the ids)
``y, x``    image pixels (row, column)

Data variables
--------------
``responses`` (trial, neuron) float32
    The measured response of each neuron on each trial. NaN marks a missing value; infinity is
    never valid (here or in any other floating-point data variable) and is rejected by
    :func:`validate`, naming the variable, the count and the file.
``images`` (image, y, x) float32, optional
    The unique stimuli. Absent when the format ships no pixels.
``rates`` (trial, neuron) float32, twin only
    The noise-free expected response (ground truth), so noise ceilings are exact.

Trial coordinates
-----------------
``image_id`` int64
    Index into ``image``; :data:`BLANK` (−1) for a blank (gray) screen, :data:`UNKNOWN_IMAGE` (−2)
    for a stimulus whose pixels the format does not provide (e.g. Antolik training trials
    without ``training_inputs.npy``).
``tier`` str
    One of :data:`TIERS`: ``train`` (one presentation per image, for fitting), ``validation``
    (for early stopping / model selection), ``test`` (held-out images with repeats),
    ``spontaneous`` (blank screen).
``repeat`` int64
    Index of this presentation among the presentations of the same image in the same tier
    (0, 1, ...); −1 for blank or unknown-image trials.
``order`` int64, optional
    Presentation index in time (the time axis for adaptation); absent where unknown. −1 marks
    trials outside the timed sequence (e.g. a separately recorded spontaneous block).

Neuron coordinates
------------------
``cortical_x, cortical_y, cortical_z`` float64, optional
    Cell position in µm, where the format records it.
``true_type`` (str), ``true_orientation`` (radians in [0, π)), ``true_snr`` (float),
``true_rf_x``, ``true_rf_y`` (receptive-field centre in pixels, column / row), twin only
    Ground truth; further ``true_*`` coordinates may be added by the twin.

Image coordinates
-----------------
``category`` str, optional
    Category label of each image (e.g. its source photograph, or a Stringer class).

Attributes
----------
``source`` str
    What the data is (``"twin:default"``, ``"antolik2016:region1"``, a file path, ...).
``provenance`` str
    JSON: configuration, seed, source files, package versions, creation time.
``response_unit`` str, optional
    E.g. ``"spike count"``, ``"dF/F (%)"``, ``"a.u."``.
``trial_averaged`` int (0/1), optional
    1 when each response is already a mean over presentations (no single-trial noise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from v1nb.io import atomic_path

#: image_id of a blank-screen trial (spontaneous activity).
BLANK = -1
#: image_id of a trial whose stimulus pixels the format does not provide.
UNKNOWN_IMAGE = -2
#: The allowed values of the ``tier`` coordinate.
TIERS = ("train", "validation", "test", "spontaneous")
#: Trial coordinates every dataset has.
TRIAL_COORDS = ("image_id", "tier", "repeat")
#: Neuron coordinates for cortical position (optional, all or none).
POSITION_COORDS = ("cortical_x", "cortical_y", "cortical_z")


class SchemaError(ValueError):
    """A dataset does not follow the v1nb schema (the message lists every problem)."""


def build_dataset(
    responses: np.ndarray,
    *,
    image_id: np.ndarray,
    tier: np.ndarray | str,
    images: np.ndarray | None = None,
    repeat: np.ndarray | None = None,
    order: np.ndarray | None = None,
    neuron_coords: Mapping[str, np.ndarray] | None = None,
    image_coords: Mapping[str, np.ndarray] | None = None,
    data_vars: Mapping[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
    source: str,
    provenance: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble and validate a dataset in the v1nb schema.

    Parameters
    ----------
    responses : (trial, neuron) array
    image_id : (trial,) int array
        Index into ``images`` (or :data:`BLANK` / :data:`UNKNOWN_IMAGE`).
    tier : (trial,) str array or one str for all trials
    images : (image, y, x) array, optional
    repeat : (trial,) int array, optional
        Computed from ``image_id``, ``tier`` and ``order`` (or trial position) when omitted.
    order : (trial,) int array, optional
    neuron_coords, image_coords : mappings of name → 1-D array, optional
    data_vars : mapping of name → (dims, array), optional
        Further variables (e.g. ``rates``).
    source : str
    provenance : mapping, optional
        Stored as JSON in ``attrs["provenance"]``.
    attrs : mapping, optional
        Further attributes.

    Returns
    -------
    xarray.Dataset
        Validated with :func:`validate`.
    """
    responses = np.asarray(responses, dtype=np.float32)
    if responses.ndim != 2:
        raise SchemaError(f"responses must be 2-D (trial, neuron), got shape {responses.shape}")
    n_trials = responses.shape[0]
    image_id = np.asarray(image_id, dtype=np.int64).reshape(-1)
    tier_arr = np.full(n_trials, tier, dtype=object) if isinstance(tier, str) else np.asarray(tier, dtype=object)
    if repeat is None:
        repeat = repeat_index(image_id, tier_arr, order)
    coords: dict[str, Any] = {
        "trial": np.arange(n_trials),
        "neuron": np.arange(responses.shape[1]),
        "image_id": ("trial", image_id),
        "tier": ("trial", tier_arr.astype(str).astype(object)),
        "repeat": ("trial", np.asarray(repeat, dtype=np.int64)),
    }
    if order is not None:
        coords["order"] = ("trial", np.asarray(order, dtype=np.int64))
    for name, values in (neuron_coords or {}).items():
        values = np.asarray(values)
        coords[name] = ("neuron", values.astype(object) if values.dtype.kind in "US" else values)
    variables: dict[str, Any] = {"responses": (("trial", "neuron"), responses)}
    if images is not None:
        images = np.asarray(images, dtype=np.float32)
        variables["images"] = (("image", "y", "x"), images)
        coords["image"] = np.arange(images.shape[0])
    for name, values in (image_coords or {}).items():
        values = np.asarray(values)
        coords[name] = ("image", values.astype(object) if values.dtype.kind in "US" else values)
    for name, (dims, values) in (data_vars or {}).items():
        variables[name] = (dims, np.asarray(values))
    all_attrs = {"source": source, "provenance": json.dumps(dict(provenance or {}), sort_keys=True, default=str)}
    all_attrs.update(attrs or {})
    ds = xr.Dataset(variables, coords=coords, attrs=all_attrs)
    validate(ds)
    return ds


def repeat_index(image_id: np.ndarray, tier: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Number the presentations of each (tier, image) pair 0, 1, ... in presentation order.

    Trials without a known image (``image_id < 0``) get −1.
    """
    image_id = np.asarray(image_id)
    tier = np.asarray(tier, dtype=object)
    time = np.arange(len(image_id)) if order is None else np.asarray(order)
    repeat = np.full(len(image_id), -1, dtype=np.int64)
    counts: dict[tuple[str, int], int] = {}
    for t in np.argsort(time, kind="stable"):
        if image_id[t] < 0:
            continue
        key = (str(tier[t]), int(image_id[t]))
        repeat[t] = counts.get(key, 0)
        counts[key] = repeat[t] + 1
    return repeat


def validate(ds: xr.Dataset, where: str | os.PathLike | None = None) -> xr.Dataset:
    """Check ``ds`` against the schema and return it unchanged.

    Parameters
    ----------
    ds : xarray.Dataset
    where : str, optional
        The file or source the dataset came from, named in the error message.

    Raises
    ------
    SchemaError
        Listing every violation found (not just the first).
    """
    problems: list[str] = []
    if "responses" not in ds:
        problems.append("missing data variable 'responses' (trial, neuron)")
    elif ds["responses"].dims != ("trial", "neuron"):
        problems.append(f"'responses' must have dims ('trial', 'neuron'), has {ds['responses'].dims}")
    elif ds["responses"].dtype.kind != "f":
        problems.append(f"'responses' must be floating point, is {ds['responses'].dtype}")
    for name in TRIAL_COORDS:
        if name not in ds.coords:
            problems.append(f"missing trial coordinate {name!r}")
        elif ds[name].dims != ("trial",):
            problems.append(f"coordinate {name!r} must have dims ('trial',), has {ds[name].dims}")
    if "tier" in ds.coords:
        bad = sorted(set(map(str, np.unique(ds["tier"].values.astype(str)))) - set(TIERS))
        if bad:
            problems.append(f"tier values {bad} are not among {TIERS}")
    if "image_id" in ds.coords:
        ids = ds["image_id"].values
        if ids.dtype.kind not in "iu":
            problems.append(f"'image_id' must be integer, is {ids.dtype}")
        elif len(ids):
            n_images = ds.sizes.get("image")
            if ids.min() < UNKNOWN_IMAGE:
                problems.append(f"'image_id' has values below {UNKNOWN_IMAGE}: min {ids.min()}")
            if n_images is not None and ids.max() >= n_images:
                problems.append(f"'image_id' max {ids.max()} is out of range for {n_images} images")
            if n_images is None and ids.max() >= 0:
                problems.append("'image_id' refers to images but the dataset has no 'image' dimension")
            if "tier" in ds.coords:
                spont = ds["tier"].values.astype(str) == "spontaneous"
                if np.any(ids[spont] != BLANK):
                    problems.append("spontaneous trials must have image_id == -1 (blank screen)")
    if "images" in ds and ds["images"].dims != ("image", "y", "x"):
        problems.append(f"'images' must have dims ('image', 'y', 'x'), has {ds['images'].dims}")
    present = [c for c in POSITION_COORDS if c in ds.coords]
    if present and len(present) != len(POSITION_COORDS):
        problems.append(f"cortical position needs all of {POSITION_COORDS}, found only {present}")
    for name in present:
        if ds[name].dims != ("neuron",):
            problems.append(f"coordinate {name!r} must have dims ('neuron',), has {ds[name].dims}")
    if "rates" in ds and ds["rates"].dims != ("trial", "neuron"):
        problems.append(f"'rates' must have dims ('trial', 'neuron'), has {ds['rates'].dims}")
    problems.extend(_infinity_problems(ds))
    if "category" in ds.coords and ds["category"].dims != ("image",):
        problems.append(f"'category' must have dims ('image',), has {ds['category'].dims}")
    for name in ("source", "provenance"):
        if name not in ds.attrs:
            problems.append(f"missing attribute {name!r}")
    if problems:
        where = where or ds.attrs.get("source")
        origin = f" ({where})" if where else ""
        raise SchemaError(f"dataset{origin} does not follow the v1nb schema:\n  - " + "\n  - ".join(problems))
    return ds


def _infinity_problems(ds: xr.Dataset) -> list[str]:
    """One message per floating-point data variable holding ±inf (count, and where the first is).

    NaN stays allowed (a missing value); an infinite response, rate or pixel has no meaning and
    would silently turn means, variances and correlations into NaN or nonsense downstream.
    """
    problems = []
    for name, var in ds.data_vars.items():
        if var.dtype.kind != "f":
            continue
        values = np.asarray(var.values)
        inf = np.isinf(values)
        count = int(np.count_nonzero(inf))
        if count:
            first = dict(zip(var.dims, (int(i) for i in np.unravel_index(int(np.argmax(inf)), values.shape))))
            where_first = ", ".join(f"{d} {i}" for d, i in first.items())
            extra = ""
            if var.dims == ("trial", "neuron"):
                extra = f" in {int(np.count_nonzero(inf.any(axis=0)))} neurons"
            problems.append(
                f"{name!r} has {count} infinite value{'s' if count != 1 else ''}{extra} (first at {where_first}); "
                f"infinity is not a valid value: mark missing values with NaN"
            )
    return problems


def provenance_of(ds: xr.Dataset) -> dict[str, Any]:
    """The dataset's provenance attribute, parsed from JSON."""
    return json.loads(ds.attrs.get("provenance", "{}"))


def to_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Validate and write ``ds`` to a NetCDF file atomically (engine h5netcdf).

    Returns the path. The file reads back with :func:`read_netcdf` to an identical dataset.

    Raises
    ------
    SchemaError
        If ``ds`` does not follow the schema (e.g. infinite responses); the message names
        ``path`` and nothing is written.
    """
    path = Path(path)
    validate(ds, where=path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a NetCDF file in the v1nb schema (loaded into memory) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NetCDF file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError) as err:
        raise SchemaError(f"{path}: not a readable NetCDF file ({err})") from err
    for name in ("tier", "category", "true_type"):
        if name in ds.coords and ds[name].dtype.kind in "SU":
            ds[name] = ds[name].astype(object)
    return validate(ds, where=path)

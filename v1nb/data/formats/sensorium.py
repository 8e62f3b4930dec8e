"""Sensorium 2022 static scans (the neuralpredictors "FileTreeDataset" layout), as a folder or zip.

Layout (folder ``static<animal>-<session>-<scan>-GrayImageNet-<hash>/`` or the same zipped)::

    data/images/<i>.npy          (1, 144, 256) image shown on trial i
    data/responses/<i>.npy       (n_neurons,) deconvolved activity on trial i
    data/behavior/<i>.npy        (3,) pupil dilation, its derivative, running speed   [optional]
    data/pupil_center/<i>.npy    (2,)                                                 [optional]
    meta/neurons/unit_ids.npy    (n_neurons,) int
    meta/neurons/cell_motor_coordinates.npy  (n_neurons, 3) µm                        [optional]
    meta/neurons/area.npy, layer.npy         (n_neurons,) str                         [optional]
    meta/trials/tiers.npy        (n_trials,) 'train' | 'validation' | 'test' | 'final_test'
    meta/trials/frame_image_id.npy (n_trials,) — repeats of one image share the id
    meta/trials/trial_idx.npy    (n_trials,) presentation order                      [optional]
    meta/statistics/<key>/all/{mean,std}.npy (used by normalize=True)

Mapping to the schema
---------------------
- trials in file-index order (i = 0, 1, ...); ``order`` from ``trial_idx`` when present;
- ``tier``: ``final_test`` → ``test``; the original value stays in trial coordinate ``sensorium_tier``;
- ``images``: one per unique ``frame_image_id`` (sorted), read from the first trial showing it;
  ``image_id`` indexes them; image coordinate ``frame_image_id`` keeps the original ids;
- ``repeat`` numbered per (tier, image) in ``trial_idx`` order;
- neuron coords ``unit_id``, ``cortical_x/y/z`` (cell_motor_coordinates), ``area``, ``layer``;
- data vars ``behavior`` (trial, behavior_var) and ``pupil_center`` (trial, pupil_axis) when present.

The reader opens every file read-only and never writes into the data folder (the reference
library writes ``config.json`` there, which breaks on read-only data).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import FileTree, FormatError, check_shape, describe_files
from v1nb.data.schema import build_dataset
from v1nb.provenance import provenance

NAME = "sensorium2022"
DESCRIPTION = "Sensorium 2022 static scan: folder or .zip with data/responses/ and meta/trials/"
TIER_MAP = {"train": "train", "validation": "validation", "test": "test", "final_test": "test"}
BEHAVIOR_VARS = ("pupil_dilation", "pupil_dilation_derivative", "running_speed")


def matches(path: Path) -> bool:
    if path.is_dir():
        return (path / "data" / "responses").is_dir() and (path / "meta" / "trials").is_dir()
    if path.suffix == ".zip" and path.is_file():
        try:
            with FileTree(path) as tree:
                return tree.is_dir("data/responses") and tree.is_dir("meta/trials")
        except FormatError:
            return False
    return False


def load(path: Path, *, images: bool = True, behavior: bool = True, normalize: bool = False) -> xr.Dataset:
    """Read a Sensorium 2022 static scan (folder or zip, read in place).

    Parameters
    ----------
    path : Path
        The scan folder or its ``.zip``.
    images : bool
        Load the image pixels (default True). False keeps the ``image`` dimension without pixels
        (about 0.15 MB per unique image saved).
    behavior : bool
        Load ``behavior`` and ``pupil_center`` when the scan has them (default True).
    normalize : bool
        False (default): values as stored. True: the competition normalisation from
        ``meta/statistics``: images (x − mean) / std; responses x / std_n with std_n floored at
        1 % of the mean std; behaviour divided by its std.

    Returns
    -------
    xarray.Dataset
        ``responses`` (n_trials, n_neurons), ``images`` (n_unique_images, 144, 256).
    """
    path = Path(path)
    with FileTree(path) as tree:
        tiers_raw = tree.npy("meta/trials/tiers.npy", "(n_trials,) tier names", ndim=1).astype(str)
        n_trials = len(tiers_raw)
        unknown = sorted(str(t) for t in set(tiers_raw) - set(TIER_MAP))
        if unknown:
            raise FormatError(f"{tree.label('meta/trials/tiers.npy')}: unknown tier values {unknown}; expected {sorted(TIER_MAP)}")
        frame_ids = tree.npy("meta/trials/frame_image_id.npy", "(n_trials,) image ids", ndim=1)
        check_shape(frame_ids, (n_trials,), tree.label("meta/trials/frame_image_id.npy"), "(n_trials,)",
                    f"n_trials={n_trials} matching tiers.npy")
        order = None
        if tree.exists("meta/trials/trial_idx.npy"):
            order = tree.npy("meta/trials/trial_idx.npy", "(n_trials,) presentation order", ndim=1)
            check_shape(order, (n_trials,), tree.label("meta/trials/trial_idx.npy"), "(n_trials,)",
                        f"n_trials={n_trials} matching tiers.npy")
        unit_ids = tree.npy("meta/neurons/unit_ids.npy", "(n_neurons,) unit ids", ndim=1)
        n_neurons = len(unit_ids)

        responses = _stack(tree, "data/responses", n_trials, (n_neurons,), "(n_neurons,)", f"n_neurons={n_neurons} matching unit_ids.npy")
        uniq, first, image_id = np.unique(frame_ids, return_index=True, return_inverse=True)
        pixels = None
        if images:
            pixels = np.stack([_one(tree, f"data/images/{i}.npy", (1, None, None), "(1, height, width)")[0]
                               for i in first]).astype(np.float32)
            shapes = {p.shape for p in pixels}
            if len(shapes) > 1:
                raise FormatError(f"{tree.label('data/images')}: images of different shapes {sorted(shapes)}")

        neuron_coords: dict[str, np.ndarray] = {"unit_id": unit_ids}
        if tree.exists("meta/neurons/cell_motor_coordinates.npy"):
            xyz = tree.npy("meta/neurons/cell_motor_coordinates.npy", "(n_neurons, 3) positions in µm", ndim=2)
            check_shape(xyz, (n_neurons, 3), tree.label("meta/neurons/cell_motor_coordinates.npy"), "(n_neurons, 3)",
                        f"n_neurons={n_neurons} matching unit_ids.npy")
            neuron_coords.update(cortical_x=xyz[:, 0].astype(float), cortical_y=xyz[:, 1].astype(float),
                                 cortical_z=xyz[:, 2].astype(float))
        for key in ("area", "layer"):
            rel = f"meta/neurons/{key}.npy"
            if tree.exists(rel):
                values = tree.npy(rel, f"(n_neurons,) {key} names", ndim=1)
                check_shape(values, (n_neurons,), tree.label(rel), "(n_neurons,)", f"n_neurons={n_neurons} matching unit_ids.npy")
                neuron_coords[key] = values.astype(str)

        data_vars = {}
        coords_extra = {}
        if behavior and tree.is_dir("data/behavior"):
            data_vars["behavior"] = (("trial", "behavior_var"),
                                     _stack(tree, "data/behavior", n_trials, (3,), "(3,)", "pupil, its derivative, running speed"))
            coords_extra["behavior_var"] = list(BEHAVIOR_VARS)
        if behavior and tree.is_dir("data/pupil_center"):
            data_vars["pupil_center"] = (("trial", "pupil_axis"),
                                         _stack(tree, "data/pupil_center", n_trials, (2,), "(2,)", "pupil centre x, y"))
            coords_extra["pupil_axis"] = ["x", "y"]

        if normalize:
            responses, pixels, data_vars = _normalize(tree, responses, pixels, data_vars)

    tier = np.array([TIER_MAP[t] for t in tiers_raw], dtype=object)
    image_coords = {"frame_image_id": uniq}
    if pixels is None:
        image_coords = {"image": np.arange(len(uniq)), **image_coords}
    ds = build_dataset(
        responses, image_id=image_id, tier=tier, order=order, images=pixels,
        neuron_coords=neuron_coords, image_coords=image_coords,
        data_vars={k: (d, v.astype(np.float32)) for k, (d, v) in data_vars.items()},
        source=f"{NAME}:{re.sub(r'[.]zip$', '', path.name)}",
        provenance=provenance(format=NAME, files=describe_files([path]), normalize=normalize,
                              notes="trials in file-index order; order = trial_idx; final_test -> test "
                                    "(original in sensorium_tier); images unique by frame_image_id"),
        attrs={"response_unit": "a.u. (deconvolved activity" + (", / std)" if normalize else ")"), "trial_averaged": 0},
    )
    return ds.assign_coords(sensorium_tier=("trial", tiers_raw.astype(object)), **coords_extra)


def _one(tree: FileTree, rel: str, shape: tuple, what: str) -> np.ndarray:
    arr = tree.npy(rel, what)
    return check_shape(arr, shape, tree.label(rel), what)


def _stack(tree: FileTree, folder: str, n_trials: int, shape: tuple, what: str, why: str) -> np.ndarray:
    """Load ``folder/0.npy`` ... ``folder/<n_trials-1>.npy`` into one (n_trials, *shape) array."""
    out = np.empty((n_trials, *shape), dtype=np.float32)
    for i in range(n_trials):
        rel = f"{folder}/{i}.npy"
        out[i] = check_shape(tree.npy(rel, f"{what} for trial {i}"), shape, tree.label(rel), what, why)
    return out


def _statistic(tree: FileTree, key: str, name: str) -> np.ndarray:
    return tree.npy(f"meta/statistics/{key}/all/{name}.npy", f"the {name} of {key} over all trials")


def _normalize(tree, responses, pixels, data_vars):
    """The usual Sensorium normalisation (see :func:`load`), from the shipped statistics."""
    std = _statistic(tree, "responses", "std").astype(np.float32)
    check_shape(std, (responses.shape[1],), tree.label("meta/statistics/responses/all/std.npy"), "(n_neurons,)")
    responses = responses / np.maximum(std, 0.01 * std.mean())
    if pixels is not None:
        pixels = (pixels - _statistic(tree, "images", "mean")) / _statistic(tree, "images", "std")
    for key in list(data_vars):
        dims, values = data_vars[key]
        if key == "behavior":
            values = values / _statistic(tree, "behavior", "std")
        elif key == "pupil_center":
            values = (values - _statistic(tree, "pupil_center", "mean")) / _statistic(tree, "pupil_center", "std")
        data_vars[key] = (dims, values)
    return responses, pixels, data_vars

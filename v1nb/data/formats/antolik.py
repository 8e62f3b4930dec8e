"""Antolik et al. 2016 (PLoS Comput Biol 12(6):e1004927): mouse V1 responses to natural-image patches.

Layout: per imaging region a folder ``regionK/`` holding

- ``training_set.npy`` (n_train, n_neurons): one presentation per training image;
- ``training_inputs.npy`` (n_train, 961), optional: the training images, 31×31 C-order, ×1e-6;
- ``validation_inputs.npy`` (50, 961): the held-out test images, 31×31 C-order, ×1e-6;
- ``raw_validation_set.npy`` (n_reps, 50, n_neurons): test responses per repeat;
- ``validation_set.npy`` (50, n_neurons): their mean over repeats (not read: it is derivable).

"validation" in these names is the held-out *test* set.

Mapping to the schema
---------------------
- training trials → tier ``train``, repeat 0; ``image_id`` indexes ``training_inputs`` when the
  file is present, else :data:`~v1nb.data.schema.UNKNOWN_IMAGE` (−2) and repeat −1.
- test trials (repeat-major: all 50 images of repeat 0, then repeat 1, ...) → tier ``test``
  with ``repeat`` = the first axis of ``raw_validation_set``; ``image_id`` indexes the test images,
  stored after the training images.
- pixel values: the files store 0..255 × 1e-6; the loader multiplies by 1e6 so ``images`` are
  on the 0..255 scale (recorded in the provenance).
- no cortical positions, no presentation order (both absent).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import FormatError, check_shape, describe_files, load_npy
from v1nb.data.schema import UNKNOWN_IMAGE, build_dataset
from v1nb.provenance import provenance

NAME = "antolik2016"
DESCRIPTION = "Antolik et al. 2016 folder: regionK/ subfolders, or one region folder with training_set.npy"
SIDE = 31
#: The files store pixel values multiplied by this factor; the loader undoes it.
PIXEL_SCALE = 1e-6


def matches(path: Path) -> bool:
    return path.is_dir() and ((path / "training_set.npy").is_file() or bool(_regions(path)))


def _regions(root: Path) -> dict[int, Path]:
    out = {}
    for sub in root.iterdir() if root.is_dir() else ():
        m = re.fullmatch(r"region(\d+)", sub.name)
        if m and sub.is_dir():
            out[int(m.group(1))] = sub
    return dict(sorted(out.items()))


def load(path: Path, *, region: int | None = None) -> xr.Dataset:
    """Read one region of the Antolik et al. 2016 data.

    Parameters
    ----------
    path : Path
        The dataset folder (holding ``region1/``, ``region2/``, ...) or one region folder.
    region : int, optional
        Region number when ``path`` is the dataset folder (default 1). Not allowed when ``path``
        is already a region folder.

    Returns
    -------
    xarray.Dataset
        ``responses`` (n_train + n_reps·50, n_neurons); ``images`` (50 or n_train + 50, 31, 31);
        attrs ``response_unit``, ``source = "antolik2016:regionK"``.
    """
    path = Path(path)
    if (path / "training_set.npy").is_file() or not _regions(path):
        if region is not None:
            raise ValueError(f"region={region!r} given, but {path} is already a single region folder")
        folder = path
        m = re.fullmatch(r"region(\d+)", path.name)
        name = f"region{m.group(1)}" if m else path.name
    else:
        regions = _regions(path)
        region = 1 if region is None else region
        if region not in regions:
            raise ValueError(f"region={region!r}: {path} holds regions {sorted(regions)}")
        folder = regions[region]
        name = f"region{region}"

    train_file = folder / "training_set.npy"
    train = load_npy(train_file, "(n_train, n_neurons) training responses", ndim=2)
    n_train, n_neurons = train.shape
    raw_file = folder / "raw_validation_set.npy"
    raw = load_npy(raw_file, "(n_reps, 50, n_neurons) test responses per repeat", ndim=3)
    check_shape(raw, (None, None, n_neurons), str(raw_file), "(n_reps, 50, n_neurons)",
                f"n_neurons={n_neurons} matching training_set.npy")
    n_reps, n_test, _ = raw.shape
    test_file = folder / "validation_inputs.npy"
    test_images = load_npy(test_file, f"(n_test, {SIDE * SIDE}) test images", ndim=2)
    check_shape(test_images, (n_test, SIDE * SIDE), str(test_file), f"(n_test, {SIDE * SIDE})",
                f"n_test={n_test} matching raw_validation_set.npy")
    files = [train_file, raw_file, test_file]

    inputs_file = folder / "training_inputs.npy"
    if inputs_file.exists():
        train_images = load_npy(inputs_file, f"(n_train, {SIDE * SIDE}) training images", ndim=2)
        check_shape(train_images, (n_train, SIDE * SIDE), str(inputs_file), f"(n_train, {SIDE * SIDE})",
                    f"n_train={n_train} matching training_set.npy")
        images = np.concatenate([train_images, test_images])
        train_ids = np.arange(n_train)
        train_repeat = np.zeros(n_train, dtype=np.int64)
        files.append(inputs_file)
    else:
        images = test_images
        train_ids = np.full(n_train, UNKNOWN_IMAGE)
        train_repeat = np.full(n_train, -1, dtype=np.int64)
    test_offset = len(images) - n_test
    for label, arr in ((raw_file, raw), (train_file, train)):
        if not np.isfinite(arr).all():
            raise FormatError(f"{label}: expected finite responses, found {np.sum(~np.isfinite(arr))} NaN/inf values")

    responses = np.concatenate([train, raw.reshape(n_reps * n_test, n_neurons)])
    image_id = np.concatenate([train_ids, test_offset + np.tile(np.arange(n_test), n_reps)])
    tier = np.array(["train"] * n_train + ["test"] * (n_reps * n_test), dtype=object)
    repeat = np.concatenate([train_repeat, np.repeat(np.arange(n_reps), n_test)])
    return build_dataset(
        responses, image_id=image_id, tier=tier, repeat=repeat,
        images=(images / PIXEL_SCALE).reshape(-1, SIDE, SIDE),
        source=f"{NAME}:{name}",
        provenance=provenance(
            format=NAME, region=name, files=describe_files(files),
            notes="pixel values multiplied by 1e6 to undo the files' x1e-6 scaling (0..255); "
                  "validation_* files are the held-out test tier",
        ),
        attrs={"response_unit": "a.u. (inferred activity per presentation)", "trial_averaged": 0},
    )

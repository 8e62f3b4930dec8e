"""Allen Brain Observatory subset: 118 natural scenes at 31×31 with trial-averaged VISp responses.

Layout (one folder, e.g. ``allen_boc_501498760/``):

- ``all_input_scenes_118_961.npy`` (118, 961): scenes 0..117, 31×31 C-order, 0..255;
- ``Allen_train_output.npy`` (100, n_neurons), ``Allen_test_output.npy`` (18, n_neurons): mean
  dF/F (%) over ~50 presentations of scenes ``perm[:100]`` and ``perm[100:]``, where
  ``perm = np.random.RandomState(31).permutation(118)``;
- ``Allen_train_input.npy`` / ``Allen_test_input.npy``, optional: the same scenes in split order
  (used only to check the permutation when present).

Mapping to the schema: one trial per scene; tier ``train`` for ``perm[:100]`` and ``test`` for
``perm[100:]``, repeat 0, ``image_id`` = scene index; attrs ``trial_averaged = 1`` (responses are
means over presentations: no single-trial noise, no repeats), ``response_unit = "dF/F (%)"``.
No positions, no presentation order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import FormatError, check_shape, describe_files, load_npy
from v1nb.data.schema import build_dataset
from v1nb.provenance import provenance

NAME = "allen_boc"
DESCRIPTION = "Allen Brain Observatory subset folder with all_input_scenes_118_961.npy"
SCENES_FILE = "all_input_scenes_118_961.npy"
N_SCENES, N_TRAIN, SIDE, SPLIT_SEED = 118, 100, 31, 31


def matches(path: Path) -> bool:
    return path.is_dir() and (path / SCENES_FILE).is_file()


def split_permutation() -> np.ndarray:
    """Scene ids in split order: train = ``perm[:100]``, test = ``perm[100:]`` (seed 31)."""
    return np.random.RandomState(SPLIT_SEED).permutation(N_SCENES)


def load(path: Path) -> xr.Dataset:
    """Read the Allen subset folder.

    Returns
    -------
    xarray.Dataset
        ``responses`` (118, n_neurons) trial-averaged dF/F (%), ``images`` (118, 31, 31) 0..255.
    """
    path = Path(path)
    scenes_file = path / SCENES_FILE
    scenes = load_npy(scenes_file, f"({N_SCENES}, {SIDE * SIDE}) scenes", ndim=2)
    check_shape(scenes, (N_SCENES, SIDE * SIDE), str(scenes_file), f"({N_SCENES}, {SIDE * SIDE})")
    perm = split_permutation()
    parts = {"train": perm[:N_TRAIN], "test": perm[N_TRAIN:]}
    responses, files, n_neurons = [], [scenes_file], None
    for tier, ids in parts.items():
        out_file = path / f"Allen_{tier}_output.npy"
        out = load_npy(out_file, f"({len(ids)}, n_neurons) mean responses", ndim=2)
        if n_neurons is None:
            n_neurons = out.shape[1]
        check_shape(out, (len(ids), n_neurons), str(out_file), f"({len(ids)}, n_neurons)",
                    f"n_neurons={n_neurons} matching Allen_train_output.npy")
        responses.append(out)
        files.append(out_file)
        in_file = path / f"Allen_{tier}_input.npy"
        if in_file.is_file():
            inputs = load_npy(in_file, f"({len(ids)}, {SIDE * SIDE}) scenes in split order", ndim=2)
            check_shape(inputs, (len(ids), SIDE * SIDE), str(in_file), f"({len(ids)}, {SIDE * SIDE})")
            if not np.array_equal(inputs, scenes[ids]):
                raise FormatError(
                    f"{in_file}: expected the scenes RandomState({SPLIT_SEED}).permutation({N_SCENES})"
                    f"[{'100:' if tier == 'test' else ':100'}] of {SCENES_FILE}, found different images"
                )
            files.append(in_file)
    image_id = np.concatenate(list(parts.values()))
    tier = np.array(["train"] * N_TRAIN + ["test"] * (N_SCENES - N_TRAIN), dtype=object)
    return build_dataset(
        np.concatenate(responses), image_id=image_id, tier=tier, repeat=np.zeros(N_SCENES, dtype=np.int64),
        images=scenes.reshape(N_SCENES, SIDE, SIDE),
        source=f"{NAME}:{path.name}",
        provenance=provenance(format=NAME, files=describe_files(files),
                              notes=f"train/test split = RandomState({SPLIT_SEED}).permutation({N_SCENES})"),
        attrs={"response_unit": "dF/F (%)", "trial_averaged": 1},
    )

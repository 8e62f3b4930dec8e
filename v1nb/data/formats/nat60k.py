"""MouseLand "nat60k" recordings (Du, Stringer et al. 2024): V1 responses to up to 68,000 natural images.

Layout: ``<mouse>_nat60k_<date>.npz`` holding

- ``sp`` (n_neurons, n_stim): responses to the train/validation presentations (one each);
- ``istim_sp`` (n_stim,): index of each presentation's image in the images file;
- ``ss_all`` (n_test, n_repeats, n_neurons): test responses, NaN-padded where an image had fewer repeats;
- ``istim_ss`` (n_test,): index of each test image in the images file;
- ``xpos``, ``ypos``, ``iplane`` (n_neurons,): position in the imaging plane and plane index.

Images (option ``images=``): ``nat60k_text16.mat``, ``img`` (66, 264, 68000).

Mapping to the schema
---------------------
- the ``image`` dimension holds the images the recording uses (sorted unique ``istim_sp`` ∪
  ``istim_ss``), with image coordinate ``source_index`` = index in the images file (so the
  68,000-image file is never held whole);
- ``sp`` columns → tier ``train``, one trial each (the file does not mark a validation subset);
  images presented more than once get repeats 0, 1, ...;
- ``ss_all`` → tier ``test``, one trial per (image, repeat) actually recorded: trials whose
  responses are all NaN (padding) are dropped, not kept as fake trials;
- neuron coords ``xpos``, ``ypos``, ``iplane`` as stored; ``cortical_x/y/z`` only when the plane
  spacing is given (``plane_spacing_um``), because ``iplane`` is an index, not a depth;
- no presentation order in the file (``order`` absent).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import FormatError, check_shape, describe_files, read_mat, require_file
from v1nb.data.schema import build_dataset
from v1nb.provenance import provenance

NAME = "nat60k"
DESCRIPTION = "MouseLand <mouse>_nat60k_<date>.npz (option images= nat60k_text16.mat)"
KEYS = ("sp", "istim_sp", "ss_all", "istim_ss", "xpos", "ypos", "iplane")


def matches(path: Path) -> bool:
    return path.is_file() and re.fullmatch(r".+_nat60k_.+\.npz", path.name) is not None


def load(path: Path, *, images: str | Path | None = None, plane_spacing_um: float | None = None) -> xr.Dataset:
    """Read one nat60k recording.

    Parameters
    ----------
    path : Path
        ``<mouse>_nat60k_<date>.npz``.
    images : path, optional
        ``nat60k_text16.mat`` (key ``img``, (height, width, n_images_total)).
    plane_spacing_um : float, optional
        Distance between imaging planes in µm; when given, ``cortical_z = iplane · spacing`` and
        ``cortical_x/y`` = ``xpos/ypos``.

    Returns
    -------
    xarray.Dataset
        ``responses`` (n_stim + recorded test trials, n_neurons).
    """
    path = Path(path)
    require_file(path, f"a nat60k .npz with {', '.join(KEYS)}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in KEYS if k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise FormatError(f"{path}: not a readable .npz archive (expected {', '.join(KEYS)}): {err}") from err
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise FormatError(f"{path}: expected arrays {list(KEYS)}, missing {missing}")
    sp = check_shape(data["sp"], (None, None), f"{path}:sp", "(n_neurons, n_stim)")
    n_neurons, n_stim = sp.shape
    istim_sp = check_shape(data["istim_sp"].reshape(-1), (n_stim,), f"{path}:istim_sp", "(n_stim,)",
                           f"n_stim={n_stim} matching sp")
    ss = check_shape(data["ss_all"], (None, None, n_neurons), f"{path}:ss_all", "(n_test, n_repeats, n_neurons)",
                     f"n_neurons={n_neurons} matching sp")
    n_test, n_rep, _ = ss.shape
    istim_ss = check_shape(data["istim_ss"].reshape(-1), (n_test,), f"{path}:istim_ss", "(n_test,)",
                           f"n_test={n_test} matching ss_all")
    neuron_coords = {}
    for key in ("xpos", "ypos", "iplane"):
        neuron_coords[key] = check_shape(data[key].reshape(-1), (n_neurons,), f"{path}:{key}", "(n_neurons,)",
                                         f"n_neurons={n_neurons} matching sp")
    if plane_spacing_um is not None:
        neuron_coords.update(cortical_x=neuron_coords["xpos"].astype(float), cortical_y=neuron_coords["ypos"].astype(float),
                             cortical_z=neuron_coords["iplane"].astype(float) * float(plane_spacing_um))
    for key, ids in (("istim_sp", istim_sp), ("istim_ss", istim_ss)):
        not_integer = ids.dtype.kind not in "iu" and not np.all(ids == np.round(ids))
        if not_integer or (len(ids) and ids.min() < 0):
            raise FormatError(f"{path}:{key}: expected non-negative integer image indices")

    source_index, inverse = np.unique(np.concatenate([istim_sp, istim_ss]).astype(np.int64), return_inverse=True)
    train_ids, test_ids = inverse[:n_stim], inverse[n_stim:]
    recorded = ~np.all(np.isnan(ss), axis=2)  # (n_test, n_repeats): False where padding
    test_image, test_repeat = np.nonzero(recorded)
    repeat_rank = np.cumsum(recorded, axis=1) - 1  # repeats renumbered 0.. over recorded ones
    responses = np.concatenate([sp.T, ss[test_image, test_repeat]])
    image_id = np.concatenate([train_ids, test_ids[test_image]])
    tier = np.array(["train"] * n_stim + ["test"] * len(test_image), dtype=object)
    files = [path]

    pixels = None
    if images is not None:
        images = Path(images)
        mat = read_mat(images, "the nat60k images, key 'img' (height, width, n_images)")
        if "img" not in mat:
            raise FormatError(f"{images}: expected a variable 'img' (height, width, n_images)")
        img = check_shape(np.asarray(mat["img"]), (None, None, None), f"{images}:img", "(height, width, n_images)")
        if source_index.max() >= img.shape[2]:
            raise FormatError(f"{images}:img: has {img.shape[2]} images but {path} refers to index {source_index.max()}")
        pixels = np.moveaxis(img[:, :, source_index], -1, 0)
        files.append(images)
    image_coords = {"source_index": source_index}
    if pixels is None:
        image_coords = {"image": np.arange(len(source_index)), **image_coords}

    train_repeat = _repeats_in_sequence(train_ids)
    repeat = np.concatenate([train_repeat, repeat_rank[test_image, test_repeat]])
    return build_dataset(
        responses, image_id=image_id, tier=tier, repeat=repeat, images=pixels,
        neuron_coords=neuron_coords, image_coords=image_coords,
        source=f"{NAME}:{path.stem}",
        provenance=provenance(format=NAME, files=describe_files(files), plane_spacing_um=plane_spacing_um,
                              dropped_padding_trials=int((~recorded).sum()),
                              notes="sp -> train; ss_all -> test (NaN padding dropped); image = unique used images"),
        attrs={"response_unit": "a.u. (deconvolved activity)", "trial_averaged": 0},
    )


def _repeats_in_sequence(ids: np.ndarray) -> np.ndarray:
    """0, 1, ... for successive occurrences of each id (in array order)."""
    seen: dict[int, int] = {}
    out = np.empty(len(ids), dtype=np.int64)
    for t, i in enumerate(ids):
        out[t] = seen.get(int(i), 0)
        seen[int(i)] = out[t] + 1
    return out

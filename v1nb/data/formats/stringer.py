"""Stringer et al. 2019 (Nature) "natimg2800": ~10,000 V1 neurons, 2,800 natural images shown ~twice.

Layout: one MATLAB file per recording, ``natimg2800_<mouse>_<date>.mat``, with

- ``stim.resp`` (T, N): responses per presentation, in presentation order;
- ``stim.istim`` (T, 1): 1-based image ids; the largest (2801) is the gray screen;
- ``stim.spont`` (Ts, N): spontaneous activity recorded in a separate gray-screen block;
- ``med`` (N, 3): cell centres (x, y, z) as stored by the recording (z on ~11 planes);
- ``stat`` (1, N) struct, optional, whose field ``redcell`` marks GAD+ interneurons.

Optional companions: the images ``images_natimg2800_all.mat`` (``imgs``, (68, 270, 2800) over
three 90° screens) and the class labels ``stimuli_class_assignment*.mat`` (``class_assignment``
(1, 2800), ``class_names``). By default (``"auto"``) they are found next to the recording — the
layout of the published collection — and the class labels also in the shared data folder
(``stringer2019_classes/``, used when its image count matches the recording's), so a chapter
given only the recording's path gets pixels and categories. The files used are listed in the
dataset's provenance; ``images=None`` / ``classes=None`` turn the search off.

Mapping to the schema
---------------------
- ``image_id`` = ``istim − 1``; the ``image`` dimension always holds the 2,800 images (with or
  without pixels), so repeats are identified even without the images file.
- Tiers follow the schema's definitions: images presented once → ``train`` (repeat 0); images
  presented two or more times → ``test``, ``repeat`` numbered in temporal order (the reference
  analyses' "repeat 0 / repeat 1" split). No ``validation`` tier.
- Gray-screen presentations inside ``resp`` → tier ``spontaneous``, ``image_id`` −1, with their
  ``order``. Rows of ``spont`` → tier ``spontaneous``, ``order`` −1 (their timing relative to
  the stimulus sequence is not in the file). Trial coordinate ``block`` says which (``"stimulus"`` /
  ``"spont"``).
- ``order`` = row index in ``resp``; ``med`` → ``cortical_x/y/z`` (units as stored);
  ``redcell`` → neuron coordinate ``redcell`` (bool) when present; classes → image ``category``.
- ``preprocess=False`` (default) returns the raw responses. ``preprocess=True`` applies the
  reference preprocessing, :func:`subtract_spontaneous_subspace` (z-score by ``spont``, project
  out the top 32 principal components of ``spont``, mean-centre).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import (
    FormatError,
    check_shape,
    describe_files,
    has_mat_field,
    mat_field,
    read_mat,
)
from v1nb.data.schema import BLANK, build_dataset
from v1nb.provenance import provenance

NAME = "stringer2019"
DESCRIPTION = "Stringer et al. 2019 recording natimg2800_<mouse>_<date>.mat (options images=, classes=)"
#: Companion files, looked for next to the recording (and, for the classes, in the shared data
#: folder) when ``images`` / ``classes`` are ``"auto"``; the full class file first.
IMAGES_FILE = "images_natimg2800_all.mat"
CLASS_FILES = ("stimuli_class_assignment.mat", "stimuli_class_assignment_confident.mat")
SHARED_CLASSES = "stringer2019_classes"
AUTO = "auto"
#: Image crops used by the reference code: (row slice, column slice) of the 68×270 panorama.
CROPS = {"none": (slice(None), slice(None)), "left+centre": (slice(0, 67), slice(0, 180)),
         "centre": (slice(0, 67), slice(90, 180))}


def matches(path: Path) -> bool:
    return path.is_file() and re.fullmatch(r"natimg2800_.*\.mat", path.name) is not None


def load(
    path: Path,
    *,
    images: str | Path | None = AUTO,
    classes: str | Path | None = AUTO,
    crop: str = "none",
    preprocess: bool = False,
    n_components: int = 32,
) -> xr.Dataset:
    """Read one natimg2800 recording.

    Parameters
    ----------
    path : Path
        ``natimg2800_<mouse>_<date>.mat``.
    images : path, "auto" or None
        ``images_natimg2800_all.mat`` (key ``imgs``, (68, 270, n_images)); ``"auto"`` (default):
        that file next to the recording if it is there; None: no images.
    classes : path, "auto" or None
        ``stimuli_class_assignment.mat`` or ``..._confident.mat``: image ``category``; ``"auto"``
        (default): one of them next to the recording, else the shared data folder's
        ``stringer2019_classes/stimuli_class_assignment.mat`` if it labels as many images as the
        recording has; None: no categories.
    crop : {"none", "left+centre", "centre"}
        Part of the 3-screen panorama to keep (reference code: rows 0:67 and columns 0:180 or 90:180).
    preprocess : bool
        False (default): raw responses. True: :func:`subtract_spontaneous_subspace`.
    n_components : int
        Spontaneous principal components removed when ``preprocess`` is True.

    Returns
    -------
    xarray.Dataset
        ``responses`` (T + Ts, N): stimulus block then spontaneous block.
    """
    path = Path(path)
    if crop not in CROPS:
        raise ValueError(f"crop={crop!r} is not one of {sorted(CROPS)}")
    mt = read_mat(path, "a natimg2800 recording with 'stim' (resp, istim, spont) and 'med'")
    for key in ("stim", "med"):
        if key not in mt:
            raise FormatError(f"{path}: expected a variable {key!r}, found {sorted(k for k in mt if not k.startswith('__'))}")
    stim = mt["stim"]
    fields = {}
    for key in ("resp", "istim", "spont"):
        if not has_mat_field(stim, key):
            raise FormatError(f"{path}: expected struct 'stim' with field {key!r}")
        fields[key] = np.asarray(mat_field(stim, key))
    resp = check_shape(fields["resp"], (None, None), f"{path}:stim.resp", "(T, N)")
    n_trials, n_neurons = resp.shape
    istim = fields["istim"].reshape(-1) if fields["istim"].size == n_trials else fields["istim"]
    check_shape(istim, (n_trials,), f"{path}:stim.istim", "(T, 1)", f"T={n_trials} matching stim.resp")
    if not np.all(np.isfinite(istim)) or np.any(istim != np.round(istim)) or istim.min() < 1:
        raise FormatError(f"{path}:stim.istim: expected 1-based integer image ids")
    spont = check_shape(fields["spont"], (None, n_neurons), f"{path}:stim.spont", "(Ts, N)",
                        f"N={n_neurons} matching stim.resp")
    med = check_shape(np.asarray(mt["med"], dtype=float), (n_neurons, 3), f"{path}:med", "(N, 3)",
                      f"N={n_neurons} matching stim.resp")
    files = [path]
    images, classes = _companions(path, images, classes, n_images=int(istim.max()) - 1)

    pixels = categories = None
    if images is not None:
        images = Path(images)
        imgs = read_mat(images, "the natimg2800 images, key 'imgs' (68, 270, n_images)")
        if "imgs" not in imgs:
            raise FormatError(f"{images}: expected a variable 'imgs' (68, 270, n_images)")
        pixels = check_shape(np.asarray(imgs["imgs"]), (None, None, None), f"{images}:imgs", "(rows, columns, n_images)")
        rows, cols = CROPS[crop]
        pixels = np.moveaxis(pixels, -1, 0)[:, rows, cols]
        files.append(images)
    elif crop != "none":
        raise ValueError(f"crop={crop!r} needs the images file (option images=...)")
    if classes is not None:
        classes = Path(classes)
        cl = read_mat(classes, "class labels 'class_assignment' (1, n_images) and 'class_names'")
        if "class_assignment" not in cl or "class_names" not in cl:
            raise FormatError(f"{classes}: expected variables 'class_assignment' and 'class_names'")
        names = [str(np.ravel(n)[0]) if np.size(n) else "" for n in np.ravel(cl["class_names"])]
        assignment = np.asarray(cl["class_assignment"]).reshape(-1).astype(np.int64)
        if assignment.size and (assignment.min() < 0 or assignment.max() >= len(names)):
            raise FormatError(f"{classes}: class_assignment values must lie in 0..{len(names) - 1}")
        categories = np.array(names, dtype=object)[assignment]
        files.append(classes)

    n_images = _n_images(path, istim, pixels, categories, images, classes)
    ids = istim.astype(np.int64) - 1
    if ids.max() > n_images:
        raise FormatError(f"{path}:stim.istim: ids up to {ids.max() + 1} exceed the {n_images} images + gray screen")
    stimulus = ids < n_images
    ids = np.where(stimulus, ids, BLANK)
    counts = np.bincount(ids[stimulus], minlength=n_images)
    stim_tier = np.where(~stimulus, "spontaneous", np.where(counts[np.maximum(ids, 0)] >= 2, "test", "train"))

    n_spont = spont.shape[0]
    responses = np.concatenate([resp, spont]).astype(np.float32)
    image_id = np.concatenate([ids, np.full(n_spont, BLANK)])
    tier = np.concatenate([stim_tier, np.full(n_spont, "spontaneous")]).astype(object)
    order = np.concatenate([np.arange(n_trials), np.full(n_spont, -1)])
    block = np.array(["stimulus"] * n_trials + ["spont"] * n_spont, dtype=object)
    neuron_coords = {"cortical_x": med[:, 0], "cortical_y": med[:, 1], "cortical_z": med[:, 2]}
    redcell = _redcell(mt, n_neurons, path)
    if redcell is not None:
        neuron_coords["redcell"] = redcell
    image_coords = {} if pixels is not None else {"image": np.arange(n_images)}
    if categories is not None:
        image_coords["category"] = categories
    ds = build_dataset(
        responses, image_id=image_id, tier=tier, order=order, images=pixels,
        neuron_coords=neuron_coords, image_coords=image_coords,
        source=f"{NAME}:{path.stem}",
        provenance=provenance(format=NAME, files=describe_files(files), crop=crop, preprocess=preprocess,
                              notes="image_id = istim - 1; gray screen -> spontaneous; images shown once -> "
                                    "train, >= 2 times -> test; spont block has order -1"),
        attrs={"response_unit": "a.u. (deconvolved fluorescence)", "trial_averaged": 0},
    )
    ds = ds.assign_coords(block=("trial", block))
    if preprocess:
        ds = subtract_spontaneous_subspace(ds, n_components=n_components, reference=block == "spont")
    return ds


def _companions(path: Path, images: str | Path | None, classes: str | Path | None,
                n_images: int) -> tuple[Path | None, Path | None]:
    """Resolve ``"auto"`` companions (see :func:`load`); ``n_images``: gray-screen id − 1."""
    if images == AUTO:
        images = path.parent / IMAGES_FILE if (path.parent / IMAGES_FILE).is_file() else None
    if classes == AUTO:
        found = [path.parent / name for name in CLASS_FILES if (path.parent / name).is_file()]
        classes = found[0] if found else None
        if classes is None:
            from v1nb.data.locations import shared_data_dir  # lazily: a default, not a dependency

            root = shared_data_dir()
            shared = root / SHARED_CLASSES / CLASS_FILES[0] if root is not None else None
            if shared is not None and shared.is_file():
                labels = read_mat(shared, "class labels 'class_assignment' (1, n_images)").get("class_assignment")
                classes = shared if labels is not None and np.size(labels) == n_images else None
    return (Path(images) if images is not None else None), (Path(classes) if classes is not None else None)


def _n_images(path, istim, pixels, categories, images, classes) -> int:
    """Number of images: from the images file, else the class file, else the gray-screen id − 1."""
    if pixels is not None:
        n = len(pixels)
        if categories is not None and len(categories) != n:
            raise FormatError(f"{classes}: expected class_assignment for {n} images matching {images}, "
                              f"got {len(categories)}")
        return n
    if categories is not None:
        return len(categories)
    return int(istim.max()) - 1  # the largest id is the gray screen


def _redcell(mt: dict, n_neurons: int, path: Path) -> np.ndarray | None:
    if "stat" not in mt:
        return None
    stat = np.ravel(mt["stat"])
    if not (stat.dtype.names and "redcell" in stat.dtype.names):
        return None
    values = np.array([float(np.ravel(v)[0]) for v in stat["redcell"]])
    check_shape(values, (n_neurons,), f"{path}:stat.redcell", "(N,)", f"N={n_neurons} matching stim.resp")
    return values > 0


def subtract_spontaneous_subspace(
    ds: xr.Dataset, n_components: int = 32, reference: np.ndarray | None = None, min_std: float = 0.1
) -> xr.Dataset:
    """Stringer et al.'s preprocessing: remove the spontaneous-activity subspace from all responses.

    1. z-score each neuron with the mean and standard deviation (+1e-6) of the reference trials,
       the standard deviation floored at ``min_std`` × its median over neurons;
    2. project out the top ``n_components`` principal components of the z-scored reference trials
       (the dimensions that ongoing, behaviour-related activity occupies);
    3. subtract the mean over stimulus trials (``image_id >= 0``).

    The same affine map is applied to every trial, so reference trials stay comparable. NaN
    responses are ignored by the statistics and stay NaN.

    The floor is not in the reference code, whose +1e-6 is negligible for deconvolved fluorescence
    but not for spike counts: a neuron silent in every spontaneous trial (34 of 1,000 in the
    default twin) would be scaled up 10⁶-fold and swamp every later analysis (cvPCA of the twin:
    α = 9–11 and a signal fraction of 0.01 without the floor; 1.55, 1.58 and 1.68 with floors of
    0.05, 0.1 and 0.25, signal fraction 0.43–0.57). ``min_std=0`` is the reference.

    Parameters
    ----------
    ds : xarray.Dataset
        Any schema dataset with spontaneous trials (a Stringer recording, the twin).
    n_components : int
        Principal components to remove (reference: 32). 0 only z-scores and centres.
    reference : (trial,) bool array, optional
        Trials defining the spontaneous statistics; default all ``tier == "spontaneous"`` trials.
    min_std : float
        Floor of the spontaneous standard deviation, as a fraction of its median over neurons.

    Returns
    -------
    xarray.Dataset
        A copy with new ``responses`` and attrs ``response_unit``, ``preprocessing`` (which says
        how many neurons were floored).
    """
    mask = (ds["tier"].values.astype(str) == "spontaneous") if reference is None else np.asarray(reference, bool)
    if mask.shape != (ds.sizes["trial"],):
        raise ValueError(f"reference must be a (trial,) bool mask of length {ds.sizes['trial']}, got shape {mask.shape}")
    if mask.sum() < 2:
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has {mask.sum()} spontaneous reference trials; need >= 2")
    if not 0 <= n_components <= min(mask.sum(), ds.sizes["neuron"]):
        raise ValueError(f"n_components={n_components} must lie in 0..min(n_reference_trials, n_neurons)")
    if not (np.isfinite(min_std) and min_std >= 0):
        raise ValueError(f"min_std={min_std!r} must be a fraction >= 0 of the median spontaneous s.d.")
    x = ds["responses"].values.astype(np.float64)
    spont = x[mask]
    mu, sd = np.nanmean(spont, axis=0), np.nanstd(spont, axis=0)
    floor = min_std * float(np.nanmedian(sd))
    n_floored = int(np.sum(sd < floor))
    sd = np.maximum(sd, floor) + 1e-6
    x = (x - mu) / sd
    if n_components:
        u = _top_components(np.nan_to_num((spont - mu) / sd), n_components)
        x -= (np.nan_to_num(x) @ u) @ u.T
    stimulus = ds["image_id"].values >= 0
    if stimulus.any():
        x -= np.nanmean(x[stimulus], axis=0)
    out = ds.copy()
    out["responses"] = (("trial", "neuron"), x.astype(np.float32))
    out.attrs["response_unit"] = "z-score (spontaneous)"
    out.attrs["preprocessing"] = (f"z-scored by {int(mask.sum())} spontaneous trials (s.d. floored at {min_std:g} × "
                                  f"the median for {n_floored} of {ds.sizes['neuron']} neurons); top {n_components} "
                                  "spontaneous PCs projected out; centred on the stimulus-trial mean")
    return out


def _top_components(x: np.ndarray, k: int) -> np.ndarray:
    """(n_features, k) top right-singular vectors of ``x`` via the smaller Gram matrix (exact, deterministic)."""
    n, d = x.shape
    if d <= n:
        evals, evecs = np.linalg.eigh(x.T @ x)
        return evecs[:, ::-1][:, :k]
    evals, evecs = np.linalg.eigh(x @ x.T)
    v = evecs[:, ::-1][:, :k]
    u = x.T @ v
    return u / np.maximum(np.linalg.norm(u, axis=0), 1e-12)

"""Writers of small synthetic recordings in exactly the on-disk layout of each public format.

Each ``write_*`` function writes into a given (temporary) folder and returns the path to open
plus the arrays it wrote, so tests can check the loader's mapping value by value. Sizes are
tiny (a few images, tens of neurons) except where the layout fixes them (Allen: 118 scenes;
Sensorium: 144×256 images; Cowley: 112×112 JPEGs).
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import scipy.io


def write_antolik(root: Path, regions=(1, 2), n_train: int = 20, n_neurons: int = 7, n_reps: int = 4,
                  n_test: int = 50, with_inputs: bool = False, seed: int = 0) -> tuple[Path, dict]:
    """``root/regionK/`` folders; returns (root, arrays of region 1)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for k in regions:
        folder = root / f"region{k}"
        folder.mkdir(parents=True)
        n = n_neurons + k - 1  # regions differ in size
        a = {
            "training_set": rng.gamma(1.0, 1.0, (n_train, n)),
            "validation_inputs": rng.integers(0, 256, (n_test, 961)) * 1e-6,
            "raw_validation_set": rng.gamma(1.0, 1.0, (n_reps, n_test, n)),
        }
        a["validation_set"] = a["raw_validation_set"].mean(0)
        if with_inputs:
            a["training_inputs"] = rng.integers(0, 256, (n_train, 961)) * 1e-6
        for name, arr in a.items():
            np.save(folder / f"{name}.npy", arr)
        arrays.setdefault("region", {})[k] = a
    return root, arrays["region"][regions[0]]


def write_allen(folder: Path, n_neurons: int = 9, seed: int = 0) -> tuple[Path, dict]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = rng.integers(0, 256, (118, 961)).astype(np.float64)
    perm = np.random.RandomState(31).permutation(118)
    mean_resp = rng.normal(0, 5, (118, n_neurons))  # indexed by scene id
    files = {
        "all_input_scenes_118_961": scenes,
        "Allen_train_input": scenes[perm[:100]], "Allen_train_output": mean_resp[perm[:100]],
        "Allen_test_input": scenes[perm[100:]], "Allen_test_output": mean_resp[perm[100:]],
    }
    for name, arr in files.items():
        np.save(folder / f"{name}.npy", arr)
    return folder, {"scenes": scenes, "by_scene": mean_resp, "perm": perm}


def _save_natimg2800(path: Path, content: dict, imgs: np.ndarray, assignment: np.ndarray, names: list[str]) -> Path:
    """Save a recording (``stim``, ``med``, ...) at ``path`` and, beside it, the images file
    ((y, x, image) ``imgs``) and the class file ((1, image) ``assignment`` into ``names``)."""
    scipy.io.savemat(path, content)
    scipy.io.savemat(path.parent / "images_natimg2800_all.mat", {"imgs": imgs})
    scipy.io.savemat(path.parent / "stimuli_class_assignment.mat",
                     {"class_assignment": assignment, "class_names": np.array(names, dtype=object).reshape(1, -1)})
    return path


def write_stringer(folder: Path, n_images: int = 6, n_neurons: int = 8, n_spont: int = 15, seed: int = 0,
                   with_stat: bool = True) -> tuple[Path, dict]:
    """A natimg2800-style .mat plus an images file and a class file (gray screen id = n_images + 1)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    # images 0..n-2 shown twice, the last image once, the gray screen three times; shuffled
    ids0 = np.r_[np.repeat(np.arange(n_images - 1), 2), n_images - 1, [n_images] * 3]
    istim = rng.permutation(ids0) + 1  # 1-based, gray = n_images + 1
    resp = rng.gamma(1.0, 1.0, (len(istim), n_neurons))
    spont = rng.gamma(1.0, 1.0, (n_spont, n_neurons))
    med = np.c_[rng.uniform(0, 500, n_neurons), rng.uniform(0, 500, n_neurons), rng.choice([0, 35, 70], n_neurons)]
    content = {"stim": {"resp": resp, "istim": istim[:, None].astype(float), "spont": spont}, "med": med}
    redcell = rng.integers(0, 2, n_neurons)
    if with_stat:
        stat = np.zeros((1, n_neurons), dtype=[("redcell", object), ("npix", object)])
        for i in range(n_neurons):
            stat[0, i] = (np.array([[float(redcell[i])]]), np.array([[10.0]]))
        content["stat"] = stat
    imgs = rng.integers(0, 256, (68, 270, n_images)).astype(np.uint8)
    assignment = rng.integers(0, 3, (1, n_images)).astype(np.uint8)
    path = _save_natimg2800(folder / "natimg2800_M000000_MP000_2017-01-01.mat", content, imgs,
                            assignment, ["unknown", "birds", "cats"])
    return path, {"resp": resp, "istim": istim, "spont": spont, "med": med, "redcell": redcell, "imgs": imgs,
                  "assignment": assignment.ravel(), "names": ["unknown", "birds", "cats"],
                  "images_file": folder / "images_natimg2800_all.mat",
                  "classes_file": folder / "stimuli_class_assignment.mat"}


SENSORIUM_STEM = "static00000-1-1-GrayImageNet-0123456789abcdef"


def write_sensorium(parent: Path, n_neurons: int = 6, seed: int = 0, zipped: bool = False,
                    top_folder: bool = True) -> tuple[Path, dict]:
    """A Sensorium 2022 static scan folder, or its zip (entries under the folder name when ``top_folder``)."""
    rng = np.random.default_rng(seed)
    root = parent / SENSORIUM_STEM
    # 8 train images once, 2 validation images once, 2 test images × 3, 1 final_test image × 2
    frame = np.r_[np.arange(100, 108), 200, 201, [300] * 3, [301] * 3, [400] * 2]
    tiers = np.array(["train"] * 8 + ["validation"] * 2 + ["test"] * 6 + ["final_test"] * 2)
    shuffle = rng.permutation(len(frame))  # file index is not the temporal order
    frame, tiers = frame[shuffle], tiers[shuffle]
    n_trials = len(frame)
    trial_idx = rng.permutation(n_trials) * 3 + 7  # hashed-looking, order-preserving integers
    pixels = {fid: rng.integers(0, 256, (1, 144, 256)).astype(np.uint8) for fid in np.unique(frame)}
    resp = rng.gamma(1.0, 1.0, (n_trials, n_neurons)).astype(np.float32)
    behavior = rng.normal(size=(n_trials, 3)).astype(np.float32)
    pupil = rng.normal(size=(n_trials, 2)).astype(np.float32)
    for sub in ("data/images", "data/responses", "data/behavior", "data/pupil_center", "meta/neurons", "meta/trials"):
        (root / sub).mkdir(parents=True)
    for i in range(n_trials):
        np.save(root / f"data/images/{i}.npy", pixels[frame[i]])
        np.save(root / f"data/responses/{i}.npy", resp[i])
        np.save(root / f"data/behavior/{i}.npy", behavior[i])
        np.save(root / f"data/pupil_center/{i}.npy", pupil[i])
    xyz = rng.uniform(0, 600, (n_neurons, 3))
    np.save(root / "meta/neurons/unit_ids.npy", np.arange(1, n_neurons + 1))
    np.save(root / "meta/neurons/cell_motor_coordinates.npy", xyz)
    np.save(root / "meta/neurons/area.npy", np.array(["V1"] * n_neurons))
    np.save(root / "meta/neurons/layer.npy", np.array(["L2/3"] * n_neurons))
    np.save(root / "meta/trials/tiers.npy", tiers)
    np.save(root / "meta/trials/frame_image_id.npy", frame)
    np.save(root / "meta/trials/trial_idx.npy", trial_idx)
    stats = {"responses": resp, "images": np.stack(list(pixels.values())).astype(float),
             "behavior": behavior, "pupil_center": pupil}
    for key, arr in stats.items():
        d = root / f"meta/statistics/{key}/all"
        d.mkdir(parents=True)
        axis = 0 if key != "images" else None
        np.save(d / "mean.npy", arr.mean(axis=axis))
        np.save(d / "std.npy", arr.std(axis=axis))
    (root / "config.json").write_text("{}")
    truth = {"frame": frame, "tiers": tiers, "trial_idx": trial_idx, "resp": resp, "pixels": pixels,
             "behavior": behavior, "pupil": pupil, "xyz": xyz}
    if not zipped:
        return root, truth
    archive = parent / f"{SENSORIUM_STEM}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(root.rglob("*")):
            zf.write(p, p.relative_to(parent if top_folder else root).as_posix())
    shutil.rmtree(root)
    return archive, truth


def write_nat60k(folder: Path, n_neurons: int = 7, seed: int = 0) -> tuple[Path, dict]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    istim_sp = np.array([3, 17, 5, 40, 22, 9, 17, 31])  # image 17 presented twice
    istim_ss = np.array([2, 11, 25])
    sp = rng.gamma(1.0, 1.0, (n_neurons, len(istim_sp))).astype(np.float32)
    ss = rng.gamma(1.0, 1.0, (len(istim_ss), 4, n_neurons)).astype(np.float32)
    ss[1, 3] = np.nan  # image 11 has only 3 repeats
    ss[2, 2:] = np.nan  # image 25 has only 2 repeats
    ss[0, 1, 0] = np.nan  # one genuinely missing value stays NaN
    data = {"sp": sp, "istim_sp": istim_sp, "ss_all": ss, "istim_ss": istim_ss,
            "xpos": rng.uniform(0, 800, n_neurons), "ypos": rng.uniform(0, 800, n_neurons),
            "iplane": rng.integers(0, 10, n_neurons)}
    path = folder / "L1_A1_nat60k_2023_03_06.npz"
    np.savez(path, **data)
    img = rng.integers(0, 256, (6, 8, 45)).astype(np.uint8)
    scipy.io.savemat(folder / "nat60k_text16.mat", {"img": img})
    return path, {**data, "img": img, "images_file": folder / "nat60k_text16.mat"}


def write_cowley(folder: Path, session: str = "190923", n_neurons: int = 5, n_images: int = 4,
                 seed: int = 0, top_folder: bool = True) -> tuple[Path, dict]:
    """Cowley V4 folder; the image zip holds a top-level folder when ``top_folder``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for sub in ("images", "responses_raw", "responses_repeat_averaged"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    raw = rng.poisson(3.0, (n_neurons, n_images, 3)).astype(float)
    raw[:, 1, 2] = np.nan  # image 1: 2 repeats
    raw[:, 3, 1:] = np.nan  # image 3: shown once -> train
    np.save(folder / "responses_raw" / f"responses_{session}.npy", raw)
    np.save(folder / "responses_repeat_averaged" / f"responses_{session}.npy", np.nanmean(raw, axis=2))
    rgb = rng.integers(0, 256, (n_images, 112, 112, 3)).astype(np.uint8)
    rgb[..., :] = rgb[..., :1]  # gray content survives JPEG compression well
    prefix = f"images_{session}/" if top_folder else ""
    with zipfile.ZipFile(folder / "images" / f"images_{session}.zip", "w") as zf:
        for i in reversed(range(n_images)):  # stored out of order: the reader sorts by name
            buf = io.BytesIO()
            Image.fromarray(rgb[i]).save(buf, format="JPEG", quality=95)
            zf.writestr(f"{prefix}image{i + 1:04d}.jpg", buf.getvalue())
        zf.writestr("__MACOSX/._image0001.jpg", b"resource fork junk")
    return folder, {"raw": raw, "rgb": rgb, "session": session}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file and folder under ``root`` (or of ``root`` itself if a file)."""
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p): (p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns) for p in paths}


def make_read_only(root: Path) -> None:
    """chmod a file, or a folder and everything under it, to read-only."""
    paths = [*root.rglob("*"), root] if root.is_dir() else [root]
    for p in paths:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)


def make_writable(root: Path) -> None:
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for p in paths:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


def write_stringer_from(ds, folder: Path) -> Path:
    """A schema dataset (e.g. the digital twin) written in the natimg2800 layout, with its images
    and categories as companion files; returns the recording's path.

    Stimulus trials keep their temporal order; interleaved blank trials become gray-screen
    presentations (id n_images + 1); the recording's ``cortical_x/y`` and its plane (``cortical_z``
    when present, else 0) become ``med``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_images = ds.sizes["image"]
    ids = ds["image_id"].values
    istim = np.where(ids >= 0, ids + 1, n_images + 1)
    resp = ds["responses"].values.astype(np.float64)
    z = ds["cortical_z"].values if "cortical_z" in ds.coords else np.zeros(ds.sizes["neuron"])
    med = np.c_[ds["cortical_x"].values, ds["cortical_y"].values, z]
    spont = resp[ids < 0][: max(2, (ids < 0).sum() // 2)]  # half of the blanks also as a spont block
    names = sorted(set(ds["category"].values.astype(str)))
    assignment = np.searchsorted(names, ds["category"].values.astype(str)).astype(np.uint8)[None]
    return _save_natimg2800(folder / "natimg2800_M000000_TWIN_2026-01-01.mat",
                            {"stim": {"resp": resp, "istim": istim[:, None].astype(float), "spont": spont}, "med": med},
                            np.moveaxis(ds["images"].values, 0, -1), assignment, names)

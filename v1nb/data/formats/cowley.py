"""Cowley et al. 2023 macaque V4 ("compact models"): spike counts to natural images, per session.

Layout (one folder)::

    images/images_<session>.zip          JPEG 112×112×3, image0001.jpg ... (sorted by name;
                                         some zips hold a top-level folder)
    responses_raw/responses_<session>.npy            (n_neurons, n_images, max_repeats) spike
                                                      counts per 100 ms bin, NaN-padded
    responses_repeat_averaged/responses_<session>.npy (n_neurons, n_images)   [not read: derivable]

Image i ↔ ``responses[:, i]``. JPEGs are decoded straight from the zip (nothing is extracted).

Mapping to the schema
---------------------
- one trial per recorded (image, repeat); NaN-padding (a repeat whose counts are NaN for every
  neuron) is dropped, not faked; ``repeat`` = rank among the image's recorded repeats;
- tiers follow the schema's definitions: images recorded once → ``train``; images recorded two
  or more times → ``test``;
- ``images`` (n_images, 112, 112): luminance of the RGB JPEGs (ITU-R 709 weights, as
  :func:`skimage.color.rgb2gray`) on the 0..255 scale;
- no positions, no presentation order; ``response_unit = "spike count (100 ms bin)"``.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import xarray as xr

from v1nb.data.formats.reading import FormatError, describe_files, load_npy, require_file
from v1nb.data.schema import build_dataset
from v1nb.provenance import provenance

NAME = "cowley2023"
DESCRIPTION = "Cowley et al. 2023 V4 folder with responses_raw/ and images/ (option session=)"


def matches(path: Path) -> bool:
    return path.is_dir() and (path / "responses_raw").is_dir() and (path / "images").is_dir()


def sessions(path: Path) -> list[str]:
    """Sessions with both a raw-response file and an image zip."""
    raw = {m.group(1) for f in (path / "responses_raw").glob("responses_*.npy")
           if (m := re.fullmatch(r"responses_(.+)\.npy", f.name))}
    zips = {m.group(1) for f in (path / "images").glob("images_*.zip")
            if (m := re.fullmatch(r"images_(.+)\.zip", f.name))}
    return sorted(raw & zips)


def load(path: Path, *, session: str | None = None) -> xr.Dataset:
    """Read one session of the Cowley V4 data.

    Parameters
    ----------
    path : Path
        The folder holding ``images/`` and ``responses_raw/``.
    session : str, optional
        Session name (the ``<session>`` in the file names); may be omitted when there is one.

    Returns
    -------
    xarray.Dataset
        ``responses`` (recorded trials, n_neurons) spike counts, ``images`` (n_images, 112, 112).
    """
    path = Path(path)
    available = sessions(path)
    if session is None:
        if len(available) != 1:
            raise ValueError(f"{path}: pass session=... (sessions with responses and images: {available})")
        session = available[0]
    raw_file = path / "responses_raw" / f"responses_{session}.npy"
    zip_file = path / "images" / f"images_{session}.zip"
    if session not in available:
        require_file(raw_file, f"(n_neurons, n_images, max_repeats) spike counts of session {session!r}")
        require_file(zip_file, f"the JPEG images of session {session!r}")
    raw = load_npy(raw_file, "(n_neurons, n_images, max_repeats) spike counts, NaN-padded", ndim=3)
    n_neurons, n_images, _ = raw.shape
    pixels = _read_jpegs(zip_file, n_images, raw_file)

    recorded = ~np.all(np.isnan(raw), axis=0)  # (n_images, max_repeats)
    image, rep = np.nonzero(recorded)
    rank = (np.cumsum(recorded, axis=1) - 1)[image, rep]
    counts = recorded.sum(1)
    tier = np.where(counts[image] >= 2, "test", "train").astype(object)
    return build_dataset(
        raw[:, image, rep].T, image_id=image, tier=tier, repeat=rank, images=pixels,
        source=f"{NAME}:{session}",
        provenance=provenance(format=NAME, session=session, files=describe_files([raw_file, zip_file]),
                              dropped_padding_trials=int((~recorded).sum()),
                              notes="images recorded once -> train, >= 2 times -> test; NaN padding dropped; "
                                    "JPEG luminance 0..255"),
        attrs={"response_unit": "spike count (100 ms bin)", "trial_averaged": 0},
    )


def _read_jpegs(zip_file: Path, n_images: int, raw_file: Path) -> np.ndarray:
    """(n_images, height, width) float32 luminance of the zip's JPEGs, sorted by name."""
    from PIL import Image, UnidentifiedImageError
    from skimage.color import rgb2gray

    require_file(zip_file, f"{n_images} JPEG images (image0001.jpg, ...)")
    try:
        with zipfile.ZipFile(zip_file) as zf:
            names = sorted((n for n in zf.namelist()
                            if re.search(r"\.jpe?g$", n, re.I) and not n.startswith("__MACOSX/")
                            and not Path(n).name.startswith(".")),
                           key=lambda n: Path(n).name)  # image0001.jpg ... wherever the folder
            if len(names) != n_images:
                raise FormatError(f"{zip_file}: expected {n_images} JPEG images matching {raw_file.name} "
                                  f"(n_neurons, n_images={n_images}, max_repeats), found {len(names)}")
            out = []
            for name in names:
                try:
                    with Image.open(io.BytesIO(zf.read(name))) as im:
                        arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
                except (UnidentifiedImageError, OSError, zipfile.BadZipFile) as err:
                    raise FormatError(f"{zip_file}:{name}: not a readable JPEG image: {err}") from err
                out.append(rgb2gray(arr) * 255.0)
    except zipfile.BadZipFile as err:
        raise FormatError(f"{zip_file}: not a readable zip archive of JPEG images: {err}") from err
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise FormatError(f"{zip_file}: expected images of one size, found {sorted(shapes)}")
    return np.stack(out).astype(np.float32)

"""Stimuli for the twin: natural-image patches from bundled photographs, and sinusoidal gratings.

Natural images
--------------
Patches are cut from the photographs that ship inside the scikit-image wheel (``skimage.data``)
and scikit-learn's two sample images, so no download is ever needed. Each patch keeps the name
of its source photograph as its category (:data:`SOURCES`). Non-photographs (text, logos,
chessboards, phantoms, binary silhouettes) are left out.

Pixel convention: grayscale luminance in ``[0, 1]`` (float32), **not** normalised per patch, so
photographs keep their own brightness and contrast (a patch of the Hubble deep field is dark, one
of the moon is low-contrast). The blank screen of spontaneous trials is the mid-gray ``0.5``
(:data:`GRAY`); the twin's neurons see the contrast image ``pixels - GRAY``.

Gratings
--------
:func:`gratings` draws full-field sinusoidal gratings in the same convention, with the twin's
orientation convention (see :mod:`v1nb.data.digital_twin.cells`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np

#: Luminance of the gray screen (blank trials) and the zero of contrast.
GRAY = 0.5


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    # The file that sklearn.datasets.load_sample_image reads, opened directly: importing
    # sklearn.datasets costs seconds, more than the whole quick twin.
    def load() -> np.ndarray:
        import importlib.util

        from PIL import Image

        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"scikit-learn is not installed: cannot read its sample image {filename}")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path}: scikit-learn's sample image is missing")
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _faces() -> np.ndarray:
    import skimage.data

    return skimage.data.lfw_subset()  # (200, 25, 25) in [0, 1]: one photograph per face


#: category name → loader of the source photograph(s) (all on disk in the installed wheels).
SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "coins": _skimage("coins"),
    "rocket": _skimage("rocket"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "brick": _skimage("brick"),
    "moon": _skimage("moon"),
    "hubble": _skimage("hubble_deep_field"),
    "retina": _skimage("retina"),
    "ihc": _skimage("immunohistochemistry"),
    "motorcycle": _motorcycle,
    "faces": _faces,
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
}


#: Luminance weights of R, G, B (ITU-R BT.709, as ``skimage.color.rgb2gray``).
_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def _to_gray(image: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, 3) photograph → (h, w) float64 luminance in [0, 1]."""
    image = np.asarray(image)
    scale = 255.0 if image.dtype.kind in "ui" else 1.0
    image = image.astype(np.float64) / scale
    if image.ndim == 3:
        image = image[..., :3] @ _RGB_WEIGHTS
    return np.clip(image, 0.0, 1.0)


@functools.lru_cache(maxsize=None)
def _pyramids(category: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """Gaussian pyramids (factor 2) of every photograph of one source, cached per process.

    Cropping from the level closest to the wanted scale keeps each resize small (fast), while
    the pyramid's smoothing keeps the result anti-aliased.
    """
    from skimage.transform import pyramid_gaussian

    raw = SOURCES[category]()
    photos = raw if (raw.ndim == 3 and raw.shape[-1] not in (3, 4)) else [raw]
    out = []
    for photo in photos:
        gray = _to_gray(photo)
        levels = max(0, int(np.log2(min(gray.shape) / 16)))
        out.append(tuple(pyramid_gaussian(gray, max_layer=levels, downscale=2, preserve_range=True)))
    return tuple(out)


def natural_patches(
    n: int,
    shape: tuple[int, int],
    rng: np.random.Generator | int,
    scale: tuple[float, float] = (0.15, 0.6),
    categories: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` random grayscale patches from the bundled photographs.

    Each patch picks a source uniformly among ``categories`` (then, for the face set, one face
    uniformly), a crop scale log-uniformly between ``scale[0]`` and ``scale[1]`` of the largest
    crop of the patch's aspect ratio that fits the photograph (never finer than one photograph
    pixel per patch pixel, unless the photograph is too small), and a uniform position; the crop
    is resized to ``shape`` with anti-aliasing (``skimage.transform.resize``).

    Parameters
    ----------
    n : int
        Number of patches.
    shape : (height, width)
        Patch size in pixels.
    rng : numpy Generator or int seed
        Same seed → same patches.
    scale : (low, high)
        Crop size range as a fraction of the largest crop, 0 < low ≤ high ≤ 1.
    categories : tuple of str, optional
        Source names (keys of :data:`SOURCES`); all by default.

    Returns
    -------
    images : (n, height, width) float32 array
        Luminance in [0, 1].
    category : (n,) array of str
        The source photograph of each patch.
    """
    height, width = (int(s) for s in shape)
    if height < 4 or width < 4:
        raise ValueError(f"shape={shape!r}: patches need at least 4×4 pixels")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale={scale!r}: expected 0 < low <= high <= 1")
    categories = tuple(SOURCES) if categories is None else tuple(categories)
    unknown = sorted(set(categories) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown image categories {unknown}; available: {sorted(SOURCES)}")
    rng = np.random.default_rng(rng)
    from skimage.transform import resize

    which = rng.integers(len(categories), size=n)
    images = np.empty((n, height, width), dtype=np.float32)
    for k in range(n):
        photos = _pyramids(categories[which[k]])
        pyramid = photos[rng.integers(len(photos))]
        h0, w0 = pyramid[0].shape
        largest = min(h0 / height, w0 / width)  # photograph pixels per patch pixel, largest crop
        lo, hi = scale[0] * largest, scale[1] * largest
        c = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        c = min(max(c, min(1.0, largest)), largest)
        level = min(max(0, int(np.floor(np.log2(c)))) if c >= 1 else 0, len(pyramid) - 1)
        source = pyramid[level]
        c_level = c / 2**level
        ch = min(source.shape[0], max(2, int(round(height * c_level))))
        cw = min(source.shape[1], max(2, int(round(width * c_level))))
        y0 = rng.integers(source.shape[0] - ch + 1)
        x0 = rng.integers(source.shape[1] - cw + 1)
        crop = source[y0:y0 + ch, x0:x0 + cw]
        images[k] = resize(crop, (height, width), anti_aliasing=ch > height, preserve_range=True)
    np.clip(images, 0.0, 1.0, out=images)
    return images, np.asarray(categories, dtype=object)[which]


def gratings(
    shape: tuple[int, int],
    orientation: np.ndarray | float,
    spatial_frequency: np.ndarray | float,
    phase: np.ndarray | float = 0.0,
    contrast: float = 1.0,
) -> np.ndarray:
    """Full-field sinusoidal gratings, luminance ``GRAY * (1 + contrast * cos(...))``.

    Orientation convention (shared with the twin's ``true_orientation``): a grating of
    orientation θ has bars running along the direction (cos θ, sin θ) in (column, row) pixel
    coordinates, i.e. θ = 0 gives horizontal bars, θ = π/2 vertical bars. The luminance varies
    along (−sin θ, cos θ) as ``cos(2π f u + phase)`` with u measured from pixel (0, 0).

    Parameters
    ----------
    shape : (height, width)
    orientation, spatial_frequency, phase : scalars or arrays broadcasting to (k,)
        Radians, cycles per pixel, radians.
    contrast : float
        Michelson contrast in [0, 1].

    Returns
    -------
    (k, height, width) float32 array in [0, 1]
    """
    theta, freq, ph = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=float))
                                            for a in (orientation, spatial_frequency, phase)))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    u = -xx[None] * np.sin(theta)[:, None, None] + yy[None] * np.cos(theta)[:, None, None]
    wave = np.cos(2 * np.pi * freq[:, None, None] * u + ph[:, None, None])
    return (GRAY * (1.0 + contrast * wave)).astype(np.float32)

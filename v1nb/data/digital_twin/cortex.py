"""Where the neurons are: cortical positions and the retinotopic map to RF centres.

Neurons sit uniformly in a ``cortex_width_um × cortex_height_um`` field of view on a few imaging
planes. Retinotopy maps cortical x to azimuth (image column) and cortical y to elevation (image
row) through a smooth, monotone, mildly curved map, plus Gaussian scatter, so nearby neurons have
nearby (not identical) RF centres, as in mouse V1.
"""

from __future__ import annotations

import numpy as np


def cortical_positions(config, rng: np.random.Generator) -> np.ndarray:
    """Draw (neuron, 3) positions (x, y, z) in µm: uniform in the field of view, random plane."""
    n = config.n_neurons
    x = rng.uniform(0, config.cortex_width_um, size=n)
    y = rng.uniform(0, config.cortex_height_um, size=n)
    z = np.asarray(config.plane_depths_um, dtype=float)[rng.integers(len(config.plane_depths_um), size=n)]
    return np.column_stack([x, y, z])


def retinotopic_map(xy: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """The smooth map from cortical (x, y) in µm to the RF centre (column, row) in pixels.

    Parameters
    ----------
    xy : (neuron, 2) array, µm

    Returns
    -------
    rf_x, rf_y : (neuron,) arrays, pixels, inside the image minus ``retinotopy_margin``.
    """
    u = xy[:, 0] / config.cortex_width_um  # in [0, 1]
    v = xy[:, 1] / config.cortex_height_um
    # A gentle, monotone warp (derivative stays positive) so the map is not a plain affine one.
    u_w = u + 0.08 * np.sin(np.pi * u) * (v - 0.5)
    v_w = v + 0.06 * np.sin(2 * np.pi * v) / (2 * np.pi) + 0.05 * (u - 0.5) * np.sin(np.pi * v)
    m = config.retinotopy_margin
    width, height = config.image_width, config.image_height
    rf_x = m * (width - 1) + (1 - 2 * m) * (width - 1) * np.clip(u_w, 0, 1)
    rf_y = m * (height - 1) + (1 - 2 * m) * (height - 1) * np.clip(v_w, 0, 1)
    return rf_x, rf_y


def rf_centres(xy: np.ndarray, config, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RF centres (pixels) = retinotopic map + isotropic Gaussian scatter, kept inside the margin.

    Scatter has s.d. ``rf_scatter × image_width``; centres are clipped to the central region that
    excludes half the margin at each border, so every RF lies within the image.
    """
    rf_x, rf_y = retinotopic_map(xy, config)
    sd = config.rf_scatter * config.image_width
    rf_x = rf_x + sd * rng.standard_normal(len(rf_x))
    rf_y = rf_y + sd * rng.standard_normal(len(rf_y))
    half_x = config.retinotopy_margin / 2 * (config.image_width - 1)
    half_y = config.retinotopy_margin / 2 * (config.image_height - 1)
    return (np.clip(rf_x, half_x, config.image_width - 1 - half_x),
            np.clip(rf_y, half_y, config.image_height - 1 - half_y))

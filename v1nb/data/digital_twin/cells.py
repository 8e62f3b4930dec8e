"""Ground-truth functional cell types: each neuron's stimulus → drive map, up to orientation.

Every type is a small, classic model built from linear filters applied to the contrast image
``c = pixels - GRAY`` (see :mod:`v1nb.data.stimuli`):

================== ==========================================================================
``simple``          rectified Gabor: ``[g_φ · c]_+ ** p``
``complex``         energy model: ``((g_φ · c)² + (g_φ+π/2 · c)²) ** (p/2)``
``surround_complex`` complex cell divided by the energy of an iso-oriented annular surround
``on_center``       rectified difference of Gaussians: ``[h · c]_+ ** p``
``off_center``      the same with opposite sign: ``[-h · c]_+ ** p``
``cross_norm_simple`` simple cell divided by the energy of the orthogonal orientation at its RF
================== ==========================================================================

with ``p`` the config's ``exponent``. Divisive types compute ``E / (1 + s · S / S̄)`` with ``E``
the excitatory term above, ``S`` the suppressive energy (same exponent), ``S̄`` its mean over the
twin's images and ``s`` the neuron's ``suppression``. Each neuron's drive is finally divided by
its mean over the twin's images (``drive_scale``), so drives are unit-mean on natural images and
gains alone set firing rates.

Orientation convention: θ is the orientation of the preferred bars, which run along
(cos θ, sin θ) in (column, row) pixel coordinates (θ = 0: horizontal bars), as in
:func:`v1nb.data.stimuli.gratings`. Centre–surround cells have no orientation (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v1nb.data.stimuli import GRAY

#: type name → one-line description.
CELL_TYPES: dict[str, str] = {
    "simple": "simple cell: rectified Gabor",
    "complex": "complex cell: Gabor energy model",
    "surround_complex": "complex cell with iso-orientation surround suppression",
    "on_center": "ON centre-surround cell: rectified difference of Gaussians",
    "off_center": "OFF centre-surround cell: rectified negative difference of Gaussians",
    "cross_norm_simple": "simple cell with cross-orientation divisive normalisation",
}
#: Types with a preferred orientation.
ORIENTED = ("simple", "complex", "surround_complex", "cross_norm_simple")
#: Types with a suppressive (divisive) term.
SUPPRESSED = ("surround_complex", "cross_norm_simple")

# Neurons per filter-bank batch: bounds memory at ~batch × 4 filters × pixels floats.
_BATCH = 512


@dataclass(frozen=True)
class CellParams:
    """Per-neuron parameters of the stimulus model, each a (neuron,) array.

    Attributes
    ----------
    cell_type : str array
    orientation : radians in [0, π); NaN for centre–surround cells
    phase : radians in [0, 2π), Gabor phase (complex cells are invariant to it); NaN for
        centre–surround cells
    sf : preferred spatial frequency, cycles per pixel; NaN for centre–surround cells
    sigma : RF size in pixels (Gabor envelope s.d. across the bars, or DoG centre s.d.)
    rf_x, rf_y : RF centre in pixels (column, row; pixel centres at integers)
    suppression : strength ``s`` of the divisive term (0 for non-suppressed types)
    """

    cell_type: np.ndarray
    orientation: np.ndarray
    phase: np.ndarray
    sf: np.ndarray
    sigma: np.ndarray
    rf_x: np.ndarray
    rf_y: np.ndarray
    suppression: np.ndarray

    def __len__(self) -> int:
        return len(self.cell_type)


def draw_cells(config, rf_x: np.ndarray, rf_y: np.ndarray, rng: np.random.Generator) -> CellParams:
    """Draw types and tuning parameters for neurons whose RF centres are given (pixels)."""
    n = len(rf_x)
    weights = np.asarray(config.type_weights, dtype=float)
    cell_type = np.asarray(config.cell_types, dtype=object)[rng.choice(len(weights), size=n, p=weights / weights.sum())]
    orientation = rng.uniform(0, np.pi, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    wavelength = config.wavelength * config.image_width * np.exp(config.sf_jitter * rng.standard_normal(n))
    sf = 1.0 / wavelength
    sigma = config.envelope * wavelength
    dog = np.isin(cell_type, ("on_center", "off_center"))
    sigma[dog] = config.dog_sigma * config.image_width * np.exp(config.sf_jitter * rng.standard_normal(dog.sum()))
    orientation[dog] = phase[dog] = sf[dog] = np.nan  # centre-surround cells have none of these
    lo, hi = config.suppression
    suppression = np.where(np.isin(cell_type, SUPPRESSED), rng.uniform(lo, hi, size=n), 0.0)
    return CellParams(cell_type, orientation, phase, sf, sigma, np.asarray(rf_x, float),
                      np.asarray(rf_y, float), suppression)


def _coords(p: CellParams, idx: np.ndarray, shape: tuple[int, int], theta: np.ndarray):
    """Across-bar (u) and along-bar (v) coordinates of every pixel for neurons ``idx``: (k, H, W)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dx = xx[None] - p.rf_x[idx, None, None]
    dy = yy[None] - p.rf_y[idx, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    return -dx * s + dy * c, dx * c + dy * s


def _gabor(u, v, envelope_sd, sf, phase, aspect, annulus: float | None = None) -> np.ndarray:
    """Zero-mean, unit-norm Gabor filters (k, H, W); with ``annulus`` the envelope is a ring."""
    sd = envelope_sd[:, None, None]
    envelope = np.exp(-(u**2 + (v / aspect) ** 2) / (2 * sd**2))
    if annulus is not None:  # ring between the centre envelope and `annulus` times its size
        envelope = np.exp(-(u**2 + (v / aspect) ** 2) / (2 * (annulus * sd) ** 2)) - envelope
    carrier = np.cos(2 * np.pi * sf[:, None, None] * u + phase[:, None, None])
    dc = (envelope * carrier).sum(axis=(1, 2), keepdims=True) / envelope.sum(axis=(1, 2), keepdims=True)
    g = envelope * (carrier - dc)
    return g / np.linalg.norm(g, axis=(1, 2), keepdims=True)


def _dog(p: CellParams, idx: np.ndarray, shape, config) -> np.ndarray:
    """Difference-of-Gaussians filters (k, H, W), centre integral 1, surround integral ``w``."""
    u, v = _coords(p, idx, shape, np.zeros(len(idx)))
    r2 = u**2 + v**2
    sd = p.sigma[idx, None, None]
    centre = np.exp(-r2 / (2 * sd**2))
    surround = np.exp(-r2 / (2 * (config.dog_surround_ratio * sd) ** 2))
    h = centre / centre.sum(axis=(1, 2), keepdims=True)
    h -= config.dog_surround_weight * surround / surround.sum(axis=(1, 2), keepdims=True)
    return h / np.linalg.norm(h, axis=(1, 2), keepdims=True)


def filter_bank(p: CellParams, idx: np.ndarray, shape: tuple[int, int], config) -> np.ndarray:
    """The linear filters of neurons ``idx``, all of one type: (k, n_filters, H, W).

    Filters per type: simple [g_φ]; complex [g_φ, g_φ+π/2]; surround_complex [g_φ, g_φ+π/2,
    ring_φ, ring_φ+π/2]; on/off [h]; cross_norm_simple [g_φ, g⊥_φ, g⊥_φ+π/2].
    """
    kind = set(p.cell_type[idx])
    if len(kind) != 1:
        raise ValueError(f"filter_bank needs neurons of one type, got {sorted(kind)}")
    kind = kind.pop()
    if kind in ("on_center", "off_center"):
        return _dog(p, idx, shape, config)[:, None]
    theta, sf, sd, ph = p.orientation[idx], p.sf[idx], p.sigma[idx], p.phase[idx]
    u, v = _coords(p, idx, shape, theta)
    quad = ph + np.pi / 2
    bank = [_gabor(u, v, sd, sf, ph, config.aspect)]
    if kind in ("complex", "surround_complex"):
        bank.append(_gabor(u, v, sd, sf, quad, config.aspect))
    if kind == "surround_complex":
        bank += [_gabor(u, v, sd, sf, ph, config.aspect, config.surround_ratio),
                 _gabor(u, v, sd, sf, quad, config.aspect, config.surround_ratio)]
    if kind == "cross_norm_simple":
        uo, vo = _coords(p, idx, shape, theta + np.pi / 2)
        bank += [_gabor(uo, vo, sd, sf, ph, config.aspect), _gabor(uo, vo, sd, sf, quad, config.aspect)]
    return np.stack(bank, axis=1)


def excitation_suppression(p: CellParams, images: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """The excitatory term ``E`` and suppressive energy ``S`` of every neuron on every image.

    Parameters
    ----------
    p : CellParams (neuron,)
    images : (image, H, W) luminance in [0, 1]

    Returns
    -------
    excitation, suppression : (image, neuron) float64 arrays, both >= 0
        ``suppression`` is 0 for types without a divisive term.
    """
    shape = images.shape[1:]
    flat = (np.asarray(images, dtype=np.float32) - np.float32(GRAY)).reshape(len(images), -1)
    ex = np.zeros((len(images), len(p)))
    sup = np.zeros((len(images), len(p)))
    power = config.exponent
    for kind in np.unique(p.cell_type):
        members = np.flatnonzero(p.cell_type == kind)
        for start in range(0, len(members), _BATCH):
            idx = members[start:start + _BATCH]
            bank = filter_bank(p, idx, shape, config).astype(np.float32)
            k, f = bank.shape[:2]
            lin = (flat @ bank.reshape(k * f, -1).T).reshape(len(images), k, f).astype(np.float64)
            if kind in ("simple", "cross_norm_simple", "on_center"):
                ex[:, idx] = np.maximum(lin[:, :, 0], 0) ** power
            elif kind == "off_center":
                ex[:, idx] = np.maximum(-lin[:, :, 0], 0) ** power
            else:  # energy of the quadrature pair
                ex[:, idx] = (lin[:, :, 0] ** 2 + lin[:, :, 1] ** 2) ** (power / 2)
            if kind == "surround_complex":
                sup[:, idx] = (lin[:, :, 2] ** 2 + lin[:, :, 3] ** 2) ** (power / 2)
            elif kind == "cross_norm_simple":
                sup[:, idx] = (lin[:, :, 1] ** 2 + lin[:, :, 2] ** 2) ** (power / 2)
    return ex, sup


def independent_drive(excitation: np.ndarray, suppression: np.ndarray, p: CellParams,
                      suppression_scale: np.ndarray, drive_scale: np.ndarray) -> np.ndarray:
    """Combine the terms into each neuron's own drive (no interactions): (image, neuron).

    ``E / (1 + s · S / S̄) / drive_scale`` with ``S̄ = suppression_scale`` (neuron,).
    """
    safe = np.where(suppression_scale > 0, suppression_scale, 1.0)
    return excitation / (1.0 + p.suppression * suppression / safe) / drive_scale


def receptive_fields(p: CellParams, shape: tuple[int, int], config) -> np.ndarray:
    """The first (excitatory, phase-φ) linear filter of each neuron: (neuron, H, W), unit norm.

    For simple-like cells this is the linear RF; for complex cells one member of the
    quadrature pair; for OFF cells the DoG with its sign flipped (the filter they rectify).
    """
    out = np.empty((len(p), *shape))
    for kind in np.unique(p.cell_type):
        members = np.flatnonzero(p.cell_type == kind)
        for start in range(0, len(members), _BATCH):
            idx = members[start:start + _BATCH]
            out[idx] = filter_bank(p, idx, shape, config)[:, 0]
    out[p.cell_type == "off_center"] *= -1
    return out

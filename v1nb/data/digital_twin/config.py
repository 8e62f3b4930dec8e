"""Every knob of the digital twin in one frozen dataclass, and the named profiles.

Lengths that concern the image (wavelengths, RF sizes, scatter) are fractions of the image
width, so that the ``quick`` profile (smaller images) is a coarser copy of ``default``, not a
different population. Cortical lengths are in µm, times in trials.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from v1nb.data.digital_twin.cells import CELL_TYPES

NOISE_MODELS = ("poisson", "calcium")


@dataclass(frozen=True)
class TwinConfig:
    """Configuration of the digital twin (the defaults are the ``default`` profile).

    Strengths of interactions are switches too: 0 turns a mechanism off, and
    ``interactions=False`` turns all four off at once.
    """

    # --- population and trials
    n_neurons: int = 1000  #: number of neurons
    image_height: int = 36  #: stimulus rows (pixels)
    image_width: int = 64  #: stimulus columns (pixels)
    n_train: int = 4000  #: train images, one presentation each
    n_validation: int = 500  #: validation images, one presentation each
    n_test: int = 100  #: test images ...
    n_test_repeats: int = 10  #: ... each shown this many times
    n_spontaneous: int = 1000  #: blank-screen trials
    # --- stimuli
    patch_scale: tuple[float, float] = (0.15, 0.6)  #: crop size range, fraction of the largest crop
    # --- functional types (see cells.CELL_TYPES)
    cell_types: tuple[str, ...] = tuple(CELL_TYPES)  #: the ground-truth types present
    type_weights: tuple[float, ...] = (0.25, 0.2, 0.15, 0.1, 0.1, 0.2)  #: relative frequency of each type
    wavelength: float = 0.14  #: median preferred wavelength, fraction of image width
    sf_jitter: float = 0.25  #: s.d. of the log spatial frequency across neurons
    envelope: float = 0.4  #: Gabor envelope s.d. in wavelengths (RF size grows with wavelength)
    aspect: float = 1.3  #: envelope elongation along the bars
    dog_sigma: float = 0.035  #: centre s.d. of centre-surround cells, fraction of image width
    dog_surround_ratio: float = 3.0  #: surround s.d. / centre s.d.
    dog_surround_weight: float = 0.8  #: surround integral / centre integral (<1: some luminance drive)
    surround_ratio: float = 2.5  #: outer radius of the suppressive surround / envelope s.d.
    suppression: tuple[float, float] = (0.5, 2.0)  #: range of surround / cross-orientation suppression
    exponent: float = 1.5  #: output nonlinearity: rectified response ** exponent
    # --- reliability
    snr_range: tuple[float, float] = (0.04, 8.0)  #: target SNR range (log-uniform), sets each gain
    spontaneous_fraction: tuple[float, float] = (0.05, 0.4)  #: baseline / mean evoked drive range
    # --- cortex and retinotopy
    cortex_width_um: float = 800.0  #: field of view along x (µm)
    cortex_height_um: float = 500.0  #: field of view along y (µm)
    plane_depths_um: tuple[float, ...] = (200.0, 250.0, 300.0)  #: imaging planes (depth z, µm)
    retinotopy_margin: float = 0.15  #: RF centres avoid this fraction of each image border
    rf_scatter: float = 0.03  #: s.d. of RF-centre scatter around the map, fraction of image width
    # --- interactions
    interactions: bool = True  #: master switch for the four mechanisms below
    normalization: float = 0.5  #: divisive normalisation strength (median over neurons)
    normalization_radius_um: float = 60.0  #: s.d. of the normalisation pool's cortical kernel
    coupling: float = 0.2  #: lateral coupling strength
    coupling_radius_um: float = 50.0  #: s.d. of the coupling's cortical kernel
    adaptation: float = 0.3  #: adaptation strength (division by 1 + strength × recent activity)
    adaptation_tau: float = 2.0  #: adaptation kernel time constant (trials)
    state: float = 0.2  #: s.d. of the shared log-gain (behavioural state)
    state_tau: float = 50.0  #: state autocorrelation time (trials), AR(1)
    state_dims: int = 2  #: dimensions of the state (dim 0: global gain; others mixed-sign)
    # --- observation noise
    noise: str = "poisson"  #: "poisson" spike counts or "calcium" (compound Poisson + Gaussian)
    calcium_amplitude_cv: float = 0.5  #: c.v. of the per-spike calcium amplitude
    calcium_noise_sd: float = 0.3  #: s.d. of additive noise, in single-spike amplitudes

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("n_neurons", "image_height", "image_width", "n_train", "n_test"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.image_height < 8 or self.image_width < 8:
            problems.append("images must be at least 8×8 pixels")
        for name in ("n_validation", "n_spontaneous"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.n_test_repeats < 2:
            problems.append("n_test_repeats must be >= 2 (noise ceilings need repeats)")
        unknown = sorted(set(self.cell_types) - set(CELL_TYPES))
        if unknown or not self.cell_types:
            problems.append(f"cell_types {unknown or '()'} invalid; choose among {list(CELL_TYPES)}")
        if len(self.type_weights) != len(self.cell_types):
            problems.append(f"type_weights has {len(self.type_weights)} entries for "
                            f"{len(self.cell_types)} cell_types")
        if any(w < 0 for w in self.type_weights) or sum(self.type_weights) <= 0:
            problems.append("type_weights must be >= 0 with a positive sum")
        for name in ("patch_scale", "suppression", "snr_range", "spontaneous_fraction"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi):
                problems.append(f"{name}={(lo, hi)} must satisfy 0 <= low <= high")
        if not (0 < self.patch_scale[0] and self.patch_scale[1] <= 1):
            problems.append("patch_scale must lie in (0, 1]")
        if self.snr_range[0] <= 0:
            problems.append("snr_range must be positive")
        for name in ("wavelength", "envelope", "aspect", "dog_sigma", "dog_surround_ratio",
                     "surround_ratio", "exponent", "cortex_width_um", "cortex_height_um",
                     "normalization_radius_um", "coupling_radius_um", "adaptation_tau", "state_tau"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        for name in ("sf_jitter", "dog_surround_weight", "normalization", "coupling", "adaptation",
                     "state", "calcium_amplitude_cv", "calcium_noise_sd", "rf_scatter"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if not 0 <= self.retinotopy_margin < 0.5:
            problems.append("retinotopy_margin must be in [0, 0.5)")
        if not self.plane_depths_um:
            problems.append("plane_depths_um needs at least one plane")
        if self.state_dims < 1:
            problems.append("state_dims must be >= 1")
        if self.noise not in NOISE_MODELS:
            problems.append(f"noise={self.noise!r} must be one of {NOISE_MODELS}")
        if problems:
            raise ValueError("invalid twin configuration:\n  - " + "\n  - ".join(problems))

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) of the stimuli."""
        return (self.image_height, self.image_width)

    @property
    def n_images(self) -> int:
        """Unique images: train + validation + test."""
        return self.n_train + self.n_validation + self.n_test

    @property
    def n_trials(self) -> int:
        """All trials, spontaneous included."""
        return self.n_train + self.n_validation + self.n_test * self.n_test_repeats + self.n_spontaneous

    def strength(self, mechanism: str) -> float:
        """Effective strength of an interaction (0 when ``interactions`` is off)."""
        return float(getattr(self, mechanism)) if self.interactions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) for JSON provenance."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


#: Named profiles: overrides of the defaults.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(n_neurons=60, image_height=18, image_width=32, n_train=300, n_validation=50,
                  n_test=20, n_test_repeats=5, n_spontaneous=100),
    "default": {},
    # 10× the neurons over a 4× larger field of view on 2× the planes: density (and so the
    # size of the normalisation and coupling neighbourhoods) stays close to the default's.
    "large": dict(n_neurons=10_000, cortex_width_um=1600.0, cortex_height_um=1000.0,
                  plane_depths_um=(150.0, 200.0, 250.0, 300.0, 350.0, 400.0)),
}


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Return ``value`` coerced to the field's type, or raise TypeError."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple):
            raise TypeError(f"twin option {name}={value!r}: expected a tuple, got {type(value).__name__}")
        item_types = [args[0]] * len(value) if (len(args) == 2 and args[1] is Ellipsis) else list(args)
        if len(item_types) != len(value):
            raise TypeError(f"twin option {name}={value!r}: expected {len(item_types)} items")
        return tuple(_check_type(f"{name}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, item_types)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"twin option {name}={value!r}: expected a number, got {type(value).__name__}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"twin option {name}={value!r}: expected an int, got {type(value).__name__}")
        return int(value)
    if not isinstance(value, hint):
        raise TypeError(f"twin option {name}={value!r}: expected {hint.__name__}, got {type(value).__name__}")
    return value


def make_config(profile: str = "default", **overrides: Any) -> TwinConfig:
    """The configuration of a named profile with ``overrides`` applied.

    Raises
    ------
    ValueError
        Unknown profile, or unknown option name (the message lists the valid ones), or an
        invalid value.
    TypeError
        An option of the wrong type.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown twin profile {profile!r}; choose one of {list(PROFILES)}")
    hints = typing.get_type_hints(TwinConfig)
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise ValueError(f"unknown twin option(s) {unknown}; valid options: {sorted(hints)}")
    values = {**PROFILES[profile], **overrides}
    return TwinConfig(**{k: _check_type(k, v, hints[k]) for k, v in values.items()})

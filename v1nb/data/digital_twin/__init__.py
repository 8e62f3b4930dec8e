"""The digital twin: a simulated mouse V1 population with ground truth, in the v1nb schema.

>>> from v1nb.data import twin
>>> ds = twin("quick", seed=0)                      # doctest: +SKIP
>>> ds = twin("default", noise="calcium", interactions=False)  # doctest: +SKIP

What is simulated (modules of this package, one idea each):

- :mod:`~v1nb.data.stimuli`: natural-image patches from bundled photographs, category = source.
- :mod:`.cells`: six functional types defined up to orientation (simple, complex,
  surround-suppressed complex, ON / OFF centre–surround, cross-orientation-normalised simple),
  each neuron with its own orientation, phase, spatial frequency, RF size, gain and baseline.
- :mod:`.cortex`: cortical positions on a few imaging planes; RF centres from a smooth
  retinotopic map plus scatter.
- :mod:`.interactions`: divisive normalisation by a cortical pool, like-to-like lateral coupling,
  adaptation over the trial sequence, and a shared behavioural-state gain that also modulates
  spontaneous activity. Each has a strength (0 = off); ``interactions=False`` turns all off.
- :mod:`.noise`: Poisson spike counts or a calcium-like continuous signal.
- :mod:`.simulate`: trials (train / validation / test with repeats / spontaneous, randomly
  interleaved in time) and the dataset.
- :mod:`.config`: :class:`TwinConfig` (every knob) and :data:`PROFILES`.

Per-neuron SNR is set by each neuron's gain, drawn so that target SNRs are log-uniform over
``snr_range``; the realised ``true_snr`` (see :func:`.simulate.snr_from_rates`) and the
oracle correlation it implies are stored as neuron coordinates.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from v1nb.data.digital_twin.cells import CELL_TYPES
from v1nb.data.digital_twin.config import PROFILES, TwinConfig, make_config
from v1nb.data.digital_twin.simulate import (
    TwinPopulation,
    build_population,
    population_of,
    simulate,
    snr_from_rates,
    trial_rates,
    twin_population,
)

__all__ = [
    "CELL_TYPES", "PROFILES", "TwinConfig", "TwinPopulation", "build_population", "make_config",
    "population_of", "simulate", "snr_from_rates", "trial_rates", "twin", "twin_population",
]


def twin(profile: str = "default", seed: int = 0, **overrides: Any) -> xr.Dataset:
    """Simulate the digital twin and return it in the v1nb schema.

    Parameters
    ----------
    profile : {"quick", "default", "large"}
        ``quick``: 60 neurons, 18×32-pixel images, 300 / 50 / 20×5 / 100 train / validation /
        test×repeats / spontaneous trials (tests, < 2 s). ``default``: 1000 neurons, 36×64 pixels,
        4000 / 500 / 100×10 / 1000 (the book). ``large``: 10,000 neurons on a 4× larger cortical
        field of view, same trials.
    seed : int
        Same seed → identical dataset (up to the creation time in the provenance).
    **overrides
        Any :class:`TwinConfig` field, e.g. ``n_neurons=200``, ``noise="calcium"``,
        ``interactions=False``, ``adaptation=0``. Unknown names or wrong types raise an error
        listing the valid options.

    Returns
    -------
    xarray.Dataset
        Trials in presentation order (``order`` = trial index). ``responses`` (trial, neuron)
        float32; ``rates`` (trial, neuron) float32, the expected responses given the trial's
        state and history (noise-free); ``images`` (image, y, x) luminance in [0, 1] with
        ``category``. Neuron coordinates: ``cortical_x/y/z`` (µm), ``true_type``,
        ``true_orientation`` (radians in [0, π)), ``true_snr``, ``true_oracle_corr``,
        ``true_target_snr``, ``true_rf_x``, ``true_rf_y`` (pixels: column, row),
        ``true_rf_size`` (pixels), ``true_sf`` (cycles/pixel), ``true_phase`` (radians;
        orientation, sf and phase are NaN for the untuned centre–surround cells),
        ``true_gain``, ``true_baseline``, ``true_suppression``, ``true_norm_strength``,
        ``true_state_loading``.

        ``true_snr`` = Var_i(λ̄_i) / mean_{i,r}[(λ_ir − λ̄_i)² + v(λ_ir)] over the test tier
        (images i, repeats r): the variance across test images of the repeat-averaged rate,
        over the expected trial-to-trial variance around it (the rate's own variation across
        repeats, from state and adaptation, plus the observation-noise variance v; Poisson:
        v(λ) = λ). ``true_oracle_corr`` = snr / sqrt((snr + 1)(snr + 1/(R − 1))) is the
        correlation of one repeat with the mean of the other R − 1 it implies.
        ``true_target_snr`` is the SNR each gain was calibrated to on natural images.

        Attributes: ``source`` ("twin:<profile>"), ``provenance``
        (JSON: config, seed, overrides, versions), ``response_unit``.
    """
    config = make_config(profile, **overrides)
    return simulate(config, seed, profile=profile, overrides=overrides)

"""The twin put together: a population of model neurons, a trial sequence, and the dataset.

Pipeline (shapes for the default profile in brackets)::

    images (image, y, x) ──cells──▶ independent drive (image, neuron), unit mean per neuron
        ──normalisation, coupling──▶ drive ──gain, baseline──▶ image rates (image, neuron)
    trial sequence (trial,) ──index, blank = baseline──▶ (trial, neuron)
        ──× state gain, ÷ adaptation──▶ rates ──noise──▶ responses

The population is deterministic from (config, seed) and the images it is calibrated on, so it
can be rebuilt from a dataset's provenance (:func:`population_of`) to give later chapters the
true receptive fields and the true stimulus → rate map on any new image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import xarray as xr
from threadpoolctl import threadpool_limits

from v1nb.data.schema import BLANK, build_dataset, provenance_of
from v1nb.data.stimuli import natural_patches
from v1nb.data.digital_twin import cells as _cells
from v1nb.data.digital_twin import interactions as _int
from v1nb.data.digital_twin import noise as _noise
from v1nb.data.digital_twin.config import TwinConfig, make_config
from v1nb.data.digital_twin.cortex import cortical_positions, rf_centres

# Independent random streams, one per component: changing one never shifts another.
_STREAM = {"cells": 1, "stimuli": 2, "order": 3, "state": 4, "noise": 5}
# Neurons per chunk in the trial-level simulation (bounds memory for the large profile).
_CHUNK = 2048


def _rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM[stream], *more])


def _one_blas_thread() -> threadpool_limits:
    """Run the enclosed BLAS products on one thread, so the twin's bits do not depend on it.

    A threaded BLAS may partition a product (the filter bank of :func:`.cells.excitation_suppression`,
    the state gain) differently with the thread count, which changes the last bits of the rates,
    gains and SNRs; ``twin(seed=0)`` must give the same bytes under ``OMP_NUM_THREADS=1`` and ``=2``
    (the model cache fingerprints the data). One thread costs little here: the products are a
    fraction of the twin's time (default profile ~12 s either way on 2 cores). Nested uses are
    harmless (the outermost one restores the caller's setting).
    """
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class TwinPopulation:
    """The ground-truth model neurons of one twin.

    Attributes
    ----------
    config : TwinConfig
    seed : int
    cells : CellParams
        Types and tuning, each (neuron,).
    positions : (neuron, 3) array
        Cortical x, y, z in µm.
    norm_strength : (neuron,) array
        Effective divisive-normalisation strength α_n (0 when switched off).
    pool, coupling : sparse (neuron, neuron) matrices or None
        Normalisation pool P and coupling weights C (None when switched off).
    suppression_scale, drive_scale : (neuron,) arrays
        Calibration constants (means over the twin's images of S and of the drive).
    gain, baseline : (neuron,) arrays
        ``rate = baseline + gain × drive`` (expected response for the mean state, unadapted).
    target_snr : (neuron,) array
        The SNR each gain was set to reach on natural images (before state and adaptation).
    state_loadings : (neuron, state_dims) array
    reference_rate : (neuron,) array
        Mean unadapted rate on the twin's images (the scale of adaptation).
    """

    config: TwinConfig
    seed: int
    cells: _cells.CellParams
    positions: np.ndarray
    norm_strength: np.ndarray
    pool: sp.csr_matrix | None
    coupling: sp.csr_matrix | None
    suppression_scale: np.ndarray
    drive_scale: np.ndarray
    gain: np.ndarray
    baseline: np.ndarray
    target_snr: np.ndarray
    state_loadings: np.ndarray
    reference_rate: np.ndarray

    @property
    def n_neurons(self) -> int:
        return len(self.cells)

    def drive(self, images: np.ndarray, interactions: bool = True) -> np.ndarray:
        """Drive of every neuron on ``images`` (k, y, x) in [0, 1]: (k, neuron) float64, >= 0.

        With ``interactions=False`` the independent-neuron model (no normalisation pool, no
        coupling); otherwise the configured image-level interactions are applied.
        """
        images = self._check_images(images)
        with _one_blas_thread():
            ex, sup = _cells.excitation_suppression(self.cells, images, self.config)
            d = _cells.independent_drive(ex, sup, self.cells, self.suppression_scale, self.drive_scale)
            return self._interact(d) if interactions else d

    def rates(self, images: np.ndarray, interactions: bool = True) -> np.ndarray:
        """Expected responses to ``images`` for the mean state, without adaptation: (k, neuron)."""
        return self.baseline + self.gain * self.drive(images, interactions)

    def receptive_fields(self) -> np.ndarray:
        """The excitatory linear filter of each neuron, (neuron, y, x), unit norm (see cells)."""
        return _cells.receptive_fields(self.cells, self.config.image_shape, self.config)

    def _interact(self, d: np.ndarray) -> np.ndarray:
        if self.pool is not None:
            d = _int.divisive_normalization(d, self.pool, self.norm_strength)
        if self.coupling is not None:
            d = _int.lateral_coupling(d, self.coupling, self.config.strength("coupling"))
        return d

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != self.config.image_shape:
            raise ValueError(f"images must have shape (k, {self.config.image_height}, "
                             f"{self.config.image_width}), got {images.shape}")
        return images


def _solve_gain(snr: np.ndarray, mean: np.ndarray, var: np.ndarray, spont: np.ndarray,
                config: TwinConfig) -> np.ndarray:
    """Gain g with ``g² var / noise(g) = snr``, noise(g) the observation variance at the mean rate.

    The mean rate is ``g (spont + mean)``; noise(g) = c1 g + c0 (Poisson: c1 = spont + mean,
    c0 = 0; calcium: c1 = (spont + mean)(1 + a²), c0 = σ²).
    """
    var = np.maximum(var, 1e-12)
    c1 = spont + mean
    c0 = 0.0
    if config.noise == "calcium":
        c1 = c1 * (1 + config.calcium_amplitude_cv**2)
        c0 = config.calcium_noise_sd**2
    return (snr * c1 + np.sqrt((snr * c1) ** 2 + 4 * var * snr * c0)) / (2 * var)


def build_population(config: TwinConfig, seed: int, images: np.ndarray) -> TwinPopulation:
    """Draw the neurons and calibrate them on ``images`` (image, y, x).

    Random draws never depend on the interaction switches, so a twin with interactions off has
    exactly the same neurons as one with them on.
    """
    return _build(config, seed, images)[0]


def _build(config: TwinConfig, seed: int, images: np.ndarray) -> tuple[TwinPopulation, np.ndarray]:
    """:func:`build_population` plus the population's rates on ``images`` (image, neuron)."""
    with _one_blas_thread():
        return _build_unthreaded(config, seed, images)


def _build_unthreaded(config: TwinConfig, seed: int, images: np.ndarray) -> tuple[TwinPopulation, np.ndarray]:
    rng = _rng(seed, "cells")
    n = config.n_neurons
    positions = cortical_positions(config, rng)
    rf_x, rf_y = rf_centres(positions[:, :2], config, rng)
    cells = _cells.draw_cells(config, rf_x, rf_y, rng)
    norm_spread = rng.uniform(0.5, 1.5, size=n)
    loadings = _int.state_loadings(n, config.state_dims, rng)
    lo, hi = config.snr_range
    target_snr = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
    spont = rng.uniform(*config.spontaneous_fraction, size=n)

    ex, sup = _cells.excitation_suppression(cells, images, config)
    suppression_scale = sup.mean(axis=0)
    raw = _cells.independent_drive(ex, sup, cells, suppression_scale, np.ones(n))
    del ex, sup  # (image, neuron) each: free them before the interactions (large profile)
    drive_scale = np.maximum(raw.mean(axis=0), 1e-12)
    alpha = config.strength("normalization")
    pop = TwinPopulation(
        config=config, seed=seed, cells=cells, positions=positions,
        norm_strength=alpha * norm_spread,
        pool=_int.normalization_pool(positions, config.normalization_radius_um) if alpha > 0 else None,
        coupling=(_int.coupling_matrix(positions, cells.orientation, cells.cell_type, config.coupling_radius_um)
                  if config.strength("coupling") > 0 else None),
        suppression_scale=suppression_scale, drive_scale=drive_scale,
        gain=np.ones(n), baseline=np.zeros(n), target_snr=target_snr,
        state_loadings=loadings, reference_rate=np.ones(n),
    )
    drive = pop._interact(raw / drive_scale)
    mean, var = drive.mean(axis=0), drive.var(axis=0)
    pop.gain = _solve_gain(target_snr, mean, var, spont, config)
    pop.baseline = spont * pop.gain
    pop.reference_rate = pop.baseline + pop.gain * mean
    return pop, pop.baseline + pop.gain * drive


def schedule(config: TwinConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All trials in presentation order, tiers randomly interleaved.

    Image ids: train ``0 … n_train−1``, then validation, then test (each shown
    ``n_test_repeats`` times); spontaneous trials are blank (−1).

    Returns
    -------
    image_id : (trial,) int64
    tier : (trial,) object array of str
    """
    c = config
    first_val, first_test = c.n_train, c.n_train + c.n_validation
    ids = np.concatenate([np.arange(c.n_train), first_val + np.arange(c.n_validation),
                          np.repeat(first_test + np.arange(c.n_test), c.n_test_repeats),
                          np.full(c.n_spontaneous, BLANK)]).astype(np.int64)
    tier = np.repeat(np.array(["train", "validation", "test", "spontaneous"], dtype=object),
                     [c.n_train, c.n_validation, c.n_test * c.n_test_repeats, c.n_spontaneous])
    perm = rng.permutation(len(ids))
    return ids[perm], tier[perm]


def trial_rates(pop: TwinPopulation, image_rates: np.ndarray, image_id: np.ndarray,
                state: np.ndarray | None, neurons: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Expected responses (trial, neuron) of a trial sequence, for the neurons selected.

    Parameters
    ----------
    image_rates : (image, neuron) array
        Output of :meth:`TwinPopulation.rates` on the images that ``image_id`` indexes.
    image_id : (trial,) int array in presentation order (−1 = blank, rate = baseline)
    state : (trial, state_dims) array or None
        The behavioural-state trajectory (None or a zero strength: no state gain).
    neurons : which neurons (columns) to simulate

    Returns
    -------
    (trial, len(neurons)) float64
    """
    cfg = pop.config
    blank = image_id < 0
    r = image_rates[np.where(blank, 0, image_id)][:, neurons]
    r[blank] = pop.baseline[neurons]
    sd = cfg.strength("state")
    if state is not None and sd > 0:
        r *= _int.state_gain(state, pop.state_loadings[neurons], sd)
    gamma = cfg.strength("adaptation")
    if gamma > 0:
        r = _int.adapt(r, gamma, cfg.adaptation_tau, pop.reference_rate[neurons])
    return r


def snr_from_rates(test_rates: np.ndarray, config: TwinConfig) -> tuple[np.ndarray, np.ndarray]:
    """True SNR and the oracle correlation it implies, from noise-free test rates.

    Parameters
    ----------
    test_rates : (image, repeat, neuron) expected responses of the test trials

    Returns
    -------
    snr : (neuron,)
        ``Var_i(λ̄_i) / mean_{i,r}[(λ_ir − λ̄_i)² + v(λ_ir)]``: the variance across test images of
        the repeat-averaged rate over the expected trial-to-trial variance around it, which is the
        rate's own fluctuation across repeats (state, adaptation) plus the observation-noise
        variance ``v`` (Poisson: λ). Variances are population variances (ddof 0).
    oracle : (neuron,)
        Expected correlation of one trial with the mean of the other R − 1 repeats:
        ``snr / sqrt((snr + 1)(snr + 1/(R − 1)))``.
    """
    mean = test_rates.mean(axis=1)
    signal = mean.var(axis=0)
    noise = ((test_rates - mean[:, None]) ** 2 + _noise.variance(test_rates, config)).mean(axis=(0, 1))
    snr = signal / np.maximum(noise, 1e-12)
    r = test_rates.shape[1]
    return snr, snr / np.sqrt((snr + 1) * (snr + 1 / (r - 1)))


def simulate(config: TwinConfig, seed: int, profile: str = "custom",
             overrides: dict[str, Any] | None = None) -> xr.Dataset:
    """Run the twin for a configuration: the dataset (see :func:`v1nb.data.digital_twin.twin`).

    Every BLAS product inside (stimuli, filter bank, state gain) runs on one thread, so the bytes
    depend on (config, seed) only, not on ``OMP_NUM_THREADS`` (see :func:`_one_blas_thread`).
    """
    seed = check_seed(seed)
    with _one_blas_thread():
        return _simulate(config, seed, profile, overrides)


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or a ValueError naming it: twins take a non-negative integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative int")
    return int(seed)


def _simulate(config: TwinConfig, seed: int, profile: str, overrides: dict[str, Any] | None) -> xr.Dataset:
    from v1nb.provenance import provenance

    images, category = natural_patches(config.n_images, config.image_shape, _rng(seed, "stimuli"),
                                       scale=config.patch_scale)
    pop, image_rates = _build(config, seed, images)
    image_id, tier = schedule(config, _rng(seed, "order"))
    state = _int.state_trajectory(len(image_id), config.state_dims, config.state_tau, _rng(seed, "state"))

    n, t = config.n_neurons, len(image_id)
    rates = np.empty((t, n), dtype=np.float32)
    responses = np.empty((t, n), dtype=np.float32)
    test_rows = _test_rows(image_id, tier, config)
    snr, oracle = np.empty(n), np.empty(n)
    for k, start in enumerate(range(0, n, _CHUNK)):
        cols = slice(start, min(start + _CHUNK, n))
        r = trial_rates(pop, image_rates, image_id, state, cols)
        rates[:, cols] = r
        responses[:, cols] = _noise.sample(r, config, _rng(seed, "noise", k))
        snr[cols], oracle[cols] = snr_from_rates(r[test_rows], config)

    c = pop.cells
    neuron_coords = {
        "cortical_x": pop.positions[:, 0], "cortical_y": pop.positions[:, 1], "cortical_z": pop.positions[:, 2],
        "true_type": c.cell_type, "true_orientation": c.orientation, "true_snr": snr,
        "true_rf_x": c.rf_x, "true_rf_y": c.rf_y, "true_oracle_corr": oracle,
        "true_target_snr": pop.target_snr, "true_sf": c.sf, "true_phase": c.phase,
        "true_rf_size": c.sigma, "true_gain": pop.gain, "true_baseline": pop.baseline,
        "true_suppression": c.suppression, "true_norm_strength": pop.norm_strength,
        "true_state_loading": pop.state_loadings[:, 0],
    }
    return build_dataset(
        responses, image_id=image_id, tier=tier, images=images, order=np.arange(t),
        neuron_coords=neuron_coords, image_coords={"category": category},
        data_vars={"rates": (("trial", "neuron"), rates)},
        source=f"twin:{profile}",
        provenance=provenance(generator="v1nb.data.digital_twin", profile=profile, seed=seed,
                              overrides=dict(overrides or {}), config=config.to_dict()),
        attrs={"response_unit": _noise.UNITS[config.noise], "trial_averaged": 0},
    )


def _test_rows(image_id: np.ndarray, tier: np.ndarray, config: TwinConfig) -> np.ndarray:
    """(test image, repeat) → trial index, repeats in presentation order."""
    test = np.flatnonzero(tier == "test")
    ordered = test[np.argsort(image_id[test], kind="stable")]
    return ordered.reshape(config.n_test, config.n_test_repeats)


def twin_population(profile: str = "default", seed: int = 0, **overrides: Any) -> tuple[TwinPopulation, np.ndarray]:
    """Rebuild the ground-truth population of ``twin(profile, seed, **overrides)``.

    Returns
    -------
    population : TwinPopulation
    images : (image, y, x) float32
        The twin's stimuli (the population is calibrated on them).
    """
    config = make_config(profile, **overrides)
    with _one_blas_thread():  # as in simulate: the same images and neurons whatever the threads
        images, _ = natural_patches(config.n_images, config.image_shape, _rng(int(seed), "stimuli"),
                                    scale=config.patch_scale)
        return build_population(config, int(seed), images), images


def population_of(ds: xr.Dataset) -> TwinPopulation:
    """The ground-truth population behind a twin dataset, rebuilt from its provenance."""
    prov = provenance_of(ds)
    if prov.get("generator") != "v1nb.data.digital_twin":
        raise ValueError(f"dataset {ds.attrs.get('source')!r} is not a twin dataset (no twin provenance)")
    pop, _ = twin_population("default", prov["seed"], **prov["config"])
    return pop

"""Observation noise: from expected responses (rates) to measured responses.

``poisson``
    Spike counts, ``y ~ Poisson(λ)``; noise variance ``λ``.
``calcium``
    A calcium-like continuous signal: ``k ~ Poisson(λ)`` spikes, each adding an amplitude drawn
    from a Gamma distribution of mean 1 and c.v. ``a`` (so their sum is Gamma(k / a², a²)),
    plus Gaussian noise of s.d. ``σ``. The mean is still ``λ`` (rates stay the expected
    responses), the variance ``λ (1 + a²) + σ²``; values can be negative, as in dF/F.
"""

from __future__ import annotations

import numpy as np

#: Unit of the responses for each noise model (the dataset's ``response_unit``).
UNITS = {"poisson": "spike count",
         "calcium": "calcium-like a.u. (mean = expected spike count)"}


def sample(rates: np.ndarray, config, rng: np.random.Generator) -> np.ndarray:
    """Draw responses with expectation ``rates`` (any shape, >= 0); float32, same shape."""
    counts = rng.poisson(rates)
    if config.noise == "poisson":
        return counts.astype(np.float32)
    cv2 = config.calcium_amplitude_cv**2
    signal = rng.gamma(counts / cv2, cv2) if cv2 > 0 else counts.astype(float)
    return (signal + config.calcium_noise_sd * rng.standard_normal(rates.shape)).astype(np.float32)


def variance(rates: np.ndarray, config) -> np.ndarray:
    """The observation-noise variance of a response with expectation ``rates``."""
    if config.noise == "poisson":
        return np.asarray(rates, dtype=float)
    return rates * (1.0 + config.calcium_amplitude_cv**2) + config.calcium_noise_sd**2

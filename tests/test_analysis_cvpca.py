"""cvPCA: planted power-law spectra are recovered; inputs are checked."""

import numpy as np
import pytest

from v1nb.analysis import cvpca, cvpca_spectrum, fit_power_law
from v1nb.data import build_dataset


def planted_repeats(alpha: float, n_images: int = 2000, n_neurons: int = 800, noise: float = 0.5, seed: int = 0):
    """Two repeats of a signal with eigenspectrum k^-alpha in a random basis, plus independent noise."""
    rng = np.random.default_rng(seed)
    lam = np.arange(1, n_neurons + 1, dtype=float) ** -alpha
    basis, _ = np.linalg.qr(rng.normal(size=(n_neurons, n_neurons)))
    signal = (rng.normal(size=(n_images, n_neurons)) * np.sqrt(lam)) @ basis.T
    scale = noise * np.sqrt(lam.sum() / n_neurons)
    return (signal + scale * rng.normal(size=signal.shape), signal + scale * rng.normal(size=signal.shape))


@pytest.mark.parametrize("alpha", [1.0, 1.5])
def test_planted_power_law_recovered(alpha):
    result = cvpca(planted_repeats(alpha), fit_range=(2, 100))
    assert abs(result.alpha - alpha) <= 0.05
    spectrum = result.spectrum.values
    assert spectrum[0] > spectrum[9] > spectrum[99] > 0


def test_noise_only_has_no_signal():
    rng = np.random.default_rng(1)
    rep0, rep1 = rng.normal(size=(2, 500, 200))
    result = cvpca((rep0, rep1), fit_range=(1, 50))
    # Independent repeats share nothing: the cross-validated variance is ~0 of the total.
    assert abs(result.signal_fraction) < 0.05


def test_power_law_fit_is_exact_on_a_power_law():
    ranks = np.arange(1, 501)
    alpha, intercept = fit_power_law(3.0 * ranks ** -1.23, (11, 500))
    assert alpha == pytest.approx(1.23, abs=1e-10)
    assert intercept == pytest.approx(np.log(3.0), abs=1e-10)


def test_dataset_input_and_shuffles_agree_with_arrays():
    rep0, rep1 = planted_repeats(1.0, n_images=300, n_neurons=100, seed=2)
    n_img = len(rep0)
    responses = np.concatenate([rep0, rep1])
    ds = build_dataset(responses, image_id=np.tile(np.arange(n_img), 2), tier="test",
                       images=np.zeros((n_img, 4, 4)), source="synthetic")
    from_ds = cvpca(ds, fit_range=(2, 50))
    from_arrays = cvpca((rep0, rep1), fit_range=(2, 50))
    np.testing.assert_allclose(from_ds.spectrum.values, from_arrays.spectrum.values, rtol=1e-5, atol=1e-6)
    shuffled = cvpca(ds, fit_range=(2, 50), n_shuffles=4, random_state=0)
    assert abs(shuffled.alpha - from_ds.alpha) < 0.1
    assert shuffled.spectrum.values.tolist() == cvpca(ds, fit_range=(2, 50), n_shuffles=4, random_state=0).spectrum.values.tolist()


@pytest.mark.parametrize("shape", [(60, 40), (30, 40)])  # covariance path, Gram path
def test_spectrum_matches_svd_reference(shape):
    rng = np.random.default_rng(3)
    rep0, rep1 = rng.normal(size=(2, *shape)) + rng.normal(size=shape)
    x0, x1 = rep0 - rep0.mean(axis=0), rep1 - rep0.mean(axis=0)
    _, _, vt = np.linalg.svd(x0, full_matrices=False)
    reference = ((x0 @ vt[:10].T) * (x1 @ vt[:10].T)).sum(axis=0)
    np.testing.assert_allclose(cvpca_spectrum(rep0, rep1, 10), reference, rtol=1e-6, atol=1e-8)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="rep0 and rep1"):
        cvpca((np.zeros((5, 3)), np.zeros((4, 3))))
    with pytest.raises(ValueError, match="n_components"):
        cvpca_spectrum(np.zeros((5, 3)), np.zeros((5, 3)), n_components=10)
    with pytest.raises(ValueError, match="fit_range"):
        fit_power_law(np.ones(10), (8, 9))


# ---------------------------------------------------------------------------------------------
# The reference convention (issue 14.13): Stringer et al.'s python/utils.py, transcribed here
# from its formulas (MouseLand/stringer-pachitariu-et-al-2018b: cvPCA, get_powerlaw)
# ---------------------------------------------------------------------------------------------

def reference_cvpca(X: np.ndarray) -> np.ndarray:
    """X (2, stimuli, neurons). Axes: scikit-learn PCA with the neurons as samples (so each
    stimulus is centred across neurons); projections of the raw repeats onto X0ᵀ v_k / s_k."""
    from sklearn.decomposition import PCA

    # min(1024, stimuli) in the reference, which needs neurons ≥ stimuli; capped here to also run otherwise
    pca = PCA(n_components=min(1024, X.shape[1], X.shape[2])).fit(X[0].T)
    axes = X[0].T @ (pca.components_.T / pca.singular_values_)
    return ((X[0] @ axes) * (X[1] @ axes)).sum(axis=0)


def reference_powerlaw(ss: np.ndarray, trange: np.ndarray) -> float:
    """Weighted fit of log|ss| on −log(rank) over 0-based indices ``trange``; returns α."""
    y = np.log(np.abs(ss))[trange][:, None]
    ranks = trange + 1
    x = np.column_stack([-np.log(ranks), np.ones(ranks.size)])
    w = 1.0 / ranks.astype(np.float32)[:, None]
    return float(np.linalg.solve(x.T @ (x * w), (w * x).T @ y).ravel()[0])


def non_centred_repeats(n_images: int = 120, n_neurons: int = 300, seed: int = 4):
    """Planted power law plus large per-neuron and per-image offsets (neither axis centred)."""
    rep0, rep1 = planted_repeats(1.0, n_images=n_images, n_neurons=n_neurons, seed=seed)
    rng = np.random.default_rng(seed + 1)
    offset = 3.0 * rng.gamma(2.0, size=(1, n_neurons)) + 2.0 * rng.normal(size=(n_images, 1))
    return rep0 + offset, rep1 + offset


def test_reference_convention_reproduces_stringer_cvpca_and_alpha():
    rep0, rep1 = non_centred_repeats()
    expected = reference_cvpca(np.stack([rep0, rep1]))  # min(1024, 120) = 120 components
    got = cvpca((rep0, rep1), fit_range=(12, 60), convention="reference")
    n = got.spectrum.sizes["component"]
    assert n == min(rep0.shape[0], rep0.shape[1] - 1) == 120
    np.testing.assert_allclose(got.spectrum.values, expected[:n], rtol=1e-7,
                               atol=1e-9 * np.abs(expected).max())
    # the notebook's get_powerlaw(ss / ss.sum(), np.arange(11, 60)): 0-based, i.e. ranks 12..60
    assert got.alpha == pytest.approx(reference_powerlaw(expected / expected.sum(), np.arange(11, 60)), abs=1e-6)
    assert got.convention == "reference"


def test_conventions_differ_on_non_centred_input_and_agree_on_double_centred():
    rep0, rep1 = non_centred_repeats()
    ours = cvpca_spectrum(rep0, rep1, 50)
    ref = cvpca_spectrum(rep0, rep1, 50, convention="reference")
    assert np.max(np.abs(ours - ref) / np.abs(ref).max()) > 0.01  # the option matters here
    # centre rep0 over images (each neuron) and over neurons (each image) → identical spectra
    shift = rep0.mean(axis=0, keepdims=True) + rep0.mean(axis=1, keepdims=True) - rep0.mean()
    c0, c1 = rep0 - shift, rep1 - shift
    np.testing.assert_allclose(cvpca_spectrum(c0, c1, 50), cvpca_spectrum(c0, c1, 50, convention="reference"),
                               rtol=1e-7, atol=1e-9 * np.abs(ours).max())


def test_reference_convention_gram_and_covariance_paths_agree():
    rep0, rep1 = non_centred_repeats(n_images=80, n_neurons=60)  # more images than neurons
    expected = reference_cvpca(np.stack([rep0, rep1]))[:59]  # rank ≤ neurons − 1 after centring
    np.testing.assert_allclose(cvpca_spectrum(rep0, rep1, convention="reference"), expected,
                               rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_unknown_convention_is_named():
    with pytest.raises(ValueError, match=r"convention='sklearn'.*'v1nb', 'reference'"):
        cvpca_spectrum(np.ones((5, 3)), np.ones((5, 3)), convention="sklearn")

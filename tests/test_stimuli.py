"""Stimuli: natural-image patches from the bundled photographs, and gratings."""

import numpy as np
import pytest

from v1nb.data.stimuli import GRAY, SOURCES, gratings, natural_patches


def test_patches_are_deterministic_with_categories():
    a, cat_a = natural_patches(120, (18, 32), 0)
    b, cat_b = natural_patches(120, (18, 32), 0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cat_a, cat_b)
    assert a.shape == (120, 18, 32) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert set(cat_a) <= set(SOURCES) and len(set(cat_a)) >= 10
    c, _ = natural_patches(120, (18, 32), 1)
    assert not np.array_equal(a, c)
    # patches of natural images have structure, not flat fields
    assert np.median(a.std(axis=(1, 2))) > 0.03


@pytest.mark.parametrize("category", sorted(SOURCES))
def test_every_source_loads_offline(category):
    images, cats = natural_patches(3, (36, 64), 0, categories=(category,))
    assert set(cats) == {category}
    assert np.all(np.isfinite(images)) and images.shape == (3, 36, 64)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown image categories.*astronaut"):
        natural_patches(2, (18, 32), 0, categories=("logo",))
    with pytest.raises(ValueError, match="scale"):
        natural_patches(2, (18, 32), 0, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="shape"):
        natural_patches(2, (2, 32), 0)


def test_grating_orientation_convention():
    horizontal, vertical = gratings((12, 20), [0.0, np.pi / 2], 0.1)
    # θ = 0: horizontal bars, constant along each row; θ = π/2: vertical bars
    assert np.allclose(horizontal, horizontal[:, :1]) and not np.allclose(horizontal, horizontal[:1])
    assert np.allclose(vertical, vertical[:1]) and not np.allclose(vertical, vertical[:, :1])
    half = gratings((12, 20), 0.3, 0.1, contrast=0.5)
    assert half.shape == (1, 12, 20)
    assert np.isclose(half.max(), GRAY * 1.5, atol=0.02) and np.isclose(half.min(), GRAY * 0.5, atol=0.02)

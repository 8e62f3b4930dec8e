"""Split-half reliability of each neuron's responses to repeated images.

The convention reproduces the values quoted for the Antolik et al. 2016 data (median over
neurons 0.644 / 0.492 / 0.645 for regions 1 / 2 / 3; see ``../shared/data/MANIFEST.md``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from v1nb.data.views import repeat_array


def split_half_reliability(ds: xr.Dataset, tier: str = "test", spearman_brown: bool = False) -> xr.DataArray:
    """Correlation across images between the means of the even and of the odd repeats, per neuron.

    For every neuron, the responses to each image of ``tier`` are averaged over repeats 0, 2, 4, ...
    and over repeats 1, 3, 5, ...; the split-half reliability is the Pearson correlation of these
    two (n_images,) vectors. With ``spearman_brown=False`` (default) the value is *not* corrected
    to the full number of repeats; this is the convention behind the Antolik medians above
    (a first-half/second-half split gives 0.56 / 0.50 / 0.56 instead, so the split matters).

    Parameters
    ----------
    ds : xarray.Dataset
        A schema dataset whose ``tier`` shows images at least twice (see
        :func:`v1nb.data.views.repeat_array`, which keeps the first common number of repeats).
    tier : str
        The tier with repeats (default ``"test"``).
    spearman_brown : bool
        Correct to the reliability of the mean of all repeats: ``2r / (1 + r)``.

    Returns
    -------
    xarray.DataArray (neuron,)
        NaN for a neuron whose half-means do not vary across images.
    """
    arr = repeat_array(ds, tier)  # (image, repeat, neuron)
    x = arr.values.astype(np.float64)
    even, odd = np.nanmean(x[:, 0::2], axis=1), np.nanmean(x[:, 1::2], axis=1)
    even -= even.mean(0)
    odd -= odd.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (even * odd).sum(0) / np.sqrt((even**2).sum(0) * (odd**2).sum(0))
        if spearman_brown:
            r = 2 * r / (1 + r)
    neuron_coords = {k: v for k, v in arr.coords.items() if v.dims == ("neuron",)}
    return xr.DataArray(r, dims=("neuron",), coords=neuron_coords, name="split_half_reliability",
                        attrs={"tier": tier, "n_images": arr.sizes["image"], "n_repeats": arr.sizes["repeat"],
                               "spearman_brown": int(spearman_brown)})

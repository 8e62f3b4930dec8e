"""Stringer et al. (2019) preprocessing: normalise by spontaneous activity and remove its subspace.

Ongoing (spontaneous) activity in mouse V1 is high-dimensional and partly shared with
behaviour; it adds trial-to-trial variability along a few dominant dimensions. Stringer's
reference code z-scores each neuron with the mean and standard deviation of its spontaneous
activity and projects the responses out of the top 32 principal components of the spontaneous
activity before cvPCA and decoding.

The one implementation is :func:`v1nb.data.formats.stringer.subtract_spontaneous_subspace`
(also applied by the Stringer loader with ``preprocess=True``); :func:`stringer_normalize` is its
name among the analyses.
"""

from __future__ import annotations

from v1nb.data.formats.stringer import subtract_spontaneous_subspace as stringer_normalize

__all__ = ["stringer_normalize"]

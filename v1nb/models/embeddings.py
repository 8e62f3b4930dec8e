"""Working with readout embeddings: flattening, rotation invariance, 2-D projection.

The embedding of a neuron is its readout feature vector ``w_n``
(:meth:`~v1nb.models.model.ResponseModel.embeddings`). For the rotation-equivariant core it is a
``(rotation, feature)`` matrix, and two neurons of the same type that prefer different
orientations have embeddings that are cyclic shifts of each other along the rotation axis; the
magnitude of the discrete Fourier transform over that axis removes the shift.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def _neuron_coords(emb: xr.DataArray) -> dict:
    return {k: c for k, c in emb.coords.items() if c.dims == ("neuron",)}


def flatten(emb: xr.DataArray) -> xr.DataArray:
    """``(neuron, ...)`` → ``(neuron, feature)``, keeping the neuron coordinates."""
    values = emb.values.reshape(emb.sizes["neuron"], -1)
    return xr.DataArray(values, dims=("neuron", "feature"), coords=_neuron_coords(emb), name=emb.name)


def rotation_invariant(emb: xr.DataArray) -> xr.DataArray:
    """Shift-invariant features of a ``(neuron, rotation, feature)`` embedding.

    Returns
    -------
    DataArray (neuron, feature)
        ``|DFT over rotation|`` for frequencies 0..R/2 of every feature, flattened. A cyclic shift of
        ``w_n`` along the rotation axis leaves it unchanged.
    """
    if "rotation" not in emb.dims:
        raise ValueError(f"embedding has no 'rotation' dimension (dims {emb.dims}): only the "
                         "rotation-equivariant core's embeddings have one")
    w = emb.transpose("neuron", "rotation", "feature").values
    spectrum = np.abs(np.fft.rfft(w, axis=1))  # (neuron, R//2 + 1, feature)
    return xr.DataArray(spectrum.reshape(len(w), -1), dims=("neuron", "feature"), coords=_neuron_coords(emb),
                        name="rotation_invariant_embedding")


def project_2d(emb: xr.DataArray, random_state: int = 0) -> xr.DataArray:
    """First two principal components of the (flattened, unit-norm per neuron) embeddings.

    Returns
    -------
    DataArray (neuron, component) with components ``pc1``, ``pc2`` and the neuron coordinates.
    """
    from sklearn.decomposition import PCA

    x = flatten(emb).values.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pcs = PCA(n_components=2, random_state=random_state).fit_transform(x)
    return xr.DataArray(pcs, dims=("neuron", "component"),
                        coords={**_neuron_coords(emb), "component": ["pc1", "pc2"]}, name="projection")

"""Which neurons a stage lets interact: each neuron's K nearest others on the cortical surface.

Interactions in cortex are local (the twin's pool and coupling kernels have s.d. 50–60 µm), so
the stages restrict every neuron to its K nearest neighbours. That keeps memory and time linear in
the number of neurons (``B × N × K`` instead of ``B × N²``), which is what lets attention run over
8,000 neurons on a CPU.

Neighbours are chosen on the first two axes of the (standardised) positions — the cortical
surface. Depth is left out of the choice on purpose: a recording has only a few imaging planes,
so after per-axis standardisation one plane step is ~1.2 s.d. of depth, far larger in these units
than the same distance in µm within a plane; choosing in 3-D would keep only same-plane
neighbours. The stages still see the full 3-D offset of every pair (with a learned scale per axis).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def neighbour_index(positions: torch.Tensor | None, n_neurons: int, k: int) -> torch.Tensor:
    """Index of each neuron's ``k`` nearest other neurons, ``(N, K)`` int64, nearest first.

    Parameters
    ----------
    positions : tensor (N, 3) or None
        Standardised cortical positions; None (no positions): neighbours by index order, which
        keeps the stage usable (all pairs when ``k >= N − 1``).
    n_neurons : int
    k : int
        Neighbours per neuron (clipped to ``N − 1``).

    Raises
    ------
    ValueError
        If ``k < 1`` or the population has a single neuron.
    """
    if k < 1:
        raise ValueError(f"neighbours={k} must be >= 1")
    if n_neurons < 2:
        raise ValueError(f"an interaction stage needs at least 2 neurons, got {n_neurons}")
    k = min(int(k), n_neurons - 1)
    if positions is None:
        base = np.arange(n_neurons)[:, None] + np.arange(1, k + 1)[None]
        return torch.from_numpy(base % n_neurons).long()
    xy = positions[:, :2].detach().cpu().double().numpy()
    # ties (identical positions) are broken by index: cKDTree is deterministic for a given input
    _, index = cKDTree(xy).query(xy, k=k + 1)
    index = np.asarray(index).reshape(n_neurons, k + 1)
    out = np.empty((n_neurons, k), np.int64)
    for n in range(n_neurons):  # drop the neuron itself wherever it landed (duplicates of a position)
        row = index[n][index[n] != n]
        out[n] = row[:k]
    return torch.from_numpy(out)


def pair_offsets(positions: torch.Tensor | None, neighbours: torch.Tensor) -> torch.Tensor:
    """``(N, K, 3)`` offsets ``x_m − x_n`` of every neuron to its neighbours (zeros without positions)."""
    n, k = neighbours.shape
    if positions is None:
        return torch.zeros(n, k, 3)
    p = positions.float()
    return p[neighbours] - p[:, None, :]


def gather_neighbours(values: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """``(B, N) → (B, N, K)``: each neuron's neighbours' values."""
    return values[:, neighbours]

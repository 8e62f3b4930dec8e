"""Divisive normalisation across neurons (after Burg et al. 2021), as an interaction stage.

With ``d_n = ELU(drive_n + offset) + 1 > 0`` the readout's rate, the stage outputs

    r_n = d_n^{p_n} / (1 + Σ_m W_nm d_m^{p_m} / σ_n^{p_n})
        = σ_n^{p_n} · d_n^{p_n} / (σ_n^{p_n} + Σ_m W_nm d_m^{p_m}),

the normalisation model ``d^p / (σ^p + Σ W d^p)`` of Burg et al. times the gain ``σ_n^{p_n}``, so
that with an empty pool (``W = 0``) and ``p = 1`` the stage is the identity: a fine-tune from a
plain model starts exactly from it. Each neighbour enters the pool with its *own* exponent
``p_m``: then ``d^p`` is computed once per neuron and gathered, instead of raising the
``B × N × K`` neighbour activities to every target's exponent (measured 3–4× cheaper per step on
CPU; with a shared exponent the two are the same). Up to :data:`DENSE_MAX_NEURONS` neurons the
pool is scattered into a dense ``N × N`` matrix and applied as one matrix product
``d^p W^T``: on CPU that is several times faster than gathering the ``B × N × K`` neighbour
activities (``bench/normalisation_training.py``; 1,000 neurons, batch 128, 96 neighbours), which is
what makes a pool of 96 neighbours affordable when it is trained jointly with the core. Larger
populations gather (memory ``B × N × K`` instead of ``N²``); both compute the same sum. Exponent ``p_n > 0`` and semi-saturation ``σ_n > 0`` are per
neuron (log-parametrised, starting at 1). The pool ``W ≥ 0`` runs over each neuron's K nearest
neighbours on the cortical surface (:mod:`.neighbours`) and is, by ``norm_pool``:

``"distance"`` (default)
    ``W_nm = |a| · g_nm / Σ_m' g_nm'`` with ``g_nm = exp(−½ Σ_axis (Δx_axis / s_axis)²) ·
    exp(b · cos(e_n, e_m))``: a row-normalised Gaussian of the cortical offset with a learned
    length per axis (like the twin's pool), modulated by the cosine similarity of the two neurons'
    readout embeddings ``e`` (b learned, starting at 0). Five parameters for the whole pool; the
    pool's total weight ``|a|`` starts at 10⁻³ (an almost empty pool) and is linear in its
    parameter, so Adam moves it by about the learning rate per step (a log-parametrised weight
    would need ~1,000 steps to grow from 10⁻³ to the twin's 0.5).
``"free"``
    ``W_nm = |w_nm|``, one free weight per neighbour pair (``N × K`` parameters, starting at
    10⁻³ / K), with an L1 penalty ``norm_l1 · Σ W``.

The twin's pool (:func:`v1nb.data.digital_twin.interactions.divisive_normalization`) is
``d_n (1 + α_n) / (1 + α_n Σ_m P_nm d_m)`` with P a row-normalised Gaussian of cortical distance:
the ``p = 1`` case, with ``W = α_n P / σ_n``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from v1nb.models.context import Context
from v1nb.models.interactions.neighbours import neighbour_index, pair_offsets
from v1nb.models.registry import INTERACTIONS

POOLS = ("distance", "free")
#: Largest population whose pool is applied as a dense ``N × N`` matrix (64 MB in float32 at 4,096).
DENSE_MAX_NEURONS = 4096


class DivisiveNormalisation(nn.Module):
    """``(B, N)`` drive → ``(B, N)`` positive rates normalised by a learned pool of neighbours.

    Parameters
    ----------
    n_neurons : int
    positions : tensor (N, 3), optional
        Standardised cortical positions.
    pool : {"distance", "free"}
    neighbours : int
        K, neighbours per neuron in the pool.
    elu_offset : float
        The network's output offset (``d = ELU(drive + offset) + 1``).
    l1 : float
        Weight of the L1 penalty on a free pool.
    """

    outputs_rates = True
    history_lags = 0

    def __init__(self, n_neurons: int, positions: torch.Tensor | None = None, pool: str = "distance",
                 neighbours: int = 96, elu_offset: float = 0.0, l1: float = 0.0):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"norm_pool={pool!r} must be one of {POOLS}")
        self.pool, self.elu_offset, self.l1 = pool, float(elu_offset), float(l1)
        index = neighbour_index(positions, n_neurons, neighbours)
        self.register_buffer("neighbours", index)
        self.register_buffer("offsets", pair_offsets(positions, index))
        self.dense = n_neurons <= DENSE_MAX_NEURONS
        self.log_exponent = nn.Parameter(torch.zeros(n_neurons))
        self.log_sigma = nn.Parameter(torch.zeros(n_neurons))
        if pool == "distance":
            self.amplitude = nn.Parameter(torch.tensor(1e-3))
            self.log_length = nn.Parameter(torch.zeros(3))  # one s.d. of each standardised axis
            self.similarity = nn.Parameter(torch.tensor(0.0))
        else:
            self.free_weights = nn.Parameter(torch.full(tuple(index.shape), 1e-3 / index.shape[1]))

    def weights(self, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The pool ``W`` over each neuron's neighbours, ``(N, K)`` (index: :attr:`neighbours`)."""
        if self.pool == "free":
            return self.free_weights.abs()
        scaled = self.offsets / self.log_length.exp()
        log_g = -0.5 * (scaled ** 2).sum(-1)  # (N, K)
        if embedding is not None:
            e = F.normalize(embedding.float(), dim=1)
            log_g = log_g + self.similarity * (e[:, None, :] * e[self.neighbours]).sum(-1)
        return self.amplitude.abs() * torch.softmax(log_g, dim=1)  # rows: g / Σ g, stable

    def forward(self, drive: torch.Tensor, context: Context) -> torch.Tensor:
        d = F.elu(drive + self.elu_offset) + 1.0
        p = self.log_exponent.exp()
        dp = d.clamp_min(1e-6) ** p  # (B, N)
        w = self.weights(context.embedding)  # (N, K)
        n = dp.shape[1]
        if self.dense:
            # row n's neighbours as flat positions n·N + m of the dense matrix, derived from the saved
            # neighbour index on every call (never kept beside it: a model loaded from the cache must
            # use the index it was trained with). scatter's backward is a gather of N·K entries; the
            # product runs as one GEMM.
            flat = (torch.arange(n, device=w.device)[:, None] * n + self.neighbours).reshape(-1)
            pool = torch.zeros(n * n, dtype=w.dtype, device=w.device).scatter(0, flat, w.reshape(-1))
            pooled = dp @ pool.view(n, n).T
        else:
            # index_select: its backward is an index_add (fast on CPU), unlike advanced indexing's scatter
            nbr = self.neighbours
            dm = torch.index_select(dp, 1, nbr.reshape(-1)).reshape(dp.shape[0], *nbr.shape)  # (B, N, K)
            pooled = (dm * w[None]).sum(-1)
        return dp / (1.0 + pooled / self.log_sigma.exp() ** p)

    def regularizer(self) -> torch.Tensor:
        if self.pool == "free" and self.l1 > 0:
            return self.l1 * self.free_weights.abs().sum()
        return self.log_exponent.sum() * 0.0


@INTERACTIONS.register("normalisation", settings=("elu_offset",),
                       extra_settings={"norm_pool": "distance", "norm_neighbours": 96, "norm_l1": 0.0})
def build_normalisation(config, n_neurons: int, embedding_dim: int, positions: torch.Tensor | None):
    return DivisiveNormalisation(n_neurons, positions, pool=config.get("norm_pool"),
                                 neighbours=config.get("norm_neighbours"), elu_offset=config.elu_offset,
                                 l1=config.get("norm_l1"))

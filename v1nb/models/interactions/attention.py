"""Self-attention across neurons: each neuron's drive updated by the drives of the neurons it attends to.

One token per neuron and stimulus, ``t_{b,n} = [e_n, PE(x_n), d_{b,n}]``: the neuron's readout
embedding ``e_n``, a Fourier positional encoding of its standardised cortical position
(``sin / cos(2^f · π/2 · x_axis)``, f = 0..F−1, for each axis) and its drive on stimulus b. Each
of H heads projects tokens linearly to queries and keys of dimension D and attends over the
neuron's K nearest neighbours on the cortical surface (:mod:`.neighbours`)::

    a^h_{b,n,m} = softmax_m( q^h_{b,n} · k^h_{b,m} / √D − ½ Σ_axis (Δx_{nm,axis} / ℓ^h_axis)² )
    out_{b,n}   = d_{b,n} + α_n Σ_h β_h Σ_m (a^h_{b,n,m} − 1/K) d_{b,m}

(a learned Gaussian distance bias per head). The values are the neighbours' drives, and the
weights are taken relative to uniform attention (``a − 1/K``), so one head already expresses
signed interactions: neighbours attended more than average excite, those attended less suppress
(like-to-like coupling is both). ``α_n`` starts at 0: training starts from the plain model. The
output is pre-nonlinearity (the network applies ``ELU + 1``).

The token is linear in the drive, so the query–key product splits into a static part
``q_s · k_s`` and parts linear in the neighbour's and in the neuron's own drive; the product of the
two drives' terms (``q_d · k_d d_n d_m``, one scalar per head) is left out, which saves a full
``B × H × N × K`` product per step. Only ``B × H × N × K`` logits are formed, and with
``attention_chunk`` > 0 they are formed ``chunk`` neurons at a time under activation checkpointing
(recomputed in the backward pass), so memory is ``B × H × chunk × K``: this is what scales to
8,000 neurons on a CPU (``bench/interactions.py``). Measured (one thread, 1,000 neurons, batch
128, forward + backward): the cost grows linearly with K and H, so the defaults are H = 1,
K = 48.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from v1nb.models.context import Context
from v1nb.models.interactions.neighbours import neighbour_index, pair_offsets
from v1nb.models.registry import INTERACTIONS


def positional_encoding(positions: torch.Tensor | None, n_neurons: int, frequencies: int) -> torch.Tensor:
    """Fourier features of positions ``(N, 3) → (N, 6F)`` (zeros without positions)."""
    if positions is None or frequencies == 0:
        return torch.zeros(n_neurons, 6 * frequencies)
    scales = (2.0 ** torch.arange(frequencies, dtype=torch.float32)) * (math.pi / 2)
    angles = positions.float()[:, :, None] * scales  # (N, 3, F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).reshape(n_neurons, -1)


class NeighbourAttention(nn.Module):
    """``(B, N)`` drive → ``(B, N)`` drive plus an attention update over each neuron's K neighbours.

    Parameters
    ----------
    n_neurons, embedding_dim : int
    positions : tensor (N, 3), optional
        Standardised cortical positions.
    neighbours : int
        K (clipped to N − 1).
    heads, dim : int
        H heads with queries and keys of dimension D.
    frequencies : int
        F, frequencies of the positional encoding per axis.
    chunk : int
        Neurons per chunk of the logits under checkpointing (0: all at once).
    """

    history_lags = 0

    def __init__(self, n_neurons: int, embedding_dim: int, positions: torch.Tensor | None = None,
                 neighbours: int = 48, heads: int = 1, dim: int = 8, frequencies: int = 4, chunk: int = 0):
        super().__init__()
        for name, value, low in (("attention_heads", heads, 1), ("attention_dim", dim, 1),
                                 ("attention_frequencies", frequencies, 0), ("attention_chunk", chunk, 0)):
            if value < low:
                raise ValueError(f"{name}={value} must be >= {low}")
        self.heads, self.dim, self.chunk = int(heads), int(dim), int(chunk)
        index = neighbour_index(positions, n_neurons, neighbours)
        self.register_buffer("neighbours", index)
        self.register_buffer("offsets", pair_offsets(positions, index))
        self.register_buffer("encoding", positional_encoding(positions, n_neurons, frequencies))
        static = embedding_dim + self.encoding.shape[1]
        self.query = nn.Linear(static, heads * dim)
        self.key = nn.Linear(static, heads * dim)
        self.query_drive = nn.Parameter(torch.randn(heads, dim) / math.sqrt(dim))
        self.key_drive = nn.Parameter(torch.randn(heads, dim) / math.sqrt(dim))
        self.log_length = nn.Parameter(torch.full((heads, 3), math.log(0.5)))
        self.mix = nn.Parameter(torch.ones(heads))  # β_h
        self.alpha = nn.Parameter(torch.zeros(n_neurons))  # α_n = 0: the plain model at the start

    # ------------------------------------------------------------------ pieces of the logits
    def _static(self, embedding: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        n = self.neighbours.shape[0]
        e = embedding.float() if embedding is not None else torch.zeros(n, self.query.in_features
                                                                         - self.encoding.shape[1])
        tokens = torch.cat([e, self.encoding], dim=1)
        qs = self.query(tokens).reshape(n, self.heads, self.dim).transpose(0, 1)  # (H, N, D)
        ks = self.key(tokens).reshape(n, self.heads, self.dim).transpose(0, 1)
        return qs, ks

    def _neighbour_drives(self, drive: torch.Tensor, rows: slice) -> torch.Tensor:
        """``(B, n, K)`` drives of the neighbours of the neurons in ``rows`` (index_select: its backward
        is an index_add, much faster on CPU than the accumulate-scatter of advanced indexing)."""
        nbr = self.neighbours[rows]
        return torch.index_select(drive, 1, nbr.reshape(-1)).reshape(drive.shape[0], *nbr.shape)

    def _logits(self, drive: torch.Tensor, qs: torch.Tensor, ks: torch.Tensor, rows: slice,
                d_m: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, H, n_rows, K)`` of the neurons in ``rows`` (``d_m``: their neighbours' drives, if at hand)."""
        nbr = self.neighbours[rows]  # (n, K)
        scale = 1.0 / math.sqrt(self.dim)
        q = qs[:, rows]  # (H, n, D)
        k_nbr = ks[:, nbr]  # (H, n, K, D)
        offsets = self.offsets[rows][None] / self.log_length.exp()[:, None, None, :]  # (H, n, K, 3)
        # everything that does not depend on the stimulus, once per call: (H, n, K)
        static = scale * (q[:, :, None, :] * k_nbr).sum(-1) - 0.5 * (offsets ** 2).sum(-1)
        a = scale * (q * self.key_drive[:, None, :]).sum(-1)  # (H, n): coefficient of the neighbour's drive
        b = scale * (self.query_drive[:, None, None, :] * k_nbr).sum(-1)  # (H, n, K): of the neuron's own drive
        d_n = drive[:, rows]  # (B, n)
        d_m = self._neighbour_drives(drive, rows) if d_m is None else d_m  # (B, n, K)
        logits = static[None] + b[None] * d_n[:, None, :, None]
        return torch.addcmul(logits, a[None, :, :, None], d_m[:, None])

    def _update(self, drive: torch.Tensor, qs: torch.Tensor, ks: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        rows = slice(start, stop)
        d_m = self._neighbour_drives(drive, rows)  # (B, n, K)
        weights = torch.softmax(self._logits(drive, qs, ks, rows, d_m), dim=-1)  # (B, H, n, K)
        mixed = weights[:, 0] * self.mix[0] if self.heads == 1 else (weights * self.mix[None, :, None, None]).sum(1)
        # relative to uniform attention: Σ_m (a − 1/K) d_m, signed with one head
        return (mixed * d_m).sum(-1) - self.mix.sum() * d_m.mean(-1)  # (B, n)

    # ------------------------------------------------------------------------ public
    def forward(self, drive: torch.Tensor, context: Context) -> torch.Tensor:
        qs, ks = self._static(context.embedding)
        n = drive.shape[1]
        step = self.chunk if 0 < self.chunk < n else n
        parts = []
        for start in range(0, n, step):
            stop = min(start + step, n)
            if step < n and torch.is_grad_enabled():
                parts.append(checkpoint(self._update, drive, qs, ks, start, stop, use_reentrant=False))
            else:
                parts.append(self._update(drive, qs, ks, start, stop))
        update = torch.cat(parts, dim=1)
        return drive + self.alpha * update

    def attention(self, drive: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights per stimulus ``(B, H, N, K)`` over :attr:`neighbours` (rows sum to 1)."""
        qs, ks = self._static(embedding)
        return torch.softmax(self._logits(drive, qs, ks, slice(None)), dim=-1)

    def effective_weights(self, drive: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Signed weight of each neighbour's drive in the output, ``α_n Σ_h β_h (a^h − 1/K)``: ``(B, N, K)``."""
        weights = self.attention(drive, embedding) - 1.0 / self.neighbours.shape[1]
        return self.alpha[None, :, None] * (weights * self.mix[None, :, None, None]).sum(1)

    def regularizer(self) -> torch.Tensor:
        return self.alpha.sum() * 0.0


@INTERACTIONS.register("attention", extra_settings={"attention_neighbours": 48, "attention_heads": 1,
                                                    "attention_dim": 8, "attention_frequencies": 4,
                                                    "attention_chunk": 0})
def build_attention(config, n_neurons: int, embedding_dim: int, positions: torch.Tensor | None):
    return NeighbourAttention(n_neurons, embedding_dim, positions, neighbours=config.get("attention_neighbours"),
                              heads=config.get("attention_heads"), dim=config.get("attention_dim"),
                              frequencies=config.get("attention_frequencies"), chunk=config.get("attention_chunk"))

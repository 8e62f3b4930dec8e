"""Divisive normalisation over time: each neuron divided by its own recent predicted activity.

Zhou et al. (2019)'s delayed normalisation, discretised over trials. With ``d_{t,n} = ELU(drive +
offset) + 1`` the feed-forward rate on trial t and ``h_{t−k,n}`` the model's **own** feed-forward
predictions on the k-th earlier trial in presentation order (``context.history``; never observed
responses), the stage outputs

    r_{t,n} = d_{t,n} / (1 + γ_n Σ_{k=1..L} v_k h_{t−k,n}),

with a temporal kernel ``v_k = |u_k| ≥ 0`` over the L lags, shared by all neurons (its shape is the
question, so every neuron's data inform it), and a per-neuron strength ``γ_n = |g_n| ≥ 0``
starting at 10⁻³ (a fine-tune starts from the plain model). Both are linear in their parameters,
so Adam moves them by about the learning rate per step and a lag that does not help can reach 0
(a softmax kernel keeps a floor on such lags: its logits get almost no gradient). The kernel starts
flat (``v_k = 1/L``); :meth:`TemporalNormalisation.kernel` reports it normalised, ``w = v / Σ v``,
and :meth:`~TemporalNormalisation.strength` the per-neuron ``γ_n Σ_k v_k``.

The twin's adaptation (:func:`v1nb.data.digital_twin.interactions.adapt`) is
``r_t = u_t / (1 + γ a_t / r̄_n)`` with ``a_t = (1 − ρ) Σ_k ρ^{k−1} r_{t−k}``, ``ρ = e^{−1/τ}``:
the same form with ``w_k ∝ ρ^{k−1}`` and ``γ_n = γ / r̄_n``. :func:`v1nb.analysis.interactions.
kernel_time_constant` fits ``τ`` to the learned ``w``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from v1nb.models.context import Context
from v1nb.models.registry import INTERACTIONS


class TemporalNormalisation(nn.Module):
    """``(B, N)`` drive + own predictions on the L earlier trials → ``(B, N)`` positive rates.

    Parameters
    ----------
    n_neurons : int
    lags : int
        L, earlier trials read (``history_lags``).
    elu_offset : float
    """

    outputs_rates = True

    def __init__(self, n_neurons: int, lags: int = 8, elu_offset: float = 0.0):
        super().__init__()
        if lags < 1:
            raise ValueError(f"temporal_lags={lags} must be >= 1")
        self.history_lags = int(lags)
        self.elu_offset = float(elu_offset)
        self.raw_kernel = nn.Parameter(torch.full((self.history_lags,), 1.0 / self.history_lags))
        self.raw_strength = nn.Parameter(torch.full((n_neurons,), 1e-3))

    def kernel(self) -> torch.Tensor:
        """The temporal kernel ``w = v / Σ v`` over lags 1..L, ``(L,)``, non-negative, summing to 1."""
        v = self.raw_kernel.abs()
        return v / v.sum().clamp_min(1e-12)

    def strength(self) -> torch.Tensor:
        """Per-neuron strength ``γ_n Σ_k v_k`` ``(N,)`` (per unit of the model's scaled rate)."""
        return self.raw_strength.abs() * self.raw_kernel.abs().sum()

    def forward(self, drive: torch.Tensor, context: Context) -> torch.Tensor:
        d = F.elu(drive + self.elu_offset) + 1.0
        if context.history is None:  # no sequence (predict_images): as on the first trial of a session
            return d
        recent = torch.einsum("bln,l->bn", context.history.to(d.dtype), self.raw_kernel.abs())
        return d / (1.0 + self.raw_strength.abs() * recent)

    def regularizer(self) -> torch.Tensor:
        return self.raw_kernel.sum() * 0.0


@INTERACTIONS.register("temporal", settings=("elu_offset",), extra_settings={"temporal_lags": 8})
def build_temporal(config, n_neurons: int, embedding_dim: int, positions: torch.Tensor | None):
    return TemporalNormalisation(n_neurons, lags=config.get("temporal_lags"), elu_offset=config.elu_offset)

"""What a network sees beyond the image: :class:`Context`.

A plain core–readout model predicts each trial from its image alone. Interaction stages
(:data:`v1nb.models.registry.INTERACTIONS`) may also use

- ``trial``: each batch item's position in the presentation sequence (index into the dataset's
  trial axis, which the schema keeps in presentation order);
- ``history``: the model's **own** earlier predictions, ``(B, L, N)`` for lags 1..L (row ``k − 1``
  is the prediction for trial ``t − k``; zeros before the first trial). These are the network's
  feed-forward predictions (core → readout → output nonlinearity, without the interaction stage)
  for every trial of the sequence, blank trials included (predicted from a mean-luminance image),
  recomputed by the trainer at the start of every epoch and held fixed within it. They never
  contain observed responses;
- ``positions``: each neuron's cortical position ``(N, 3)``, standardised per axis;
- ``embedding``: the readout embeddings ``(N, D)`` (filled in by the network).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Context:
    """Per-batch side information for :meth:`v1nb.models.network.CoreReadout.forward` (all optional).

    Attributes
    ----------
    trial : tensor (B,) int64, optional
        Position of each item in the presentation sequence.
    history : tensor (B, L, N), optional
        The model's own feed-forward predictions for trials ``t−1 .. t−L`` (scaled units).
    positions : tensor (N, 3), optional
        Standardised cortical positions.
    embedding : tensor (N, D), optional
        Readout embeddings (set by the network before the interaction stage).
    """

    trial: torch.Tensor | None = None
    history: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    embedding: torch.Tensor | None = None

    def with_(self, **changes) -> "Context":
        return replace(self, **changes)


class History:
    """The model's feed-forward predictions for the whole sequence, and lagged look-ups into it.

    Parameters
    ----------
    predictions : tensor (T, N)
        Prediction for every trial of the recording, in presentation order (detached).
    """

    def __init__(self, predictions: torch.Tensor):
        self.predictions = predictions.detach()

    def lagged(self, trial: torch.Tensor, lags: int) -> torch.Tensor:
        """``(B, lags, N)``: row ``k − 1`` holds the prediction for trial ``t − k`` (zeros before the start).

        Parameters
        ----------
        trial : tensor (B,) int64
        lags : int
        """
        T, N = self.predictions.shape
        index = trial[:, None] - torch.arange(1, lags + 1, device=trial.device)[None]  # (B, L)
        valid = index >= 0
        out = self.predictions[index.clamp_min(0).cpu()].to(trial.device if trial.is_cuda else "cpu")
        return out * valid[..., None].to(out.dtype)

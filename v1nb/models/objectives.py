"""What training minimises: a sum of named terms, each logged per epoch.

The default objective is ``[PredictionLoss(), Regularisation()]``:

    L = √(N_train / B) · Σ_batch ℓ(ŷ, y) + Σ penalties(core, readout, stage),

with ℓ the Poisson negative log-likelihood ``ŷ − y log(ŷ + 1e-8)`` (or the squared error), exactly
the Sinz-lab trainer. A caller adds terms (``fit(..., terms=[...])``): the DEC clustering term of
the embeddings chapters is one (β · KL(P‖Q) on the readout embeddings). A term is an object with

``name``
    Key of its per-epoch sum in ``history_["epochs"][e]["loss_<name>"]``.
``loss(batch, trainer) -> scalar tensor``
    Its value on one batch (already weighted).
``spec() -> dict``
    Everything that changes what it computes (enters the cache key of a fit).
``on_fit_start(trainer)``, ``on_epoch_start(trainer)``, ``on_step_end(trainer)``
    Hooks (optional): e.g. k-means initialisation of a clustering head, a target update every
    T steps, an EM step after each optimiser step.

The :class:`Trainer` handed to ``loss`` and the hooks exposes the network, the data, the
optimiser, the step and epoch counters and :meth:`Trainer.embeddings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from v1nb.models.training import Trainer


@dataclass
class Batch:
    """One optimisation step's inputs and outputs.

    Attributes
    ----------
    rates : tensor (B, N)
        The network's predictions (scaled units).
    targets : tensor (B, N)
        Observed responses (scaled; NaN = missing).
    index : tensor (B,)
        Rows of the training arrays (``data.train_*``) in this batch.
    n_train : int
        Training trials in all.
    """

    rates: torch.Tensor
    targets: torch.Tensor
    index: torch.Tensor
    n_train: int


def poisson_loss(rates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ (ŷ − y log(ŷ + 1e-8)) over observed entries (NaN targets are skipped)."""
    observed = ~torch.isnan(targets)
    y = torch.where(observed, targets, torch.zeros_like(targets))
    return torch.where(observed, rates - y * torch.log(rates + 1e-8), torch.zeros_like(rates)).sum()


def mse_loss(rates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ (ŷ − y)² over observed entries."""
    observed = ~torch.isnan(targets)
    return torch.where(observed, rates - torch.nan_to_num(targets), torch.zeros_like(rates)).pow(2).sum()


LOSSES = {"poisson": poisson_loss, "mse": mse_loss}


class Term:
    """Base class of an objective term (see the module docstring). Subclasses set ``name`` and ``loss``."""

    name = "term"

    def loss(self, batch: Batch, trainer: "Trainer") -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """The term's class and its public, JSON-able attributes (what enters a cache key)."""
        params = {k: v for k, v in vars(self).items()
                  if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None), tuple, list))}
        return {"term": type(self).__name__, "name": self.name, **params}

    def on_fit_start(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_start(self, trainer: "Trainer") -> None:
        pass

    def on_step_end(self, trainer: "Trainer") -> None:
        pass


class PredictionLoss(Term):
    """``√(N_train / B) · Σ ℓ(ŷ, y)``: the batch loss scaled to the size of the training set.

    Parameters
    ----------
    loss : {"poisson", "mse"}
    """

    name = "prediction"

    def __init__(self, loss: str = "poisson"):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} must be one of {tuple(LOSSES)}")
        self.loss_name = loss

    def loss(self, batch: Batch, trainer: "Trainer") -> torch.Tensor:
        scale = math.sqrt(batch.n_train / len(batch.index))
        return scale * LOSSES[self.loss_name](batch.rates, batch.targets)


class Regularisation(Term):
    """The network's own penalties: ``network.regularizer()`` (core, readout and stage)."""

    name = "regularisation"

    def loss(self, batch: Batch, trainer: "Trainer") -> torch.Tensor:
        return trainer.network.regularizer()


def default_terms(loss: str) -> list[Term]:
    """``[PredictionLoss(loss), Regularisation()]``."""
    return [PredictionLoss(loss), Regularisation()]


def check_terms(terms: list[Term]) -> list[Term]:
    """Raise if a term lacks the interface or two terms share a name."""
    names = []
    for term in terms:
        for attr in ("name", "loss", "spec"):
            if not hasattr(term, attr):
                raise TypeError(f"objective term {term!r} has no {attr!r} (see v1nb.models.objectives.Term)")
        names.append(term.name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"objective terms share the name(s) {dupes}: each term's name must be unique")
    return terms

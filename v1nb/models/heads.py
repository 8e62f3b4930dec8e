"""Clustering heads on the readout embeddings: registry lines for :mod:`v1nb.cluster.head`.

The head is a submodule of the network (``network.head``), so its centres, scales, weights and
stored target are saved with the model, restored with the best state at early stopping and
reloaded from the cache. It adds nothing to the forward pass; an objective term (the DEC term of
the embeddings chapters) trains it jointly with the prediction loss.
"""

from __future__ import annotations

from typing import Sequence

from v1nb.cluster.head import DECHead, RotationMarginalisedDECHead
from v1nb.models.registry import HEADS

_DEC_SETTINGS = {"n_clusters": 6, "dec_alpha": 1.0, "dec_learn_scales": True, "dec_learn_weights": True,
                 "dec_update_interval": 40, "dec_covariance": "diagonal"}


@HEADS.register("dec", extra_settings=_DEC_SETTINGS)
def build_dec(config, embedding_shape: Sequence[int]) -> DECHead:
    """A :class:`DECHead` (Student-t mixture with per-cluster diagonal or full scales, and weights) on flat embeddings.

    Parameters
    ----------
    embedding_shape : (D,) or (R, F)
        Shape of one neuron's embedding; a rotation embedding is flattened.
    """
    d = 1
    for size in embedding_shape:
        d *= int(size)
    return DECHead(config.get("n_clusters"), d, alpha=config.get("dec_alpha"),
                   learn_scales=config.get("dec_learn_scales"), learn_weights=config.get("dec_learn_weights"),
                   update_interval=config.get("dec_update_interval"), covariance=config.get("dec_covariance"))


@HEADS.register("dec_rotation", extra_settings=_DEC_SETTINGS)
def build_dec_rotation(config, embedding_shape: Sequence[int]) -> RotationMarginalisedDECHead:
    """A :class:`RotationMarginalisedDECHead`: the kernel averaged over the R cyclic shifts of ``(R, F)`` embeddings."""
    if len(embedding_shape) != 2:
        raise ValueError(f"head='dec_rotation' needs (rotation, feature) embeddings (core='rotation'), "
                         f"got embeddings of shape {tuple(embedding_shape)}")
    R, F = (int(s) for s in embedding_shape)
    return RotationMarginalisedDECHead(config.get("n_clusters"), R, F, alpha=config.get("dec_alpha"),
                                       learn_scales=config.get("dec_learn_scales"),
                                       learn_weights=config.get("dec_learn_weights"),
                                       update_interval=config.get("dec_update_interval"),
                                       covariance=config.get("dec_covariance"))

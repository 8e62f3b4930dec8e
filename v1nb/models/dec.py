"""DEC fine-tuning of a response model: a clustering loss on the readout embeddings.

A pre-trained core–readout model's per-neuron readout vectors ``w_n`` are its neuronal embeddings.
Fine-tuning adds the Deep Embedded Clustering loss (Xie et al. 2016) in the DECEMber recipe (Nellen,
Turishcheva et al., NeurIPS 2025) to the model's own objective:

    L = L_prediction + L_regularisation + β_e · √(N_train / B) · B · Σ_n KL(p_n ‖ q_n),

where, on the unit-normalised embeddings z_n = w_n / ‖w_n‖ (see *Normalisation*),

    q_nj ∝ π_j ∏_d σ_jd⁻¹ (1 + m_nj² / α)^{−(α+1)/2},   m_nj² = Σ_d (z_nd − μ_jd)² / σ_jd²

is the Student-t soft assignment of neuron n to cluster j with per-cluster diagonal scales σ_j and
weights π_j (:class:`v1nb.cluster.head.DECHead`, the network's ``head``), and

    p_nj = (q_nj² / f_j) / Σ_j' (q_nj'² / f_j'),   f_j = Σ_n q_nj

is the sharpened target, recomputed from all neurons every T optimiser steps
(``dec_update_interval``) and held fixed in between. The factor √(N_train/B)·B puts the KL on the
scale of the prediction loss (√(N_train/B) · Σ over B trials and N neurons of the Poisson loss), so
β weighs the mean KL per neuron against the mean Poisson loss per neuron and trial.

The clustering phase starts at the start of the fine-tune (:meth:`DECTerm.on_fit_start`): a
partition of the parent's embeddings gives the centres — k-means with ``n_init`` restarts (the
recipe, ``init="kmeans"``), a full-covariance Gaussian mixture (``"gmm"``, ``n_init`` restarts) or
spectral clustering (``"spectral"``) — and ``init_em`` EM steps of the Student-t mixture then fit
scales and weights before the first target is computed (with σ = 1 on unit vectors the kernel is
almost flat and the first target would be nearly uniform). After
every optimiser step one EM step (:meth:`DECHead.em_update`) moves centres, scales and weights to
the current embeddings (:meth:`DECTerm.on_step_end`). β ramps up linearly over ``warmup`` epochs:
β_e = β · min(1, e / warmup) in epoch e = 1, 2, ... (``warmup=0``: full β from the first epoch).

Kernel
    The head's kernel (1 + m²/α)^{−(α+1)/2} with per-cluster scales is a proper density in D
    dimensions only when α + 1 > D: it is then a multivariate Student-t with ν = α + 1 − D degrees
    of freedom (and scales rescaled by √(α/ν)). DEC's α = 1 is improper in D = 16: its EM updates
    make the kernels flat, every responsibility tends to 1/K and the clusters merge into one
    (measured on 600 unit vectors in 6 planted anisotropic clusters, D = 16: after 300 EM steps ARI
    0 at α = 1, 0.96 / 0.76 at α = 16 and 0.96 / 0.83 at α = 100, against k-means' 0.92 / 0.64 at
    noise 1.0 / 1.5). The default here is α = D (ν = 1, the heaviest proper tails).

Modes (:func:`finetune_dec`)
    * joint, core trained (``joint=True, core_trainable=True``): prediction + regularisation + DEC,
      ``trainable="all"``;
    * joint, core frozen (``core_trainable=False``): the same objective, ``trainable="no_core"``
      (readout and head train; the core keeps its weights and batch-norm statistics);
    * DEC-only (``joint=False``): the DEC term alone, ``trainable="readout+head"`` — plain DEC on the
      readout embeddings, the ablation that shows what the prediction loss protects. With Adam the
      DEC-only result does not depend on β > 0 (Adam's steps are invariant to a constant scale of the
      loss), only on the learning rate and the number of steps.

Rotation-equivariant core (embeddings ``(R, F)`` per neuron, rotation-major): ``rotation=`` chooses
    * ``"marginalise"``: :class:`v1nb.cluster.head.RotationMarginalisedDECHead` (head
      ``"dec_rotation"``), whose kernel averages over the R cyclic shifts of each embedding;
    * ``"align"``: each neuron's embedding is rolled once, at the start, by its shift from
      shift-invariant k-means (:class:`v1nb.cluster.rotation.RotationInvariantClustering`,
      ``method="align"``) and the aligned, flattened embeddings are clustered by the plain head;
    * ``"ignore"``: the plain head on the flattened ``R·F`` embedding.

Scales: diagonal or full (``covariance``)
    The recipe's mixture has a diagonal scale per cluster. On readout embeddings that is the
    limiting choice, not the initialisation: on the default twin's CNN embeddings (three seeds,
    K = 6) 20 EM steps of the diagonal mixture take a k-means, GMM or spectral partition (ARI 0.17 /
    0.39 / 0.44 to the true types) to the same k-means-like partition (ARI 0.16), while the mixture
    with a full scale matrix per cluster (:class:`v1nb.cluster.head.DECHead`, ``covariance="full"``)
    keeps the good ones. The recipe stays the default of :func:`dec_job`; the chapters choose.

Normalisation
    ``normalise=True`` (the default) clusters directions: z_n = w_n / ‖w_n‖. A readout vector's
    length is the neuron's gain (set by firing rate and signal-to-noise), not its type — the issue's
    baseline clustered unit-normalised embeddings, and :func:`v1nb.models.cross_seed_ari` does too.
    On the unit sphere the DEC gradient moves only the direction, so the prediction loss keeps the
    gain it needs. A cyclic shift keeps the norm, so normalising commutes with rotation.

Every fine-tune is a :func:`v1nb.models.fit` call with ``parent=`` the pre-trained model,
``early_stopping=False`` (the last weights of the fixed schedule are the result: a restored best
validation state could be the parent itself) and the DEC term in ``terms``, so it is cached under a
key made of the parent's key, the term's :meth:`~DECTerm.spec` and the settings; the head
(centres, scales, weights, target) is saved with it. :func:`finetune_dec_many` runs several in
parallel (:func:`v1nb.models.fit_many`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from v1nb.models.model import ResponseModel
from v1nb.models.objectives import Batch, PredictionLoss, Regularisation, Term

ROTATION_MODES = ("ignore", "marginalise", "align")
#: Partitions that start the clustering phase (:class:`DECTerm` ``init``).
INITS = ("kmeans", "gmm", "spectral")
#: Default α of a full-covariance head. With α = D (the diagonal head's default, ν = 1) the full
#: mixture collapses during fine-tuning (default twin, CNN, three seeds, K = 6, frozen core, GMM
#: start: ARI to the true types 0.07, cross-seed ARI 0.08); at α = 100 and 1,000 it keeps the
#: partition (0.40 / 0.39, cross-seed 0.67 / 0.66): close to Gaussian tails.
FULL_COVARIANCE_ALPHA = 100.0


def initial_partition(x: np.ndarray, k: int, init: str = "kmeans", random_state: int = 0,
                      n_init: int = 20) -> np.ndarray:
    """The partition (N,) a fine-tune starts from: ``init`` of the head's input rows ``x`` (N, D).

    ``"kmeans"`` (``n_init`` restarts), ``"gmm"`` (full covariance, ``n_init`` restarts) or
    ``"spectral"`` (kNN graph, :func:`v1nb.cluster.embedding_clustering.cluster_labels`). A partition
    may leave a cluster empty (:meth:`v1nb.cluster.head.DECHead.init_from_labels` refills it).
    """
    if init not in INITS:
        raise ValueError(f"init={init!r} must be one of {INITS}")
    if init == "kmeans":
        from v1nb.cluster.head import kmeans_start

        return kmeans_start(x, k, n_init, random_state).labels_.astype(np.intp)
    if init == "gmm":
        from v1nb.cluster import GMMClustering

        return GMMClustering(k, covariance_type="full", n_init=n_init, random_state=random_state).fit(x).labels_
    from v1nb.cluster.embedding_clustering import cluster_labels

    return cluster_labels(x, "spectral", k, random_state=random_state)


def start_head(head, z: torch.Tensor, init: str = "kmeans", random_state: int = 0, n_init: int = 20) -> np.ndarray:
    """Set the head's centres from the ``init`` partition of its input ``z`` (N, D) or (N, R, F).

    ``"kmeans"`` keeps the recipe's k-means centres (:meth:`DECHead.init_centres`; shift-invariant
    k-means for the rotation head); ``"gmm"`` / ``"spectral"`` take the members' means of that
    partition (:func:`initial_partition`, :meth:`DECHead.init_from_labels`). Returns the labels (N,).
    What a fine-tune (:class:`DECTerm`) and :func:`v1nb.cluster.dec_answers.em_drift` both start from.
    """
    from v1nb.cluster.head import RotationMarginalisedDECHead

    if init == "kmeans":
        return head.init_centres(z, n_init=n_init, random_state=random_state)
    if isinstance(head, RotationMarginalisedDECHead):
        raise ValueError(f"init={init!r}: the rotation-marginalised head starts from shift-invariant "
                         "k-means only (init='kmeans')")
    x = z.reshape(z.shape[0], -1).detach().cpu().double().numpy()
    return head.init_from_labels(z, initial_partition(x, head.n_clusters, init, random_state, n_init))


def _embedding_shape(network, n_channels: int) -> tuple[int, ...]:
    from v1nb.models.network import embedding_layout

    return tuple(embedding_layout(network.core, n_channels)[1])


def normalise_rows(w: torch.Tensor) -> torch.Tensor:
    """Each row (one neuron's flattened embedding) scaled to unit Euclidean length; shape as ``w`` (N, C)."""
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def alignment_shifts(z: np.ndarray, n_clusters: int, n_init: int = 20, random_state: int = 0) -> np.ndarray:
    """Per-neuron cyclic shifts that align rotation embeddings (shift-invariant k-means).

    Parameters
    ----------
    z : array (N, R, F)
        Embeddings (already normalised if the clustering is).
    n_clusters : int
    n_init : int
        Restarts.
    random_state : int

    Returns
    -------
    array (N,) int
        s_n such that ``roll(z_n, −s_n, axis=0)`` is aligned with its cluster's template
        (:func:`v1nb.cluster.rotation.unroll`).
    """
    from v1nb.cluster.rotation import RotationInvariantClustering

    ric = RotationInvariantClustering(n_clusters, method="align", n_init=n_init, normalize=False,
                                      random_state=random_state).fit(np.asarray(z, dtype=np.float64))
    return ric.shifts_.astype(np.int64)


def _unroll_torch(z: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """out[n] = roll(z[n], −shifts[n], axis=0) for z (N, R, F) (differentiable)."""
    n, R = z.shape[0], z.shape[1]
    idx = (torch.arange(R, device=z.device)[None, :] + shifts[:, None].to(z.device)) % R
    return z[torch.arange(n, device=z.device)[:, None], idx]


@torch.no_grad()
def init_mixture(head, z: torch.Tensor, labels: np.ndarray, min_scale: float = 1e-3) -> None:
    """Scales and weights of the head's mixture from the hard initial clusters (in place).

    :meth:`DECHead.init_centres` leaves σ = 1 and uniform π. On unit-normalised embeddings (all
    distances ≤ 2) that kernel is nearly flat, every responsibility is close to 1/K and EM merges
    the clusters into one (the degenerate fixed point of a mixture started from equal
    responsibilities). Starting from the clusters' own spread avoids it: σ_jd² = mean over the
    members of cluster j of (z_nd − μ_jd)² (the whole population's variance for a cluster with fewer
    than two members), floored at ``min_scale``², or, for a full-covariance head, the members'
    covariance matrix (regularised as :func:`v1nb.cluster.head.regularised_cholesky`), and
    π_j = n_j / N. For the rotation head each member enters aligned by its best shift to its own
    centre.

    Parameters
    ----------
    head : DECHead or RotationMarginalisedDECHead
    z : tensor (N, D) or (N, R, F)
        The embeddings the head clusters.
    labels : array (N,)
        The initial hard clusters (from ``init_centres``).
    """
    from v1nb.cluster.head import RotationMarginalisedDECHead

    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=z.device)
    z = z.to(head.centres.dtype)
    if isinstance(head, RotationMarginalisedDECHead):
        lk = head._shift_log_kernels(z)                                  # (N, R, K), σ = 1
        best = lk[torch.arange(z.shape[0]), :, labels_t].argmax(1)       # shift of each neuron to its centre
        flat = _unroll_torch(z, best).reshape(z.shape[0], -1)
    else:
        flat = z.reshape(z.shape[0], -1)
    mu = head.centres.reshape(head.n_clusters, -1)
    overall = flat.var(0, unbiased=False)
    counts = torch.bincount(labels_t, minlength=head.n_clusters).to(flat.dtype)
    if getattr(head, "scale_tril", None) is not None:
        from v1nb.cluster.head import regularised_cholesky

        centred_all = flat - flat.mean(0)
        cov = torch.empty(head.n_clusters, flat.shape[1], flat.shape[1], dtype=flat.dtype, device=flat.device)
        for j in range(head.n_clusters):
            members = flat[labels_t == j]
            d = members - mu[j] if len(members) >= 2 else centred_all
            cov[j] = d.T @ d / len(d)
        head.scale_tril.copy_(regularised_cholesky(cov, min_scale))
    if head.log_scales is not None:
        var = torch.empty_like(mu)
        for j in range(head.n_clusters):
            members = flat[labels_t == j]
            var[j] = ((members - mu[j]) ** 2).mean(0) if len(members) >= 2 else overall
        head.log_scales.copy_(0.5 * torch.log(var.clamp_min(min_scale ** 2)))
    if head.log_weights is not None:
        head.log_weights.copy_(torch.log((counts / counts.sum()).clamp_min(1e-12)))


class DECTerm(Term):
    """β · KL(P‖Q) of the network's DEC head on the readout embeddings (the DECEMber recipe).

    Parameters
    ----------
    beta : float
        Weight β of the clustering loss (≥ 0; 0 leaves the gradients of every other term unchanged).
    warmup : int
        Epochs over which β ramps up linearly (0: full β from the first epoch).
    normalise : bool
        Cluster the unit-normalised embeddings (see the module docstring).
    n_init : int
        Restarts of the initialisation (k-means or Gaussian mixture).
    init : {"kmeans", "gmm", "spectral"}
        The partition of the parent's embeddings that gives the initial centres: k-means (the
        recipe), a full-covariance Gaussian mixture, or spectral clustering (kNN graph); the
        rotation-marginalised head starts from shift-invariant k-means only.
    init_em : int
        EM steps of the mixture after k-means, before the first target.
    align : bool
        Roll each neuron's (R, F) embedding by its alignment shift (fixed at the start) before the
        plain head sees it (``rotation="align"``; rotation cores only).
    random_state : int
        Seed of the k-means initialisation (and of the alignment).

    Notes
    -----
    Needs a network with a clustering head (``fit(..., head="dec" | "dec_rotation")``). The head
    holds all the state (centres, scales, weights, target); the term holds only its settings and,
    with ``align``, the shifts computed in :meth:`on_fit_start` (private: not in the cache key, a
    function of the parent and the settings).
    """

    name = "dec"

    def __init__(self, beta: float = 1.0, warmup: int = 0, normalise: bool = True, n_init: int = 20,
                 init_em: int = 20, align: bool = False, random_state: int = 0, init: str = "kmeans"):
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta={beta!r} must be a finite number >= 0")
        if init not in INITS:
            raise ValueError(f"init={init!r} must be one of {INITS}")
        for label, value, low in (("warmup", warmup, 0), ("n_init", n_init, 1), ("init_em", init_em, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{label}={value!r} must be an int >= {low}")
        self.beta = float(beta)
        self.warmup = int(warmup)
        self.normalise = bool(normalise)
        self.n_init = int(n_init)
        self.init_em = int(init_em)
        self.align = bool(align)
        self.random_state = int(random_state)
        self.init = init
        self._shifts: torch.Tensor | None = None

    # ------------------------------------------------------------------ embeddings the head sees
    def head_input(self, network, shifts: torch.Tensor | None = None) -> torch.Tensor:
        """The embeddings the head clusters: ``(N, D)`` for the plain head, ``(N, R, F)`` for the rotation head."""
        from v1nb.cluster.head import RotationMarginalisedDECHead

        w = network.embedding()
        if self.normalise:
            w = normalise_rows(w)
        head = network.head
        if isinstance(head, RotationMarginalisedDECHead):
            return w.reshape(w.shape[0], head.n_rotations, head.n_features)
        shifts = self._shifts if shifts is None else shifts
        if self.align:
            shape = _embedding_shape(network, w.shape[1])
            if len(shape) != 2:
                raise ValueError(f"align=True needs (rotation, feature) embeddings (core='rotation'), got {shape}")
            if shifts is None:
                raise RuntimeError("align=True: the alignment shifts are computed in on_fit_start")
            w = _unroll_torch(w.reshape(w.shape[0], *shape), shifts).reshape(w.shape[0], -1)
        return w

    def beta_at(self, epoch: int) -> float:
        """β_e: β · min(1, e / warmup) (β when ``warmup`` is 0)."""
        if self.warmup == 0:
            return self.beta
        return self.beta * min(1.0, max(epoch, 0) / self.warmup)

    # ------------------------------------------------------------------ hooks
    def _head(self, trainer):
        head = trainer.network.head
        if head is None:
            raise ValueError("DECTerm needs a clustering head: fit(..., head='dec' or 'dec_rotation', n_clusters=K)")
        return head

    def on_fit_start(self, trainer) -> None:
        head = self._head(trainer)
        network = trainer.network
        if self.align:
            with torch.no_grad():
                w = network.embedding()
                w = normalise_rows(w) if self.normalise else w
                shape = _embedding_shape(network, w.shape[1])
                if len(shape) != 2:
                    raise ValueError(f"align=True needs (rotation, feature) embeddings (core='rotation'), got {shape}")
                z3 = w.reshape(w.shape[0], *shape).detach().cpu().double().numpy()
            self._shifts = torch.as_tensor(alignment_shifts(z3, head.n_clusters, self.n_init, self.random_state))
        with torch.no_grad():
            z = self.head_input(network).detach()
            labels = self.initial_labels(head, z)
            init_mixture(head, z, labels)
            for _ in range(self.init_em):
                head.em_update(z)
            head.update_target(z)

    def initial_labels(self, head, z: torch.Tensor) -> np.ndarray:
        """Set the head's centres from the ``init`` partition of ``z`` (the head's input); return its labels (N,)."""
        return start_head(head, z, self.init, self.random_state, self.n_init)

    def loss(self, batch: Batch, trainer) -> torch.Tensor:
        head = self._head(trainer)
        z = self.head_input(trainer.network)
        if trainer.step > 0 and head.target_due(trainer.step):  # P from all neurons, then fixed for T steps
            head.update_target(z.detach())
        index = torch.arange(z.shape[0], device=z.device)
        kl_mean = head.loss(z, index)  # mean over neurons (reduction "batchmean")
        scale = math.sqrt(batch.n_train / len(batch.index)) * len(batch.index) * z.shape[0]
        return self.beta_at(trainer.epoch) * scale * kl_mean

    def on_step_end(self, trainer) -> None:
        with torch.no_grad():
            self._head(trainer).em_update(self.head_input(trainer.network).detach())


# ---------------------------------------------------------------------------------- fine-tuning
def _check_parent(parent: ResponseModel, rotation: str) -> None:
    if not hasattr(parent, "network_"):
        raise ValueError(f"parent {parent!r} is not fitted: fine-tune a fitted (cached) model")
    if rotation not in ROTATION_MODES:
        raise ValueError(f"rotation={rotation!r} must be one of {ROTATION_MODES}")
    rotational = parent.embeddings().ndim == 3
    if rotation != "ignore" and not rotational:
        raise ValueError(f"rotation={rotation!r} needs a rotation-equivariant parent (core='rotation'), "
                         f"got core={parent.core!r}")


def dec_job(parent: ResponseModel, n_clusters: int = 6, beta: float = 1.0, warmup: int = 0, joint: bool = True,
            core_trainable: bool = True, epochs: int = 10, lr: float = 0.003, rotation: str = "ignore",
            update_interval: int = 40, n_init: int = 20, init_em: int = 20, normalise: bool = True,
            alpha: float | None = None, seed: int | None = None, covariance: str = "diagonal",
            init: str = "kmeans", **settings: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`v1nb.models.fit` (a :func:`v1nb.models.fit_many` job) for one DEC fine-tune.

    Parameters
    ----------
    parent : ResponseModel
        The pre-trained model (from the cache, for parallel fits); its settings are kept.
    n_clusters : int
        K.
    beta, warmup : float, int
        β and its warm-up in epochs (:class:`DECTerm`).
    joint : bool
        Prediction + regularisation + DEC (True) or DEC alone (False, ``trainable="readout+head"``).
    core_trainable : bool
        With ``joint``: train the core too (``trainable="all"``) or freeze it (``"no_core"``).
    epochs : int
        Fixed schedule length (``early_stopping=False``: the last weights are kept).
    lr : float
        Adam learning rate of the fine-tune (a fifth of the pre-training rate: the parent has
        already converged after two ×0.3 decays).
    rotation : {"ignore", "marginalise", "align"}
        How a rotation core's (R, F) embeddings are clustered (module docstring).
    update_interval : int
        T, optimiser steps between target updates.
    n_init, init_em, normalise
        As :class:`DECTerm`.
    alpha : float, optional
        Student-t parameter α of the head (default: the embedding dimension D for diagonal scales, see
        *Kernel* in the module docstring — DEC's α = 1 makes the per-cluster-scale mixture collapse;
        :data:`FULL_COVARIANCE_ALPHA` for full ones).
    seed : int, optional
        ``random_state`` of the fine-tune (default: the parent's) and of its initial partition.
    covariance : {"diagonal", "full"}
        Scales of the head's mixture (model setting ``dec_covariance``; see *Scales* in the module
        docstring). ``"full"`` needs a plain head (not ``rotation="marginalise"``).
    init : {"kmeans", "gmm", "spectral"}
        Initial partition (:class:`DECTerm`).
    **settings
        Further model settings (override the parent's).
    """
    _check_parent(parent, rotation)
    if not isinstance(n_clusters, (int, np.integer)) or n_clusters < 2:
        raise ValueError(f"n_clusters={n_clusters!r} must be an int >= 2")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be an int >= 1")
    seed = parent.random_state if seed is None else int(seed)
    dim = int(np.prod(parent.embeddings().shape[1:]))
    if alpha is None:
        alpha = FULL_COVARIANCE_ALPHA if covariance == "full" else float(dim)
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r} must be a finite number > 0")
    from v1nb.cluster.head import COVARIANCES

    if covariance not in COVARIANCES:
        raise ValueError(f"covariance={covariance!r} must be one of {COVARIANCES}")
    if covariance == "full" and rotation == "marginalise":
        raise ValueError("covariance='full' needs a plain head: rotation='marginalise' has diagonal scales only")
    if init != "kmeans" and rotation == "marginalise":
        raise ValueError(f"init={init!r}: rotation='marginalise' starts from shift-invariant k-means only")
    term = DECTerm(beta, warmup=warmup, normalise=normalise, n_init=n_init, init_em=init_em,
                   align=rotation == "align", random_state=seed, init=init)
    settings = {"dec_covariance": covariance, **settings}
    loss_name = parent.config_.loss if hasattr(parent, "config_") else "poisson"
    terms = [PredictionLoss(loss_name), Regularisation(), term] if joint else [term]
    trainable = ("all" if core_trainable else "no_core") if joint else "readout+head"
    base = {k: v for k, v in parent.settings.items() if k not in ("early_stopping", "trainable", "max_epochs", "lr")}
    return {"core": parent.core, "readout": parent.readout, "seed": seed, "interaction": parent.interaction,
            "head": "dec_rotation" if rotation == "marginalise" else "dec", "parent": parent, "terms": terms,
            **base, "n_clusters": int(n_clusters), "dec_update_interval": int(update_interval), "dec_alpha": alpha,
            "early_stopping": False, "max_epochs": int(epochs), "lr": float(lr), "trainable": trainable,
            **settings}


def _dec_term(terms: Sequence[Term]) -> DECTerm:
    for term in terms:
        if isinstance(term, DECTerm):
            return term
    raise ValueError("the job has no DECTerm")


def attach_labels(model: ResponseModel, parent: ResponseModel, term: DECTerm) -> ResponseModel:
    """Set ``model.labels_`` (hard DEC labels, (N,)), ``model.soft_labels_`` (q, (N, K)) and, for rotation
    modes, ``model.shifts_`` (N,): the recovered cyclic shift of each neuron (aligned: the fixed alignment;
    marginalised: the most probable shift under its cluster)."""
    from v1nb.cluster.head import RotationMarginalisedDECHead

    network, head = model.network_, model.network_.head
    shifts = None
    if term.align:  # the shifts were fixed at the start, from the parent's embeddings: recompute them
        with torch.no_grad():
            w = parent.network_.embedding()
            w = normalise_rows(w) if term.normalise else w
            z3 = w.reshape(w.shape[0], *_embedding_shape(parent.network_, w.shape[1])).double().numpy()
        shifts = torch.as_tensor(alignment_shifts(z3, head.n_clusters, term.n_init, term.random_state))
    with torch.no_grad():
        z = term.head_input(network, shifts=shifts)
        model.labels_ = head.predict(z).cpu().numpy().astype(np.intp)
        model.soft_labels_ = head.soft_assign(z).cpu().numpy()
        if isinstance(head, RotationMarginalisedDECHead):
            model.shifts_ = head.best_shift(z).cpu().numpy().astype(np.intp)
        elif shifts is not None:
            model.shifts_ = shifts.numpy().astype(np.intp)
    return model


def finetune_dec(ds, parent: ResponseModel, n_clusters: int = 6, beta: float = 1.0, warmup: int = 0,
                 joint: bool = True, core_trainable: bool = True, epochs: int = 10, seed: int | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 **options: Any) -> ResponseModel:
    """Fine-tune ``parent`` with the DEC clustering loss (cached); see the module docstring.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset the parent was fitted on.
    parent : ResponseModel
        Pre-trained model.
    n_clusters, beta, warmup, joint, core_trainable, epochs, seed
        As :func:`dec_job`.
    cache_dir, use_cache
        As :func:`v1nb.models.fit`.
    **options
        Further arguments of :func:`dec_job` (``lr``, ``rotation``, ``update_interval``, ``n_init``,
        ``init_em``, ``normalise``) and model settings.

    Returns
    -------
    ResponseModel
        Fitted, with ``labels_`` (N,) hard cluster labels, ``soft_labels_`` (N, K),
        ``shifts_`` (N,) for the rotation modes, and ``history_["epochs"][e]`` holding
        ``loss_prediction``, ``loss_regularisation`` (joint) and ``loss_dec`` per epoch.
    """
    from v1nb.models.fit import fit

    job = dec_job(parent, n_clusters, beta, warmup, joint, core_trainable, epochs, seed=seed, **options)
    model = fit(ds, cache_dir=cache_dir, use_cache=use_cache, **job)
    return attach_labels(model, parent, _dec_term(job["terms"]))


def finetune_dec_many(ds, jobs: Sequence[dict[str, Any]], n_jobs: int | None = None,
                      cache_dir: str | os.PathLike | None = None) -> list[ResponseModel]:
    """Several DEC fine-tunes in parallel worker processes (:func:`v1nb.models.fit_many`).

    Parameters
    ----------
    ds : xarray.Dataset
    jobs : list of dict
        Each from :func:`dec_job` (parents must come from the model cache).
    n_jobs : int, optional
    cache_dir : path, optional

    Returns
    -------
    list of ResponseModel
        With ``labels_`` etc. as :func:`finetune_dec`, in the order of ``jobs``.
    """
    from v1nb.models.parallel import fit_many

    # fit_many loads cached fine-tunes in this process and starts workers only for the others
    models = fit_many(ds, jobs, n_jobs=n_jobs, cache_dir=cache_dir)
    return [attach_labels(m, job["parent"], _dec_term(job["terms"])) for m, job in zip(models, jobs)]


def dec_history(model: ResponseModel):
    """Per-epoch losses and validation correlation of a fine-tune as a DataFrame
    (columns ``epoch``, ``loss_prediction``, ``loss_dec``, ``val_corr`` ...; epoch 0 = the parent)."""
    import pandas as pd

    return pd.DataFrame(model.history_["epochs"])

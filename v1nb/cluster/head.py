"""DEC clustering heads: torch modules that add a KL(P‖Q) clustering loss to any model's training.

A head holds K centres in the embedding space (optionally per-cluster diagonal scales and mixture
weights, the DECEMber-style Student-t mixture) and turns a batch of embeddings z (B, D) into soft
assignments q (B, K) with the Student-t kernel of DEC (Xie et al. 2016)

    q_ij ∝ π_j ∏_d σ_jd⁻¹ · (1 + m_ij² / α)^{−(α+1)/2},   m_ij² = Σ_d (z_id − μ_jd)² / σ_jd²,

which with σ = 1 and uniform π is exactly DEC's q_ij ∝ (1 + ‖z_i − μ_j‖²/α)^{−(α+1)/2}. The
target p_ij ∝ q_ij² / f_j (f_j = Σ_i q_ij) sharpens q and is *held fixed* between updates: it is
computed from all items at once (:meth:`DECHead.update_target`), stored, and looked up per batch by
item index. The loss is KL(P‖Q) = Σ_ij p_ij log(p_ij / q_ij).

Reduction: ``"batchmean"`` (default) divides the sum by the batch size B — the mathematically
correct per-item KL. ``"sum"`` returns the batch total. Note that
``torch.nn.functional.kl_div``'s *default* ``reduction="mean"`` divides by B·K and so silently
shrinks the loss by a factor K; it is not offered here.

Typical use inside another model's training (the DEC-on-readout chapters)::

    head = DECHead(n_clusters=10, n_features=z_dim)
    head.init_centres(z_all)                    # k-means, after a few epochs of plain training
    for step, (x, idx) in enumerate(loader):
        if head.target_due(step):
            head.update_target(embed_all())     # P over every item, then fixed
        loss = task_loss + beta * head.loss(embed(x), idx)
        ...
        if em: head.em_update(embed_all().detach())

:class:`RotationMarginalisedDECHead` does the same for embeddings shaped (B, R, F) — neuron ×
rotation × feature — averaging the kernel over the R cyclic shifts of each embedding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

REDUCTIONS = ("batchmean", "sum")


def student_t_log_kernel(z: torch.Tensor, centres: torch.Tensor, alpha: float = 1.0,
                         log_scales: torch.Tensor | None = None,
                         log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalised log kernel log(π_j t(z_i; μ_j, σ_j)); shape (B, K).

    Parameters
    ----------
    z : tensor, shape (B, D)
    centres : tensor, shape (K, D)
    alpha : float
        Degrees of freedom of the Student-t (DEC uses 1).
    log_scales : tensor, shape (K, D), optional
        log σ_jd; None means σ = 1.
    log_weights : tensor, shape (K,), optional
        Unnormalised log mixture weights; None means uniform.
    """
    diff = z[:, None, :] - centres[None, :, :]
    if log_scales is not None:
        diff = diff * torch.exp(-log_scales)[None]
    m2 = (diff ** 2).sum(-1)
    out = -(alpha + 1.0) / 2.0 * torch.log1p(m2 / alpha)
    if log_scales is not None:
        out = out - log_scales.sum(-1)[None]
    if log_weights is not None:
        out = out + torch.log_softmax(log_weights, 0)[None]
    return out


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC target p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij; shape as q (N, K)."""
    w = q ** 2 / q.sum(0, keepdim=True).clamp_min(1e-12)
    return w / w.sum(1, keepdim=True)


def kl_clustering_loss(p: torch.Tensor, log_q: torch.Tensor,
                       reduction: str = "batchmean") -> torch.Tensor:
    """KL(P‖Q) = Σ_ij p_ij (log p_ij − log q_ij), reduced over the batch.

    Parameters
    ----------
    p : tensor, shape (B, K)
        Target (no gradient flows into it).
    log_q : tensor, shape (B, K)
        Log soft assignments.
    reduction : {"batchmean", "sum"}
        Divide by B (per-item KL) or not.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    p = p.detach()
    kl = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-30)) - log_q), torch.zeros_like(p)).sum()
    return kl / p.shape[0] if reduction == "batchmean" else kl


class DECHead(nn.Module):
    """K centres (+ optional diagonal scales and weights) and the KL(P‖Q) clustering loss.

    Parameters
    ----------
    n_clusters : int
        K.
    n_features : int
        Embedding dimension D.
    alpha : float, default=1.0
        Student-t degrees of freedom.
    learn_scales : bool, default=False
        Per-cluster diagonal scales σ_j (DECEMber); otherwise σ = 1 (DEC).
    learn_weights : bool, default=False
        Mixture weights π_j; otherwise uniform.
    update_interval : int, default=40
        T: :meth:`target_due` is True every T steps (DEC's best T ≈ 40 iterations).
    reduction : {"batchmean", "sum"}, default="batchmean"

    Attributes
    ----------
    centres : Parameter, shape (K, D)
    log_scales : Parameter or None, shape (K, D)
    log_weights : Parameter or None, shape (K,)
    target : buffer, shape (N, K) or empty
        P from the last :meth:`update_target`; rows indexed by item.
    """

    def __init__(self, n_clusters: int, n_features: int, alpha: float = 1.0,
                 learn_scales: bool = False, learn_weights: bool = False,
                 update_interval: int = 40, reduction: str = "batchmean"):
        super().__init__()
        if n_clusters < 1 or n_features < 1:
            raise ValueError(f"n_clusters and n_features must be >= 1, got {n_clusters}, "
                             f"{n_features}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if update_interval < 1:
            raise ValueError(f"update_interval must be >= 1, got {update_interval}")
        self.n_clusters, self.n_features = int(n_clusters), int(n_features)
        self.alpha, self.update_interval, self.reduction = float(alpha), int(update_interval), reduction
        self.centres = nn.Parameter(torch.zeros(self._centre_shape()))
        self.log_scales = (nn.Parameter(torch.zeros(n_clusters, self._flat_dim()))
                           if learn_scales else None)
        self.log_weights = nn.Parameter(torch.zeros(n_clusters)) if learn_weights else None
        self.register_buffer("target", torch.empty(0, n_clusters))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The target has one row per item once update_target has run (N, K), but is empty (0, K) in a
        # freshly built head: take the stored shape so a trained head can be reloaded.
        key = prefix + "target"
        if key in state_dict and state_dict[key].shape != self.target.shape:
            self.target = torch.empty_like(state_dict[key], device=self.target.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- shapes (overridden by the rotation-marginalised head) ---
    def _centre_shape(self) -> tuple[int, ...]:
        return (self.n_clusters, self.n_features)

    def _flat_dim(self) -> int:
        return self.n_features

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.n_features:
            raise ValueError(f"embeddings must have shape (B, {self.n_features}), got "
                             f"{tuple(z.shape)}")
        return z

    # --- assignments ---
    def log_kernel(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log kernel, shape (B, K)."""
        z = self._check_z(z)
        return student_t_log_kernel(z, self.centres, self.alpha, self.log_scales, self.log_weights)

    def log_soft_assign(self, z: torch.Tensor) -> torch.Tensor:
        """log q, shape (B, K)."""
        return torch.log_softmax(self.log_kernel(z), dim=1)

    def soft_assign(self, z: torch.Tensor) -> torch.Tensor:
        """q (rows sum to 1), shape (B, K)."""
        return self.log_soft_assign(z).exp()

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """Hard labels argmax_j q_ij, shape (B,)."""
        with torch.no_grad():
            return self.log_kernel(z).argmax(1)

    # --- initialisation, target, loss ---
    @torch.no_grad()
    def init_centres(self, z_all: torch.Tensor, n_init: int = 20, random_state=None) -> np.ndarray:
        """k-means (``n_init`` restarts) on all embeddings (N, D); sets centres, resets scales and
        weights; returns the k-means labels (N,)."""
        z = self._check_z(torch.as_tensor(z_all)).detach().cpu().double().numpy()
        if z.shape[0] < self.n_clusters:
            raise ValueError(f"need at least n_clusters={self.n_clusters} embeddings to "
                             f"initialise, got {z.shape[0]}")
        km = KMeans(self.n_clusters, n_init=n_init, random_state=random_state).fit(
            z.reshape(z.shape[0], -1))
        self.centres.copy_(torch.as_tensor(km.cluster_centers_.reshape(self._centre_shape()),
                                           dtype=self.centres.dtype))
        if self.log_scales is not None:
            self.log_scales.zero_()
        if self.log_weights is not None:
            self.log_weights.zero_()
        return km.labels_

    @torch.no_grad()
    def update_target(self, z_all: torch.Tensor) -> torch.Tensor:
        """Recompute P from all N embeddings and store it (held fixed until the next call)."""
        p = target_distribution(self.soft_assign(torch.as_tensor(z_all, dtype=self.centres.dtype)))
        self.target = p.detach().clone()
        return self.target

    def target_due(self, step: int) -> bool:
        """True when the target should be refreshed at optimisation ``step`` (0, T, 2T, ...)."""
        return step % self.update_interval == 0

    def loss(self, z: torch.Tensor, index: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """KL(P‖Q) for a batch.

        Parameters
        ----------
        z : tensor, shape (B, ...)
            Embeddings of the batch.
        index : int tensor/array, shape (B,), optional
            Rows of the stored target for these items. If None, the target is computed from the
            batch itself (detached) — DEC on the batch, without the fixed-target schedule.
        """
        log_q = self.log_soft_assign(z)
        if index is None:
            p = target_distribution(log_q.exp().detach())
        else:
            if self.target.shape[0] == 0:
                raise RuntimeError("no target stored: call update_target(z_all) before loss(z, index)")
            p = self.target[torch.as_tensor(index, dtype=torch.long, device=self.target.device)]
        return kl_clustering_loss(p, log_q, self.reduction)

    def forward(self, z: torch.Tensor, index=None) -> torch.Tensor:
        """Alias of :meth:`loss`."""
        return self.loss(z, index)

    # --- EM ---
    @torch.no_grad()
    def em_update(self, z_all: torch.Tensor, min_scale: float = 1e-3) -> None:
        """One EM step of the Student-t mixture on all embeddings (N, D), in place.

        E-step: responsibilities r = q and the Student-t latent precisions
        u_ij = (α + 1)/(α + m_ij²). M-step: μ_j = Σ r u z / Σ r u; σ_j² (if learned) the r·u-weighted
        variance, floored at ``min_scale``²; π_j (if learned) = mean_i r_ij.
        """
        zt = self._check_z(torch.as_tensor(z_all, dtype=self.centres.dtype))
        z = self._flat(zt)
        r = self.soft_assign(zt)                          # (N, K)
        mu = self.centres.reshape(self.n_clusters, -1)
        diff = z[:, None, :] - mu[None]
        scaled = diff * torch.exp(-self.log_scales)[None] if self.log_scales is not None else diff
        u = (self.alpha + 1.0) / (self.alpha + (scaled ** 2).sum(-1))
        w = r * u
        wsum = w.sum(0).clamp_min(1e-12)                  # (K,)
        new_mu = (w.T @ z) / wsum[:, None]
        self.centres.copy_(new_mu.reshape(self._centre_shape()))
        if self.log_scales is not None:
            var = (w[:, :, None] * (z[:, None, :] - new_mu[None]) ** 2).sum(0) / wsum[:, None]
            self.log_scales.copy_(0.5 * torch.log(var.clamp_min(min_scale ** 2)))
        if self.log_weights is not None:
            self.log_weights.copy_(torch.log(r.mean(0).clamp_min(1e-12)))

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], -1)


class RotationMarginalisedDECHead(DECHead):
    """DEC head for embeddings shaped (B, R, F) that is invariant to cyclic shifts along R.

    The kernel marginalises each item's unknown shift:
    t_ij = (1/R) Σ_r t(roll(z_i, r); μ_j, σ_j), with centres μ_j of shape (R, F) (Ustyuzhaninov
    et al. 2020's orientation as a latent variable). Everything else is as in :class:`DECHead`.

    Parameters
    ----------
    n_clusters : int
    n_rotations : int
        R.
    n_features : int
        F (features per rotation).
    **kwargs
        As :class:`DECHead`.
    """

    def __init__(self, n_clusters: int, n_rotations: int, n_features: int, **kwargs):
        self.n_rotations = int(n_rotations)
        if self.n_rotations < 1:
            raise ValueError(f"n_rotations must be >= 1, got {n_rotations}")
        super().__init__(n_clusters, n_features, **kwargs)

    def _centre_shape(self) -> tuple[int, ...]:
        return (self.n_clusters, self.n_rotations, self.n_features)

    def _flat_dim(self) -> int:
        return self.n_rotations * self.n_features

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 3 or tuple(z.shape[1:]) != (self.n_rotations, self.n_features):
            raise ValueError(f"embeddings must have shape (B, R={self.n_rotations}, "
                             f"F={self.n_features}) (neuron × rotation × feature), got "
                             f"{tuple(z.shape)}")
        return z

    def _shift_log_kernels(self, z: torch.Tensor) -> torch.Tensor:
        """log kernel for every shift r, shape (B, R, K): item rolled by r vs each centre."""
        z = self._check_z(z)
        rolled = torch.stack([torch.roll(z, shifts=-r, dims=1) for r in range(self.n_rotations)], 1)
        flat = rolled.reshape(z.shape[0] * self.n_rotations, -1)
        lk = student_t_log_kernel(flat, self.centres.reshape(self.n_clusters, -1), self.alpha,
                                  self.log_scales, self.log_weights)
        return lk.reshape(z.shape[0], self.n_rotations, self.n_clusters)

    def log_kernel(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._shift_log_kernels(z), dim=1) - math.log(self.n_rotations)

    @torch.no_grad()
    def best_shift(self, z: torch.Tensor) -> torch.Tensor:
        """Most probable shift r of each item under its most probable cluster, shape (B,):
        z_i ≈ roll(μ_j, r, axis=R)."""
        lk = self._shift_log_kernels(z)
        j = torch.logsumexp(lk, 1).argmax(1)
        return lk[torch.arange(z.shape[0]), :, j].argmax(1)

    @torch.no_grad()
    def init_centres(self, z_all, n_init: int = 20, random_state=None) -> np.ndarray:
        """Centres from shift-invariant clustering (:class:`RotationInvariantClustering`,
        ``method="align"``) of the (N, R, F) embeddings; returns its labels."""
        from v1nb.cluster.rotation import RotationInvariantClustering

        z = self._check_z(torch.as_tensor(z_all)).detach().cpu().double().numpy()
        ric = RotationInvariantClustering(self.n_clusters, method="align", n_init=n_init,
                                          normalize=False, random_state=random_state).fit(z)
        self.centres.copy_(torch.as_tensor(ric.templates_, dtype=self.centres.dtype))
        if self.log_scales is not None:
            self.log_scales.zero_()
        if self.log_weights is not None:
            self.log_weights.zero_()
        return ric.labels_

    @torch.no_grad()
    def em_update(self, z_all: torch.Tensor, min_scale: float = 1e-3) -> None:
        """EM step with the shift as a latent variable: each item enters every cluster aligned by
        its posterior over shifts."""
        z = self._check_z(torch.as_tensor(z_all, dtype=self.centres.dtype))
        n, R = z.shape[0], self.n_rotations
        lk = self._shift_log_kernels(z)                               # (N, R, K)
        post = torch.softmax(lk.reshape(n, -1), 1).reshape(n, R, self.n_clusters)
        rolled = torch.stack([torch.roll(z, -r, 1) for r in range(R)], 1).reshape(n, R, -1)
        mu = self.centres.reshape(self.n_clusters, -1)
        diff = rolled[:, :, None, :] - mu[None, None]
        scaled = diff * torch.exp(-self.log_scales)[None, None] if self.log_scales is not None else diff
        u = (self.alpha + 1.0) / (self.alpha + (scaled ** 2).sum(-1))  # (N, R, K)
        w = post * u
        wsum = w.sum((0, 1)).clamp_min(1e-12)
        new_mu = torch.einsum("nrk,nrd->kd", w, rolled) / wsum[:, None]
        self.centres.copy_(new_mu.reshape(self._centre_shape()))
        if self.log_scales is not None:
            sq = (rolled[:, :, None, :] - new_mu[None, None]) ** 2
            var = torch.einsum("nrk,nrkd->kd", w, sq) / wsum[:, None]
            self.log_scales.copy_(0.5 * torch.log(var.clamp_min(min_scale ** 2)))
        if self.log_weights is not None:
            self.log_weights.copy_(torch.log(post.sum(1).mean(0).clamp_min(1e-12)))

"""DEC clustering heads: torch modules that add a KL(P‖Q) clustering loss to any model's training.

A head holds K centres in the embedding space (optionally per-cluster scales — diagonal, the
DECEMber-style Student-t mixture, or full matrices Σ_j = L_j L_jᵀ with the Mahalanobis distance — and
mixture weights) and turns a batch of embeddings z (B, D) into soft
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
#: Shapes of the per-cluster scale: ``"diagonal"`` (σ_j, DECEMber) or ``"full"`` (a Cholesky factor L_j
#: of Σ_j = L_j L_jᵀ, clusters elongated along any direction; see :class:`DECHead`).
COVARIANCES = ("diagonal", "full")
#: Shrinkage of a full covariance toward the isotropic, as a fraction of its mean variance: keeps
#: Σ_j positive definite when a cluster has fewer members than dimensions.
COVARIANCE_SHRINKAGE = 1e-3


def mahalanobis2(z: torch.Tensor, centres: torch.Tensor, log_scales: torch.Tensor | None = None,
                 scale_tril: torch.Tensor | None = None) -> torch.Tensor:
    """Squared scaled distances m_ij² of items to centres; shape (B, K).

    ``Σ_d (z_id − μ_jd)² / σ_jd²`` with ``log_scales`` (K, D); ``‖L_j⁻¹ (z_i − μ_j)‖²`` with the
    lower-triangular ``scale_tril`` (K, D, D) (Σ_j = L_j L_jᵀ); ``‖z_i − μ_j‖²`` with neither.
    """
    diff = z[:, None, :] - centres[None, :, :]                          # (B, K, D)
    if scale_tril is not None:
        # one triangular solve per cluster for all items: (K, D, D) \ (K, D, B)
        sol = torch.linalg.solve_triangular(scale_tril, diff.permute(1, 2, 0), upper=False)
        return sol.pow(2).sum(1).T
    if log_scales is not None:
        diff = diff * torch.exp(-log_scales)[None]
    return (diff ** 2).sum(-1)


def student_t_log_kernel(z: torch.Tensor, centres: torch.Tensor, alpha: float = 1.0,
                         log_scales: torch.Tensor | None = None,
                         log_weights: torch.Tensor | None = None,
                         scale_tril: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalised log kernel log(π_j t(z_i; μ_j, Σ_j)); shape (B, K).

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
    scale_tril : tensor, shape (K, D, D), optional
        Lower-triangular Cholesky factors L_j of full scale matrices Σ_j = L_j L_jᵀ (instead of
        ``log_scales``); the normaliser is then |Σ_j|^{−1/2} = ∏_d |L_jdd|⁻¹.
    """
    m2 = mahalanobis2(z, centres, log_scales, scale_tril)
    out = -(alpha + 1.0) / 2.0 * torch.log1p(m2 / alpha)
    if scale_tril is not None:
        out = out - torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1).abs()).sum(-1)[None]
    elif log_scales is not None:
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


def kmeans_start(x: np.ndarray, k: int, n_init: int = 20, random_state=None) -> KMeans:
    """The k-means (``n_init`` restarts) a DEC head starts from, fitted to rows ``x`` (N, D).

    The one place the DEC recipe's k-means initialisation is configured: :meth:`DECHead.init_centres`
    takes its centres, :func:`v1nb.models.dec.initial_partition` its labels.
    """
    return KMeans(k, n_init=n_init, random_state=random_state).fit(x)


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
    covariance : {"diagonal", "full"}, default="diagonal"
        Shape of the learned scales (with ``learn_scales``): per-dimension σ_jd (DECEMber), or a full
        scale matrix Σ_j = L_j L_jᵀ per cluster, m_ij² = (z_i − μ_j)ᵀ Σ_j⁻¹ (z_i − μ_j). Readout
        embeddings form elongated, correlated clusters: on the default twin's CNN embeddings 20 EM
        steps of the diagonal mixture turn a GMM or spectral partition (ARI 0.39 / 0.44 to the true
        types) into a k-means-like one (0.16); the full mixture keeps it (see the embeddings chapters).
    update_interval : int, default=40
        T: :meth:`target_due` is True every T steps (DEC's best T ≈ 40 iterations).
    reduction : {"batchmean", "sum"}, default="batchmean"

    Attributes
    ----------
    centres : Parameter, shape (K, D)
    log_scales : Parameter or None, shape (K, D)
        log σ_jd (``covariance="diagonal"``).
    scale_tril : Parameter or None, shape (K, D, D)
        Cholesky factors L_j (``covariance="full"``).
    log_weights : Parameter or None, shape (K,)
    target : buffer, shape (N, K) or empty
        P from the last :meth:`update_target`; rows indexed by item.
    """

    def __init__(self, n_clusters: int, n_features: int, alpha: float = 1.0,
                 learn_scales: bool = False, learn_weights: bool = False,
                 update_interval: int = 40, reduction: str = "batchmean", covariance: str = "diagonal"):
        super().__init__()
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        if covariance == "full" and not learn_scales:
            raise ValueError("covariance='full' needs learn_scales=True (the scale matrices are learned)")
        if n_clusters < 1 or n_features < 1:
            raise ValueError(f"n_clusters and n_features must be >= 1, got {n_clusters}, "
                             f"{n_features}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if update_interval < 1:
            raise ValueError(f"update_interval must be >= 1, got {update_interval}")
        self.n_clusters, self.n_features = int(n_clusters), int(n_features)
        self.alpha, self.update_interval, self.reduction = float(alpha), int(update_interval), reduction
        self.covariance = covariance
        self.centres = nn.Parameter(torch.zeros(self._centre_shape()))
        self.log_scales = (nn.Parameter(torch.zeros(n_clusters, self._flat_dim()))
                           if learn_scales and covariance == "diagonal" else None)
        self.scale_tril = (nn.Parameter(torch.eye(self._flat_dim()).repeat(n_clusters, 1, 1))
                           if covariance == "full" else None)
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
        return student_t_log_kernel(z, self.centres, self.alpha, self.log_scales, self.log_weights,
                                    self.scale_tril)

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
        km = kmeans_start(z.reshape(z.shape[0], -1), self.n_clusters, n_init, random_state)
        self.centres.copy_(torch.as_tensor(km.cluster_centers_.reshape(self._centre_shape()),
                                           dtype=self.centres.dtype))
        self._reset_scales_and_weights()
        return km.labels_

    @torch.no_grad()
    def init_from_labels(self, z_all: torch.Tensor, labels: np.ndarray) -> np.ndarray:
        """Centres = the members' means of a given partition (N,) of all embeddings (N, D), e.g. a
        Gaussian mixture's or spectral clustering's; resets scales and weights and returns the labels.

        A cluster the partition leaves empty takes the member of the largest cluster farthest from
        that cluster's mean (so K centres always exist; deterministic).
        """
        z = self._flat(self._check_z(torch.as_tensor(z_all, dtype=self.centres.dtype)))
        labels = np.asarray(labels).astype(np.int64).copy()
        if labels.shape != (z.shape[0],) or labels.min() < 0 or labels.max() >= self.n_clusters:
            raise ValueError(f"labels must be {z.shape[0]} integers in [0, {self.n_clusters}), got shape "
                             f"{labels.shape} and range [{labels.min()}, {labels.max()}]")
        for j in range(self.n_clusters):
            if not (labels == j).any():
                big = np.bincount(labels, minlength=self.n_clusters).argmax()
                members = np.flatnonzero(labels == big)
                far = (z[members] - z[members].mean(0)).pow(2).sum(1).argmax().item()
                labels[members[far]] = j
        t = torch.as_tensor(labels, device=z.device)
        mu = torch.stack([z[t == j].mean(0) for j in range(self.n_clusters)])
        self.centres.copy_(mu.reshape(self._centre_shape()))
        self._reset_scales_and_weights()
        return labels

    def _reset_scales_and_weights(self) -> None:
        if self.log_scales is not None:
            self.log_scales.zero_()
        if self.scale_tril is not None:
            self.scale_tril.copy_(torch.eye(self._flat_dim(), dtype=self.scale_tril.dtype).expand_as(self.scale_tril))
        if self.log_weights is not None:
            self.log_weights.zero_()

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
        variance, floored at ``min_scale``²; a full Σ_j the Student-t mixture's maximum-likelihood
        update Σ_i r_ij u_ij (z_i − μ_j)(z_i − μ_j)ᵀ / Σ_i r_ij, shrunk toward the isotropic by
        :data:`COVARIANCE_SHRINKAGE` of its mean variance plus ``min_scale``²; π_j (if learned) =
        mean_i r_ij.
        """
        zt = self._check_z(torch.as_tensor(z_all, dtype=self.centres.dtype))
        z = self._flat(zt)
        r = self.soft_assign(zt)                          # (N, K)
        mu = self.centres.reshape(self.n_clusters, -1)
        u = (self.alpha + 1.0) / (self.alpha + mahalanobis2(z, mu, self.log_scales, self.scale_tril))
        w = r * u
        wsum = w.sum(0).clamp_min(1e-12)                  # (K,)
        new_mu = (w.T @ z) / wsum[:, None]
        self.centres.copy_(new_mu.reshape(self._centre_shape()))
        if self.scale_tril is not None:
            diff = z[:, None, :] - new_mu[None]           # (N, K, D)
            cov = torch.einsum("nk,nkd,nke->kde", w, diff, diff) / r.sum(0).clamp_min(1e-12)[:, None, None]
            self.scale_tril.copy_(regularised_cholesky(cov, min_scale))
        if self.log_scales is not None:
            var = (w[:, :, None] * (z[:, None, :] - new_mu[None]) ** 2).sum(0) / wsum[:, None]
            self.log_scales.copy_(0.5 * torch.log(var.clamp_min(min_scale ** 2)))
        if self.log_weights is not None:
            self.log_weights.copy_(torch.log(r.mean(0).clamp_min(1e-12)))

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], -1)


def regularised_cholesky(cov: torch.Tensor, min_scale: float = 1e-3) -> torch.Tensor:
    """Cholesky factors of covariances (K, D, D) shrunk toward the isotropic: Σ + (c · tr Σ / D + s²) I
    with c = :data:`COVARIANCE_SHRINKAGE`, s = ``min_scale`` (positive definite for any member count)."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    ridge = COVARIANCE_SHRINKAGE * torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1) + min_scale ** 2
    return torch.linalg.cholesky(cov + ridge[:, None, None] * eye)


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
        if kwargs.get("covariance", "diagonal") != "diagonal":
            # R·F dimensions (e.g. 8 × 16 = 128) against ~N/K members per cluster: a full scale
            # matrix per cluster is not identifiable there
            raise ValueError(f"the rotation-marginalised head has diagonal scales only, got "
                             f"covariance={kwargs['covariance']!r}")
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
        self._reset_scales_and_weights()
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

"""DEC, IDEC and the DEC clustering head."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from v1nb.cluster import DEC, IDEC, DECHead, kl_clustering_loss, metrics, target_distribution
from v1nb.machine import available_cores

SMALL = dict(hidden_dims=(32, 32), latent_dim=4, pretrain_epochs=30, min_pretrain_steps=0, max_iter=200,
             update_interval=20, n_init=5)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, n_features=8, centers=3, cluster_std=1.0, random_state=0)
    return (X - X.mean(0)) / X.std(0), y


@pytest.mark.parametrize("Est", [DEC, IDEC])
def test_dec_idec_on_blobs_and_determinism(Est, blobs):
    X, y = blobs
    a = Est(3, random_state=0, **SMALL).fit(X)
    b = Est(3, random_state=0, **SMALL).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert metrics.ari(y, a.labels_) > 0.95
    assert a.embed(X).shape == (300, 4)
    P = a.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(a.predict(X), a.labels_)
    assert a.pretrain_loss_[-1] < a.pretrain_loss_[0]


def test_pretraining_floor_in_steps_and_schedules(blobs):
    X, _ = blobs
    base = dict(SMALL, pretrain_epochs=2, max_iter=0, batch_size=100)  # 3 batches per epoch
    est = IDEC(3, random_state=0, **dict(base, min_pretrain_steps=50)).fit(X)
    assert (est.n_pretrain_epochs_, est.n_pretrain_steps_) == (17, 51)  # ceil(50 / 3) epochs
    assert IDEC(3, random_state=0, **base).fit(X).n_pretrain_steps_ == 6  # no floor: 2 epochs
    # the schedule changes the pretraining (same seed, same batches), and both reduce the loss
    cosine = IDEC(3, random_state=0, **dict(base, pretrain_epochs=20)).fit(X)
    constant = IDEC(3, random_state=0, **dict(base, pretrain_epochs=20, pretrain_schedule="constant")).fit(X)
    assert cosine.pretrain_loss_[0] == pytest.approx(constant.pretrain_loss_[0], rel=1e-3)  # near the peak rate
    assert cosine.pretrain_loss_[-1] != constant.pretrain_loss_[-1]
    for fit in (cosine, constant):
        assert fit.pretrain_loss_[-1] < fit.pretrain_loss_[0]


@pytest.mark.parametrize("bad, match", [(dict(pretrain_schedule="step"), "pretrain_schedule must be one of"),
                                        (dict(pretrain_lr=0.0), "pretrain_lr=0.0")])
def test_bad_pretraining_parameters_are_named(blobs, bad, match):
    with pytest.raises(ValueError, match=match):
        DEC(3, **dict(SMALL, **bad)).fit(blobs[0])


def test_global_torch_rng_untouched(blobs):
    X, _ = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DEC(3, random_state=0, **SMALL).fit(X)
    torch.testing.assert_close(torch.rand(3), expected)


def test_kl_reduction():
    q = torch.softmax(torch.randn(16, 5), 1)
    p = target_distribution(q)
    kl_sum = (p * (p.log() - q.log())).sum()
    torch.testing.assert_close(kl_clustering_loss(p, q.log(), "sum"), kl_sum)
    torch.testing.assert_close(kl_clustering_loss(p, q.log(), "batchmean"), kl_sum / 16)
    # equals torch's kl_div with reduction="batchmean" (not its default "mean" = / (B·K))
    torch.testing.assert_close(kl_clustering_loss(p, q.log()),
                               torch.nn.functional.kl_div(q.log(), p, reduction="batchmean"))
    with pytest.raises(ValueError, match="reduction"):
        kl_clustering_loss(p, q.log(), "mean")


def test_target_distribution_sharpens():
    q = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    p = target_distribution(q)
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    assert p[0, 0] > q[0, 0] and p[1, 1] > q[1, 1]


def test_dec_kernel_matches_formula():
    head = DECHead(3, 2)
    with torch.no_grad():
        head.centres.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
    z = torch.tensor([[1.0, 1.0]])
    d2 = ((z - head.centres) ** 2).sum(1)
    ref = 1 / (1 + d2)
    torch.testing.assert_close(head.soft_assign(z)[0], ref / ref.sum())


def test_head_fixed_target_schedule_and_em(blobs):
    X, y = blobs
    z = torch.as_tensor(X[:, :2], dtype=torch.float32)
    head = DECHead(3, 2, learn_scales=True, learn_weights=True, update_interval=5)
    labels = head.init_centres(z, n_init=5, random_state=0)
    assert metrics.ari(y, labels) > 0.9
    with pytest.raises(RuntimeError, match="update_target"):
        head.loss(z[:4], np.arange(4))
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    targets = []
    for step in range(12):
        if head.target_due(step):
            targets.append(head.update_target(z).clone())
        stored = head.target.clone()
        loss = head.loss(z[:64], np.arange(64))
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.testing.assert_close(head.target, stored)  # fixed between updates
    assert len(targets) == 3  # steps 0, 5, 10
    # EM: centres move to the responsibility-weighted means of well-separated clusters
    head.em_update(z)
    means = torch.stack([z[torch.as_tensor(labels) == j].mean(0) for j in range(3)])
    d = torch.cdist(head.centres.detach(), means).min(1).values
    assert d.max() < 0.3
    assert torch.isfinite(head.log_scales).all()
    torch.testing.assert_close(head.soft_assign(z).sum(1), torch.ones(len(z)))


def _idec_accuracy_on_digits(seed: int) -> float:
    """One seed of the digits comparison, in a worker process of its own (one torch thread)."""
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    return metrics.accuracy(y, IDEC(10, random_state=seed).fit_predict(X / 16.0))


@pytest.mark.slow
def test_idec_beats_kmeans_on_digits_median_over_seeds():
    # Issue 12: IDEC's median accuracy over five seeds must not fall below k-means'. The criterion is a
    # median because one seed in five or six lands in a poor partition (over 15 seeds, 12 beat k-means'
    # median with the default pretraining, 13 with the earlier 4.5x longer one: bench/idec_pretraining.py).
    # A default IDEC fit on digits is ~30 s on one core of a 2-core Zen 1; the seeds are fitted one
    # process per core (spawned: no OpenMP state is forked) only until the verdict is known: the median
    # of five is above the bar exactly when three seeds are, so the test stops at the third seed above
    # (or below) it; the seeds it skips cannot change the verdict.
    X, y = load_digits(return_X_y=True)
    km = [metrics.accuracy(y, KMeans(10, n_init=10, random_state=s).fit_predict(X / 16.0)) for s in range(5)]
    bar = float(np.median(km))
    above, below = [], []
    with mp.get_context("spawn").Pool(min(5, available_cores())) as pool:  # leaving it terminates the rest
        for acc in pool.imap_unordered(_idec_accuracy_on_digits, range(5)):
            (above if acc >= bar else below).append(acc)
            if len(above) == 3 or len(below) == 3:
                break
    assert len(above) == 3, f"IDEC accuracy above the k-means median {bar:.3f}: {above}, below: {below}"

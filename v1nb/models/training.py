"""Training loop: Poisson loss, Adam, plateau learning-rate decay, early stopping.

The reference schedule (Sinz-lab "standard trainer"): the loss is the Poisson negative
log-likelihood ``ŷ − y log(ŷ + 1e-8)`` summed over the batch and neurons and scaled by
``√(N_train / B)``, plus the core and readout penalties. After every epoch the mean
single-trial correlation on the validation trials is computed; when it has not improved by more
than ``tolerance`` for
``patience`` epochs the best weights are restored and the learning rate is multiplied by
``lr_decay_factor``; after ``max_lr_decays`` decays the next plateau ends training (with the best
weights restored).

Reproducibility: every random choice (initialisation, batch order, readout position samples)
comes from ``seed``; on CPU with the same thread count the same seed gives the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from v1nb.metrics import _corr
from v1nb.models.config import ModelConfig
from v1nb.models.data import TrainingData
from v1nb.models.network import CoreReadout


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: unchanged), then restore the previous count.

    On a machine shared by several processes, one thread per process is often much faster than
    torch's default (oversubscribed threads spin and wait on each other).
    """
    if n <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def poisson_loss(rates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ (ŷ − y log(ŷ + 1e-8)) over observed entries (NaN targets are skipped)."""
    observed = ~torch.isnan(targets)
    y = torch.where(observed, targets, torch.zeros_like(targets))
    return torch.where(observed, rates - y * torch.log(rates + 1e-8), torch.zeros_like(rates)).sum()


def mse_loss(rates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ (ŷ − y)² over observed entries."""
    observed = ~torch.isnan(targets)
    return torch.where(observed, rates - torch.nan_to_num(targets), torch.zeros_like(rates)).pow(2).sum()


def predict_batches(network: CoreReadout, images: torch.Tensor, image_index: torch.Tensor,
                    device: torch.device, batch_size: int = 256, channels_last: bool = False) -> torch.Tensor:
    """Rates ``(len(image_index), N)`` (scaled units) in evaluation mode, on CPU."""
    was_training = network.training
    network.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(image_index), batch_size):
            x = images[image_index[start:start + batch_size]].to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(network(x).cpu())
    network.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


def validation_correlation(network: CoreReadout, data: TrainingData, device: torch.device,
                           channels_last: bool = False) -> float:
    """Mean over neurons of the single-trial correlation on the validation trials."""
    pred = predict_batches(network, data.images, data.val_images, device, channels_last=channels_last)
    return float(np.mean(_corr(data.val_responses.double().numpy(), pred.double().numpy())))


def train(network: CoreReadout, data: TrainingData, config: ModelConfig, generator: torch.Generator) -> dict[str, Any]:
    """Train ``network`` in place and return the training history.

    Parameters
    ----------
    network : CoreReadout
    data : TrainingData
    config : ModelConfig
    generator : torch.Generator
        Batch order (and, held by the readout, position samples).

    Returns
    -------
    dict
        ``epochs``: list of per-epoch records (``epoch``, ``loss``, ``val_corr``, ``lr``,
        ``seconds``); ``best_epoch``, ``best_val_corr``, ``lr_decays``, ``stopped`` (reason),
        ``train_seconds`` (wall, training steps only), ``cpu_seconds`` (process CPU time of the
        whole loop: the wall time an unshared machine would need at one thread),
        ``images_per_second`` (forward + backward, wall), ``images_per_cpu_second`` (the same per
        second of process CPU time: the rate of an unshared machine), ``n_train``, ``n_val``,
        ``validation_source``, ``n_masked``, ``device``.
    """
    device = resolve_device(config.device)
    network.to(device)
    if config.channels_last:
        network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    loss_fn = poisson_loss if config.loss == "poisson" else mse_loss
    n_train = len(data.train_images)
    batch = min(config.batch_size, n_train)
    best = validation_correlation(network, data, device, config.channels_last)
    best_state = copy.deepcopy(network.state_dict())
    history: dict[str, Any] = {
        "epochs": [{"epoch": 0, "loss": float("nan"), "val_corr": best, "lr": config.lr, "seconds": 0.0}],
        "n_train": n_train, "n_val": len(data.val_images), "validation_source": data.validation_source,
        "n_masked": data.n_masked, "device": str(device),
    }
    best_epoch, since_best, decays, lr, reference = 0, 0, 0, config.lr, best
    train_seconds, train_cpu_seconds, images_seen = 0.0, 0.0, 0
    cpu_start = time.process_time()
    stopped = "max_epochs"
    bar = tqdm(range(1, config.max_epochs + 1), desc="training", disable=not config.progress, leave=False)
    for epoch in bar:
        network.train()
        start = time.perf_counter()
        cpu_epoch = time.process_time()
        order = torch.randperm(n_train, generator=generator)
        total = 0.0
        for first in range(0, n_train, batch):
            idx = order[first:first + batch]
            x = data.images[data.train_images[idx]].to(device)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.train_responses[idx].to(device)
            scale = math.sqrt(n_train / len(idx))
            loss = scale * loss_fn(network(x), y) + network.regularizer()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            images_seen += len(idx)
        train_seconds += time.perf_counter() - start
        train_cpu_seconds += time.process_time() - cpu_epoch
        corr = validation_correlation(network, data, device, config.channels_last)
        history["epochs"].append({"epoch": epoch, "loss": total, "val_corr": corr, "lr": lr,
                                  "seconds": time.perf_counter() - start})
        bar.set_postfix(val_corr=f"{corr:.4f}", lr=f"{lr:.2g}")
        if not math.isfinite(total):
            stopped = "diverged"
            break
        if corr > best:  # the weights to restore: the best seen, however small the gain
            best, best_epoch = corr, epoch
            best_state = copy.deepcopy(network.state_dict())
        if corr > reference + config.tolerance:  # progress that counts against the plateau
            reference, since_best = corr, 0
            continue
        since_best += 1
        if since_best < config.patience:
            continue
        network.load_state_dict(best_state)
        if decays >= config.max_lr_decays:
            stopped = "early_stopping"
            break
        decays += 1
        since_best = 0
        lr *= config.lr_decay_factor
        for group in optimizer.param_groups:
            group["lr"] = lr
    bar.close()
    network.load_state_dict(best_state)
    network.eval()
    history.update(best_epoch=best_epoch, best_val_corr=best, lr_decays=decays, stopped=stopped,
                   train_seconds=train_seconds, images_per_second=images_seen / max(train_seconds, 1e-9),
                   cpu_seconds=time.process_time() - cpu_start,
                   images_per_cpu_second=images_seen / max(train_cpu_seconds, 1e-9))
    return history

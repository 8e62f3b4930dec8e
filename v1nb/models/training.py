"""Training loop: Poisson loss, Adam, plateau learning-rate decay, early stopping.

The reference schedule (Sinz-lab "standard trainer"): the loss is the Poisson negative
log-likelihood ``ŷ − y log(ŷ + 1e-8)`` summed over the batch and neurons and scaled by
``√(N_train / B)``, plus the core and readout penalties. After every epoch the mean
single-trial correlation on the validation trials is computed; when it has not improved by more
than ``tolerance`` for
``patience`` epochs the best weights are restored and the learning rate is multiplied by
``lr_decay_factor``; after ``max_lr_decays`` decays the next plateau ends training (with the best
weights restored).

The objective is a sum of named terms (:mod:`v1nb.models.objectives`); each is logged per epoch.
``config.trainable`` chooses the parameters that train (a frozen core also keeps its batch-norm
statistics). A network with a temporal interaction stage sees its own earlier feed-forward
predictions (:class:`v1nb.models.context.History`), recomputed at every epoch start.

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
from tqdm import tqdm  # the plain bar: drawn on a terminal only (disable=None), never in an executed notebook

from v1nb.metrics import _corr
from v1nb.models.config import ModelConfig
from v1nb.models.context import Context, History
from v1nb.models.data import TrainingData
from v1nb.models.network import CoreReadout
from v1nb.models.objectives import Batch, Term, check_terms, default_terms, mse_loss, poisson_loss  # noqa: F401
from v1nb.optim import adam


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


#: Largest core output (bytes) a trainer with a frozen core keeps in memory instead of recomputing it
#: every batch; above it the core runs forward on every batch as when it trains.
FEATURE_CACHE_BYTES = 4 * 2 ** 30


@contextlib.contextmanager
def evaluation_mode(module: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode inside the block; afterwards every submodule's own mode as it was.

    ``module.train(was_training)`` would not do: it sets every submodule alike, and would put a frozen
    core, kept in evaluation mode during training, back into training mode (its batch-norm statistics
    would then move)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class ImageSource:
    """The rows of an image bank as the network reads them: pixels, or a frozen core's output.

    While the core trains, every batch runs through it. When it is frozen (``trainable`` other than
    "all"; it is also in evaluation mode, so its output depends on the image only) its output for
    every image of the bank is computed once and the readout reads the stored features, which
    saves the core's forward pass on every step: on the default twin a frozen-core epoch runs 1.27x
    (CNN) to 1.4x (rotation core) faster, with the same weights (``bench/finetune.py``). Mixing the
    two is not allowed: :meth:`freeze` is called only by a trainer whose core has no trainable
    parameters.

    Parameters
    ----------
    images : tensor (n_images, 1, H, W)
        The (standardised) image bank; rows are indexed by trial.
    device : torch.device
    channels_last : bool
        Pass pixels to the core in channels-last memory format.
    """

    def __init__(self, images: torch.Tensor, device: torch.device, channels_last: bool = False):
        self.images, self.device, self.channels_last = images, device, channels_last
        self.features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def freeze(self, network: CoreReadout, batch_size: int = 256, max_bytes: int | None = None) -> "ImageSource":
        """Compute the core's output ``(n_images, C, H', W')`` for every image once (in evaluation mode).

        Does nothing when that output would exceed ``max_bytes`` (default :data:`FEATURE_CACHE_BYTES`,
        read at call time); the core then runs per batch.
        """
        max_bytes = FEATURE_CACHE_BYTES if max_bytes is None else max_bytes
        if not len(self.images):
            return self
        # batch-norm statistics are used, never updated (a training-mode call would)
        with evaluation_mode(network.core), torch.no_grad():
            shape = network.core_features(self._pixels(torch.arange(1))).shape[1:]
            if len(self.images) * int(np.prod(shape)) * 4 > max_bytes:
                return self
            out = [network.core_features(self._pixels(torch.arange(i, min(i + batch_size, len(self.images)))))
                   .cpu() for i in range(0, len(self.images), batch_size)]
        self.features = torch.cat(out)
        return self

    def _pixels(self, rows: torch.Tensor) -> torch.Tensor:
        x = self.images[rows].to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def drive(self, network: CoreReadout, rows: torch.Tensor) -> torch.Tensor:
        """The readout's drive ``(len(rows), N)`` for image rows ``rows`` (int64)."""
        if self.features is not None:
            return network.readout(self.features[rows].to(self.device))
        return network.drive(self._pixels(rows))


def _source(images: "torch.Tensor | ImageSource", device: torch.device, channels_last: bool) -> ImageSource:
    return images if isinstance(images, ImageSource) else ImageSource(images, device, channels_last)


def predict_batches(network: CoreReadout, images: "torch.Tensor | ImageSource", image_index: torch.Tensor,
                    device: torch.device, batch_size: int = 256, channels_last: bool = False,
                    trials: torch.Tensor | None = None, history: History | None = None) -> torch.Tensor:
    """Rates ``(len(image_index), N)`` (scaled units) in evaluation mode, on CPU.

    ``images`` is the image bank (or an :class:`ImageSource` over it); ``trials`` (positions in the
    presentation sequence) and ``history`` are passed to an interaction stage that reads earlier trials.
    """
    source = _source(images, device, channels_last)
    out = []
    lags = network.history_lags
    with evaluation_mode(network), torch.no_grad():
        for start in range(0, len(image_index), batch_size):
            drive = source.drive(network, image_index[start:start + batch_size])
            context = None
            if network.interaction is not None and trials is not None:
                t = trials[start:start + batch_size].to(device)
                context = Context(trial=t, history=history.lagged(t, lags).to(device) if lags and history else None)
            out.append(network.respond(drive, context).cpu())
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


def sequence_history(network: CoreReadout, images: "torch.Tensor | ImageSource", sequence_images: torch.Tensor,
                     device: torch.device, channels_last: bool = False) -> History:
    """The network's feed-forward predictions for every trial of the sequence (:class:`History`).

    In evaluation mode the feed-forward prediction depends on the image only, so it is computed
    once per image and indexed by the sequence.
    """
    source = _source(images, device, channels_last)
    out = []
    with evaluation_mode(network), torch.no_grad():
        for start in range(0, len(source), 256):
            rows = torch.arange(start, min(start + 256, len(source)))
            out.append(network.output(source.drive(network, rows)).cpu())
    return History(torch.cat(out)[sequence_images])


def validation_correlation(network: CoreReadout, data: TrainingData, device: torch.device,
                           channels_last: bool = False, history: History | None = None,
                           source: ImageSource | None = None) -> float:
    """Mean over neurons of the single-trial correlation on the validation trials."""
    pred = predict_batches(network, source if source is not None else data.images, data.val_images, device,
                           channels_last=channels_last, trials=data.val_trials, history=history)
    return float(np.mean(_corr(data.val_responses.double().numpy(), pred.double().numpy())))


class Trainer:
    """The state of one training run, handed to objective terms and their hooks.

    Attributes
    ----------
    network : CoreReadout
    data : TrainingData
    config : ModelConfig
    generator : torch.Generator
    optimizer : torch.optim.Optimizer
    device : torch.device
    step : int
        Optimiser steps taken so far (0 before the first).
    epoch : int
        Current epoch (1-based; 0 before training).
    history : History or None
        The network's own feed-forward predictions over the sequence (temporal stages only).
    source : ImageSource
        What the network reads per image row (pixels, or a frozen core's stored output).
    """

    def __init__(self, network: CoreReadout, data: TrainingData, config: ModelConfig,
                 generator: torch.Generator, optimizer: torch.optim.Optimizer, device: torch.device,
                 source: ImageSource | None = None):
        self.network, self.data, self.config, self.generator = network, data, config, generator
        self.optimizer, self.device = optimizer, device
        self.source = source if source is not None else ImageSource(data.images, device, config.channels_last)
        self.step, self.epoch = 0, 0
        self.history: History | None = None

    def refresh_history(self) -> None:
        """Recompute :attr:`history` from the current weights (when the network reads earlier trials)."""
        if self.network.history_lags > 0:
            self.history = sequence_history(self.network, self.source, self.data.sequence_images,
                                            self.device, self.config.channels_last)

    def embeddings(self) -> torch.Tensor:
        """The readout embeddings ``(N, C)`` (with gradient)."""
        return self.network.embedding()

    def validation_correlation(self) -> float:
        return validation_correlation(self.network, self.data, self.device, self.config.channels_last, self.history,
                                      self.source)


def train(network: CoreReadout, data: TrainingData, config: ModelConfig, generator: torch.Generator,
          terms: list[Term] | None = None, store_core_output: bool = True) -> dict[str, Any]:
    """Train ``network`` in place and return the training history.

    Parameters
    ----------
    network : CoreReadout
    data : TrainingData
    config : ModelConfig
    generator : torch.Generator
        Batch order (and, held by the readout, position samples).
    terms : list of Term, optional
        The objective (default: :func:`~v1nb.models.objectives.default_terms` of ``config.loss``).
    store_core_output : bool
        With a frozen core, compute its output for every image once and train on it
        (:meth:`ImageSource.freeze`); False runs the frozen core on every batch (same result up to
        floating-point rounding; the equivalence test uses it).

    Returns
    -------
    dict
        ``epochs``: list of per-epoch records (``epoch``, ``loss``, ``loss_<term>`` for each term,
        ``val_corr``, ``lr``, ``seconds``); ``best_epoch``, ``best_val_corr``, ``lr_decays``,
        ``stopped`` (reason), ``train_seconds`` (wall, training steps only), ``cpu_seconds``
        (process CPU time of the whole loop: the wall time an unshared machine would need at one
        thread), ``images_per_second`` (forward + backward, wall), ``images_per_cpu_second`` (the
        same per second of process CPU time: the rate of an unshared machine), ``n_train``,
        ``n_val``, ``validation_source``, ``n_masked``, ``device``, ``terms``, ``trainable``,
        ``core_output_stored`` (the frozen core's output was computed once).
    """
    terms = check_terms(list(terms) if terms is not None else default_terms(config.loss))
    device = resolve_device(config.device)
    network.to(device)
    if config.channels_last:
        network.to(memory_format=torch.channels_last)
    trainable = network.parameter_groups(config.trainable)
    trained = {id(p) for p in trainable}
    frozen = [p for p in network.parameters() if id(p) not in trained and p.requires_grad]
    for p in frozen:  # no gradients for what does not train (and no wasted backward work)
        p.requires_grad_(False)
    core_frozen = not any(id(p) in trained for p in network.core.parameters())
    optimizer = adam(trainable, lr=config.lr)  # fused on CPU and CUDA (v1nb.optim)
    source = ImageSource(data.images, device, config.channels_last)
    if core_frozen and store_core_output:
        source.freeze(network)
    trainer = Trainer(network, data, config, generator, optimizer, device, source)
    n_train = len(data.train_images)
    batch = min(config.batch_size, n_train)
    trainer.refresh_history()
    for term in terms:
        term.on_fit_start(trainer)
    best = trainer.validation_correlation()
    best_state = copy.deepcopy(network.state_dict())
    history: dict[str, Any] = {
        "epochs": [{"epoch": 0, "loss": float("nan"), "val_corr": best, "lr": config.lr, "seconds": 0.0}],
        "n_train": n_train, "n_val": len(data.val_images), "validation_source": data.validation_source,
        "n_masked": data.n_masked, "device": str(device), "terms": [t.spec() for t in terms],
        "trainable": config.trainable, "core_output_stored": source.features is not None,
    }
    best_epoch, since_best, decays, lr, reference = 0, 0, 0, config.lr, best
    train_seconds, train_cpu_seconds, images_seen = 0.0, 0.0, 0
    cpu_start = time.process_time()
    stopped = "max_epochs"
    lags = network.history_lags
    bar = tqdm(range(1, config.max_epochs + 1), desc="training", disable=None if config.progress else True,
               leave=False)
    try:
        for epoch in bar:
            trainer.epoch = epoch
            network.train()
            if core_frozen:
                network.core.eval()  # a frozen core keeps its batch-norm statistics too
            start = time.perf_counter()
            cpu_epoch = time.process_time()
            if epoch > 1:
                trainer.refresh_history()
            for term in terms:
                term.on_epoch_start(trainer)
            order = torch.randperm(n_train, generator=generator)
            total = 0.0
            per_term = {term.name: 0.0 for term in terms}
            for first in range(0, n_train, batch):
                idx = order[first:first + batch]
                drive = source.drive(network, data.train_images[idx])
                y = data.train_responses[idx].to(device)
                context = None
                if network.interaction is not None:
                    t = data.train_trials[idx].to(device)
                    context = Context(trial=t, history=trainer.history.lagged(t, lags).to(device) if lags else None)
                rates = network.respond(drive, context)
                step_batch = Batch(rates, y, idx, n_train)
                values = [term.loss(step_batch, trainer) for term in terms]
                loss = values[0]
                for value in values[1:]:
                    loss = loss + value
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                trainer.step += 1
                for term in terms:
                    term.on_step_end(trainer)
                total += float(loss.detach())
                for term, value in zip(terms, values):
                    per_term[term.name] += float(value.detach())
                images_seen += len(idx)
            train_seconds += time.perf_counter() - start
            train_cpu_seconds += time.process_time() - cpu_epoch
            corr = trainer.validation_correlation()
            history["epochs"].append({"epoch": epoch, "loss": total,
                                      **{f"loss_{name}": v for name, v in per_term.items()},
                                      "val_corr": corr, "lr": lr, "seconds": time.perf_counter() - start})
            bar.set_postfix(val_corr=f"{corr:.4f}", lr=f"{lr:.2g}")
            if not math.isfinite(total):
                stopped = "diverged"
                break
            if not config.early_stopping:  # a fixed schedule: the last weights are the result
                best, best_epoch = corr, epoch
                best_state = copy.deepcopy(network.state_dict())
                continue
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
    finally:
        bar.close()
        for p in frozen:
            p.requires_grad_(True)
    network.load_state_dict(best_state)
    network.eval()
    history.update(best_epoch=best_epoch, best_val_corr=best, lr_decays=decays, stopped=stopped,
                   train_seconds=train_seconds, images_per_second=images_seen / max(train_seconds, 1e-9),
                   cpu_seconds=time.process_time() - cpu_start,
                   images_per_cpu_second=images_seen / max(train_cpu_seconds, 1e-9))
    return history

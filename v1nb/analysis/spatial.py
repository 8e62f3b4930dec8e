"""Does the spatial layout of the responses carry information? Decoding from a grid of cortical positions.

Each neuron is assigned to a bin of a grid over its imaging plane (``bin_um`` µm squares; one
grid per plane, the planes stacked as channels); a trial becomes an image of mean responses per
bin (0 where a bin has no neuron). A small convolutional network decodes the stimulus category
from these images. Its convolutions can exploit that neighbouring neurons respond alike
(retinotopy, local coupling) — which a position-blind decoder cannot. Two controls separate
layout from content: the *same* CNN on grids built after shuffling which neuron sits where
(same responses and bin occupancy, layout destroyed), and logistic regression on the neuron
vector (no positions at all). All are scored by balanced accuracy with the repeats of an image
kept in one fold.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold

from v1nb.analysis.decoding import category_trials, make_decoder
from v1nb.data.schema import POSITION_COORDS

__all__ = ["GridCNNDecoder", "PositionGrid", "SpatialDecoding", "position_grid", "spatial_decoding"]


@dataclass(frozen=True)
class PositionGrid:
    """Where each neuron falls on the (plane, row, column) grid.

    Attributes
    ----------
    plane, row, col : (neuron,) int arrays
    shape : (n_planes, n_rows, n_cols)
    bin_um : float
    plane_depths : (n_planes,) array
        Depth (µm) of each plane.
    """

    plane: np.ndarray
    row: np.ndarray
    col: np.ndarray
    shape: tuple[int, int, int]
    bin_um: float
    plane_depths: np.ndarray

    def to_grid(self, X: np.ndarray) -> np.ndarray:
        """Mean response per bin: (trial, neuron) → (trial, plane, row, col) float32."""
        X = np.asarray(X, dtype=np.float32)
        n_bins = int(np.prod(self.shape))
        flat = np.ravel_multi_index((self.plane, self.row, self.col), self.shape)
        counts = np.bincount(flat, minlength=n_bins).astype(np.float32)
        # Sum the neurons of each bin with one sparse-like matrix product.
        assign = np.zeros((X.shape[1], n_bins), dtype=np.float32)
        assign[np.arange(X.shape[1]), flat] = 1.0
        summed = X @ assign
        return (summed / np.where(counts > 0, counts, 1.0)).reshape(len(X), *self.shape)

    def shuffled(self, random_state: int | None = 0) -> "PositionGrid":
        """The same bins with the neurons permuted among them (layout destroyed, occupancy kept)."""
        perm = np.random.default_rng(random_state).permutation(len(self.plane))
        return PositionGrid(self.plane[perm], self.row[perm], self.col[perm], self.shape, self.bin_um, self.plane_depths)


def position_grid(ds: xr.Dataset, bin_um: float = 32.0, plane_tolerance_um: float = 5.0) -> PositionGrid:
    """Bin the neurons of ``ds`` onto a grid of cortical positions, one grid per imaging plane.

    Planes are the distinct ``cortical_z`` values (depths closer than ``plane_tolerance_um`` are
    one plane).
    """
    missing = [c for c in POSITION_COORDS if c not in ds.coords]
    if missing:
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has no neuron positions ({missing} missing): "
                         "spatial decoding needs cortical_x/y/z")
    if bin_um <= 0:
        raise ValueError(f"bin_um must be > 0, got {bin_um}")
    x, y, z = (np.asarray(ds[c].values, dtype=np.float64) for c in POSITION_COORDS)
    depths = np.sort(np.unique(np.round(z / plane_tolerance_um) * plane_tolerance_um))
    plane = np.abs(z[:, None] - depths[None, :]).argmin(axis=1)
    col = np.floor((x - x.min()) / bin_um).astype(int)
    row = np.floor((y - y.min()) / bin_um).astype(int)
    return PositionGrid(plane, row, col, (len(depths), int(row.max()) + 1, int(col.max()) + 1), float(bin_um), depths)


class GridCNNDecoder(BaseEstimator, ClassifierMixin):
    """A small CNN classifier of (plane, row, col) response grids (PyTorch, CPU).

    Two 3×3 convolution blocks (ReLU, the second followed by 2×2 max-pooling), global average
    pooling and a linear read-out; Adam with weight decay, inputs standardised per bin.

    Parameters
    ----------
    channels : int
        Feature maps per convolution.
    epochs, batch_size, lr, weight_decay
        Training.
    balanced : bool
        Weight the loss by inverse class frequency.
    random_state : int, optional
    """

    def __init__(self, channels: int = 16, epochs: int = 30, batch_size: int = 128, lr: float = 3e-3,
                 weight_decay: float = 1e-3, balanced: bool = True, random_state: int | None = 0):
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.balanced = balanced
        self.random_state = random_state

    def _network(self, n_planes: int, n_classes: int):
        import torch.nn as nn

        c = self.channels
        return nn.Sequential(
            nn.Conv2d(n_planes, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, n_classes),
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> "GridCNNDecoder":
        """Train on grids ``X`` (sample, plane, row, col) and labels ``y`` (sample,)."""
        import torch

        from v1nb.optim import adam

        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 4:
            raise ValueError(f"X must be (sample, plane, row, col), got shape {X.shape}")
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.mean_, std = X.mean(axis=0), X.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)
        generator = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        torch.manual_seed(0 if self.random_state is None else int(self.random_state))
        self.net_ = self._network(X.shape[1], len(self.classes_))
        xt = torch.from_numpy((X - self.mean_) / self.std_)
        yt = torch.from_numpy(codes.astype(np.int64))
        weight = None
        if self.balanced:
            counts = np.bincount(codes, minlength=len(self.classes_)).astype(np.float32)
            weight = torch.from_numpy(counts.sum() / (len(counts) * np.maximum(counts, 1)))
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        opt = adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.net_.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(xt), generator=generator).split(self.batch_size):
                opt.zero_grad()
                loss = loss_fn(self.net_(xt[batch]), yt[batch])
                loss.backward()
                opt.step()
        self.net_.eval()
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (sample,)."""
        import torch

        X = (np.asarray(X, dtype=np.float32) - self.mean_) / self.std_
        with torch.no_grad():
            logits = self.net_(torch.from_numpy(X))
        return self.classes_[logits.argmax(dim=1).numpy()]


@contextlib.contextmanager
def _limited_threads(n_threads: int | None) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads and BLAS/OpenMP threads (None: no change)."""
    if n_threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        with threadpool_limits(int(n_threads)):
            yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class SpatialDecoding:
    """Balanced accuracy of each decoder (mean over folds, per-fold scores) and the grid used."""

    scores: dict[str, float]
    fold_scores: dict[str, np.ndarray]
    chance: float
    grid: PositionGrid
    occupancy: float


def spatial_decoding(
    ds: xr.Dataset,
    *,
    bin_um: float = 32.0,
    tiers: Sequence[str] = ("train", "validation", "test"),
    n_splits: int = 3,
    epochs: int = 15,
    channels: int = 16,
    max_trials: int | None = None,
    n_threads: int | None = 1,
    random_state: int | None = 0,
) -> SpatialDecoding:
    """Compare a CNN on the cortical-position grid with position-blind decoders of the category.

    Decoders: ``"cnn"`` (true positions), ``"cnn_shuffled"`` (positions permuted among neurons),
    ``"logistic"`` (neuron vector). Folds keep all repeats of an image together.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``category`` and cortical positions.
    bin_um : float
        Grid bin size (µm).
    n_splits : int
        Grouped, stratified folds.
    epochs, channels
        CNN training length and width.
    max_trials : int, optional
        Use a random subset of this many trials (to bound run time).
    n_threads : int, optional
        torch and BLAS threads while fitting; None keeps the libraries' defaults. Default 1:
        on a shared 2-core machine multithreaded torch/BLAS ran several times slower than one
        thread (see :func:`v1nb.analysis.decode_category` and bench/analysis.py).
    random_state : int, optional

    Returns
    -------
    SpatialDecoding
    """
    grid = position_grid(ds, bin_um)
    X, y, groups = category_trials(ds, tiers)
    rng = np.random.default_rng(random_state)
    if max_trials is not None and len(y) > max_trials:
        keep = np.sort(rng.choice(len(y), max_trials, replace=False))
        X, y, groups = X[keep], y[keep], groups[keep]
    grids = {"cnn": grid.to_grid(X), "cnn_shuffled": grid.shuffled(random_state).to_grid(X)}
    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=random_state)
    fold_scores: dict[str, list[float]] = {"cnn": [], "cnn_shuffled": [], "logistic": []}
    with _limited_threads(n_threads):
        for train, test in cv.split(X, y, groups):
            for name, G in grids.items():
                model = GridCNNDecoder(channels=channels, epochs=epochs, random_state=random_state).fit(G[train], y[train])
                fold_scores[name].append(balanced_accuracy_score(y[test], model.predict(G[test])))
            linear = make_decoder("logistic", random_state=random_state).fit(X[train], y[train])
            fold_scores["logistic"].append(balanced_accuracy_score(y[test], linear.predict(X[test])))
    occupied = len(np.unique(np.ravel_multi_index((grid.plane, grid.row, grid.col), grid.shape)))
    return SpatialDecoding({k: float(np.mean(v)) for k, v in fold_scores.items()},
                           {k: np.asarray(v) for k, v in fold_scores.items()},
                           1.0 / len(np.unique(y)), grid, occupied / float(np.prod(grid.shape)))

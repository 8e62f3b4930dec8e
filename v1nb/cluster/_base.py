"""Shared machinery of the spectral estimators (SEC, LDMGI): input checks and discretisation."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from v1nb.cluster._validation import check_n_clusters, warn_duplicates
from v1nb.cluster.spectral import _row_normalize, kmeans_rows, relabel_contiguous, spectral_rotation

DISCRETIZATIONS = ("rotation", "kmeans")


class SpectralDiscretizerMixin(ClusterMixin, BaseEstimator):
    """Validation and the rotation / k-means discretisation of a continuous embedding F (N, c)."""

    def _validate_input(self, X, reset: bool = True) -> np.ndarray:
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset,
                          ensure_min_samples=2 if reset else 1)
        return np.asarray(X, dtype=np.float64)

    def _check_common(self, X: np.ndarray, n_neighbors: int) -> int:
        if self.discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, "
                             f"got {self.discretization!r}")
        if self.on_disconnected not in ("warn", "raise", "ignore"):
            raise ValueError("on_disconnected must be 'warn', 'raise' or 'ignore', "
                             f"got {self.on_disconnected!r}")
        c = check_n_clusters(self.n_clusters, X.shape[0])
        warn_duplicates(X, n_neighbors, n_clusters=c)
        return c

    def _fit_one_cluster(self, n: int) -> None:
        """The fitted state for ``n_clusters=1``: every point in cluster 0, a constant embedding.

        No graph is built: one cluster needs no eigenvectors, and the graph of a tiny or
        degenerate input (which is where one cluster is asked for) may not exist.
        """
        self.labels_ = np.zeros(n, dtype=np.intp)
        self.embedding_ = np.full((n, 1), 1.0 / np.sqrt(n))
        self.eigenvalues_ = np.zeros(1)
        self.n_components_graph_ = 1

    def _discretize_fit(self, F: np.ndarray, random_state) -> np.ndarray:
        """Discretise the training embedding; store what :meth:`_discretize_new` needs."""
        c = F.shape[1]
        if self.discretization == "rotation":
            labels, R, _ = spectral_rotation(F, n_restarts=self.n_init, random_state=random_state)
            self.rotation_ = R
            # Clusters may come out empty; keep a map from rotation columns to contiguous labels.
            used = np.unique(labels)
            lut = np.full(c, -1, dtype=np.intp)
            lut[used] = np.arange(used.size)
            self._label_map = lut
            return lut[labels]
        labels, km = kmeans_rows(F, c, n_init=self.n_init, random_state=random_state)
        self.kmeans_ = km
        return relabel_contiguous(labels)

    def _discretize_new(self, F: np.ndarray) -> np.ndarray:
        if self.discretization == "rotation":
            cols = np.argmax(_row_normalize(F) @ self.rotation_, axis=1)
            lab = self._label_map[cols]
            # A new point may land in a rotation column no training point used: nearest used one.
            bad = lab < 0
            if bad.any():
                scores = _row_normalize(F[bad]) @ self.rotation_
                scores[:, self._label_map < 0] = -np.inf
                lab[bad] = self._label_map[np.argmax(scores, axis=1)]
            return lab
        return self.kmeans_.predict(_row_normalize(F))

    def fit_predict(self, X, y=None, **kwargs):
        """Fit and return ``labels_`` (shape (N,))."""
        return self.fit(X, y, **kwargs).labels_

    def _fitted(self) -> None:
        check_is_fitted(self, "labels_")

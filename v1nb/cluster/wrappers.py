"""Baselines behind one interface, so chapters can compare methods in a single loop.

:class:`GMMClustering` gives a Gaussian mixture ``labels_`` and BIC/AIC; :func:`make_clusterer`
builds any of the package's or sklearn's clusterers from a name with the same
``(n_clusters, random_state)`` arguments.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted, validate_data

from v1nb.cluster._validation import check_distinct_rows, check_n_clusters


class GMMClustering(ClusterMixin, BaseEstimator):
    """Gaussian mixture as a clusterer: ``labels_`` = most probable component.

    Parameters
    ----------
    n_clusters : int, default=8
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    n_init : int, default=5
    reg_covar : float, default=1e-6
    random_state : int, RandomState or None

    Attributes
    ----------
    labels_ : ndarray of int, shape (N,)
    bic_, aic_ : float
        Information criteria on the training data (lower is better).
    mixture_ : GaussianMixture
    """

    def __init__(self, n_clusters: int = 8, covariance_type: str = "full", n_init: int = 5,
                 reg_covar: float = 1e-6, random_state=None):
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.reg_covar = reg_covar
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the mixture on X (N, D). ``y`` is ignored."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_distinct_rows(X, check_n_clusters(self.n_clusters, X.shape[0]))
        self.mixture_ = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type,
                                        n_init=self.n_init, reg_covar=self.reg_covar,
                                        random_state=self.random_state).fit(X)
        _, self.labels_ = np.unique(self.mixture_.predict(X), return_inverse=True)
        self.labels_ = self.labels_.astype(np.intp)
        self.bic_, self.aic_ = float(self.mixture_.bic(X)), float(self.mixture_.aic(X))
        return self

    def predict(self, X) -> np.ndarray:
        """Most probable component for new points (component indices, as in ``mixture_``)."""
        check_is_fitted(self, "labels_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.mixture_.predict(X).astype(np.intp)


class _SpectralClustering(SpectralClustering):
    """sklearn's SpectralClustering with the package's input checks (it splits identical points
    into arbitrary clusters otherwise)."""

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_distinct_rows(X, check_n_clusters(self.n_clusters, X.shape[0]))
        return super().fit(X, y)


def make_clusterer(name: str, n_clusters: int, random_state=None, **kwargs):
    """A clusterer by name, all taking ``n_clusters`` and ``random_state``.

    Parameters
    ----------
    name : {"kmeans", "gmm", "spectral", "sec", "ldmgi", "dec", "idec", "rotation"}
        ``spectral`` is sklearn's :class:`~sklearn.cluster.SpectralClustering` on a kNN graph.
        All raise a ``ValueError`` when X has fewer distinct rows than ``n_clusters``.
    n_clusters : int
    random_state : int, RandomState or None
    **kwargs
        Forwarded to the estimator.

    Returns
    -------
    An unfitted estimator with ``fit``/``fit_predict``/``labels_``.
    """
    from v1nb.cluster.dec import DEC, IDEC
    from v1nb.cluster.ldmgi import LDMGI
    from v1nb.cluster.rotation import RotationInvariantClustering
    from v1nb.cluster.sec import SEC

    if name == "kmeans":
        kwargs.setdefault("n_init", 10)
        return KMeans(n_clusters, random_state=random_state, **kwargs)
    if name == "spectral":
        kwargs.setdefault("affinity", "nearest_neighbors")
        kwargs.setdefault("n_neighbors", 10)
        return _SpectralClustering(n_clusters, random_state=random_state, **kwargs)
    table = {"gmm": GMMClustering, "sec": SEC, "ldmgi": LDMGI, "dec": DEC, "idec": IDEC,
             "rotation": RotationInvariantClustering}
    if name not in table:
        raise ValueError(f"unknown clusterer {name!r}; choose from "
                         f"{sorted([*table, 'kmeans', 'spectral'])}")
    return table[name](n_clusters=n_clusters, random_state=random_state, **kwargs)

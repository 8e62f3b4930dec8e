"""Clustering population responses, scored by whether the repeats of one image agree.

Trials (rows: presentations of the test images, each image shown several times) are clustered
on their standardised population responses, by k-means or by spectral biclustering (Kluger et
al. 2003; clusters trials and neurons jointly into a checkerboard). A clustering that reflects
the stimulus puts the repeats of one image in the same cluster; one that reflects noise or
slow state does not. The score is the **repeat agreement**: the fraction of pairs of repeats of
an image that share a cluster, compared with the chance agreement ``Σ_k p_k²`` of two random
trials (cluster sizes ``p_k``), and the adjusted Rand index between the labels of repeat 0 and
repeat 1 (0 at chance, 1 when every image's repeats agree and clusters are distinct).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, SpectralBiclustering
from sklearn.metrics import adjusted_rand_score

from v1nb.analysis._inputs import repeats_3d

__all__ = ["ResponseClustering", "cluster_responses", "repeat_agreement"]

METHODS = ("kmeans", "bicluster")


@dataclass(frozen=True)
class ResponseClustering:
    """Cluster labels of trials and how consistent they are across repeats.

    Attributes
    ----------
    labels : (image, repeat) int array
        Cluster of each trial.
    neuron_labels : (neuron,) int array or None
        Neuron cluster (biclustering only).
    agreement : float
        Fraction of same-image repeat pairs in one cluster.
    chance : float
        Agreement expected for random pairs of trials, ``Σ_k p_k²``.
    ari : float
        Adjusted Rand index between the labels of repeat 0 and repeat 1.
    image_ids : (image,) array
    """

    labels: np.ndarray
    neuron_labels: np.ndarray | None
    agreement: float
    chance: float
    ari: float
    image_ids: np.ndarray


def repeat_agreement(labels: np.ndarray) -> tuple[float, float]:
    """Agreement of the cluster labels of an (image, repeat) array, and its chance level."""
    labels = np.asarray(labels)
    n_img, n_rep = labels.shape
    same = (labels[:, :, None] == labels[:, None, :])
    pairs = n_rep * (n_rep - 1)
    agreement = float((same.sum(axis=(1, 2)) - n_rep).sum() / (n_img * pairs))
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return agreement, float((p ** 2).sum())


def cluster_responses(
    data: Any,
    n_clusters: int = 8,
    method: str = "kmeans",
    *,
    tier: str = "test",
    n_neuron_clusters: int | None = None,
    random_state: int | None = 0,
) -> ResponseClustering:
    """Cluster the trials of ``tier`` by their standardised responses.

    Parameters
    ----------
    data : xarray.Dataset or (image, repeat, neuron) array
    n_clusters : int
        Trial clusters.
    method : {"kmeans", "bicluster"}
        K-means (10 restarts) or :class:`sklearn.cluster.SpectralBiclustering`.
    n_neuron_clusters : int, optional
        Neuron clusters of the biclustering (default ``n_clusters``).
    random_state : int, optional

    Returns
    -------
    ResponseClustering
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    R, _, ids = repeats_3d(data, tier)
    n_img, n_rep, n_neu = R.shape
    if not 2 <= n_clusters <= n_img * n_rep:
        raise ValueError(f"n_clusters={n_clusters} must be between 2 and the {n_img * n_rep} trials")
    X = R.reshape(n_img * n_rep, n_neu)
    X = np.where(np.isfinite(X), X, np.nanmean(X, axis=0))
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    neuron_labels = None
    if method == "kmeans":
        labels = KMeans(n_clusters, n_init=10, random_state=random_state).fit_predict(X)
    else:
        # The biclustering normalisation (bistochastic scaling) needs non-negative entries.
        model = SpectralBiclustering((n_clusters, n_neuron_clusters or n_clusters), method="bistochastic",
                                     random_state=random_state).fit(X - X.min() + 1e-3)
        labels, neuron_labels = model.row_labels_, model.column_labels_
    labels = labels.reshape(n_img, n_rep)
    agreement, chance = repeat_agreement(labels)
    return ResponseClustering(labels, neuron_labels, agreement, chance,
                              float(adjusted_rand_score(labels[:, 0], labels[:, 1])), ids)

"""Clustering on plain arrays: spectral (SEC, LDMGI), deep (DEC, IDEC, DEC heads), rotation-invariant.

Estimators follow scikit-learn (``fit``, ``fit_predict``, ``labels_``, ``random_state``) and work on
any (N, D) array — (N, R, F) for the rotation-invariant methods — independent of the dataset
package.

========================================  ==========================================================
:class:`SEC`                              Spectral Embedded Clustering (Nie et al. 2011), matrix-free
:class:`LDMGI`                            Local discriminant models + global integration (Yang 2010)
:class:`DEC`, :class:`IDEC`               Deep embedded clustering (Xie 2016; Guo 2017) with a torch AE
:class:`DECHead`                          KL(P‖Q) clustering loss to attach to any model's embeddings
:class:`RotationMarginalisedDECHead`      the same for neuron × rotation × feature embeddings
:class:`RotationInvariantClustering`      clustering up to cyclic shifts, per-neuron ``shifts_``
:class:`GMMClustering`, make_clusterer    baselines behind one interface
:func:`choose_k`, :func:`select_k`        every K criterion over K against a no-cluster null
:mod:`v1nb.cluster.metrics`               accuracy, nmi, ari, ami, consistency, silhouette
========================================  ==========================================================
"""

from v1nb.cluster import metrics
from v1nb.cluster._validation import DuplicatePointsWarning
from v1nb.cluster.choose_k import choose_k, select_k
from v1nb.cluster.dec import DEC, IDEC, MLPAutoencoder
from v1nb.cluster.graph import DisconnectedGraphWarning
from v1nb.cluster.head import DECHead, RotationMarginalisedDECHead, kl_clustering_loss, target_distribution
from v1nb.cluster.ldmgi import LDMGI
from v1nb.cluster.rotation import RotationInvariantClustering
from v1nb.cluster.sec import SEC
from v1nb.cluster.wrappers import GMMClustering, make_clusterer

ClusteringHead = DECHead

__all__ = [
    "SEC", "LDMGI", "DEC", "IDEC", "MLPAutoencoder", "DECHead", "ClusteringHead",
    "RotationMarginalisedDECHead", "kl_clustering_loss", "target_distribution",
    "RotationInvariantClustering", "GMMClustering", "make_clusterer", "choose_k", "select_k",
    "metrics", "DisconnectedGraphWarning", "DuplicatePointsWarning",
]

"""Every v1nb.cluster estimator passes scikit-learn's estimator checks."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from v1nb.cluster import DEC, IDEC, LDMGI, SEC, GMMClustering, RotationInvariantClustering

# Small networks and few epochs keep the DEC/IDEC checks fast; defaults are exercised elsewhere.
_FAST_DEEP = dict(hidden_dims=(16, 16), latent_dim=3, pretrain_epochs=3, min_pretrain_steps=0, max_iter=30,
                  update_interval=10, n_init=3)

ESTIMATORS = [
    SEC(),
    LDMGI(),
    DEC(**_FAST_DEEP),
    IDEC(**_FAST_DEEP),
    # Flattened (N, R·F) input with R = 1: sklearn's checks only pass 2-D arrays.
    RotationInvariantClustering(n_rotations=1, n_init=3),
    GMMClustering(n_init=1),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)

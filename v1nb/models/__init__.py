"""Core–readout response models: images → predicted responses of every neuron.

A shared convolutional **core** turns an image into feature maps; a per-neuron **readout** picks a
position and a weighting of the features — the weighting ``w_n`` is the neuron's **embedding**.
Conventions follow the Sinz-lab models (Lurz et al. 2021; methods.md §2).

Entry points
------------
fit(dataset, core="cnn" | "rotation" | "ln", readout="gaussian" | "factorized", seed=0, **config)
    Train (or load from the on-disk cache) a :class:`ResponseModel`.
ResponseModel
    ``.fit(ds)``, ``.predict(ds, tier="test")`` → DataArray (trial, neuron),
    ``.embeddings()`` → DataArray (neuron, feature) or (neuron, rotation, feature),
    ``.evaluate(ds, tier)`` → per-neuron metrics (:func:`v1nb.metrics.evaluate`).
save(model, path) / load(path, ds)
    Explicit files (the cache uses them).
make_config(**settings), valid_keys()
    Every setting with its default (:class:`ModelConfig`).

Modules
-------
cores       stacked 2-D CNN core and the LN baseline
rotation    rotation-equivariant core (Hermite steerable filters)
readouts    Gaussian and factorised readouts
network     core + readout + ELU+1 output
data        dataset → training tensors (splits, scaling, NaN masking)
training    Poisson loss, Adam, plateau decay, early stopping
model       ResponseModel (xarray in and out)
cache       models on disk keyed by data + config + seed + versions
fit         the cached entry point
curves      learning curves (training-set size vs test performance)
embeddings  flattening, rotation-invariant features, 2-D projection of embeddings
baselines   reference points: ridge regression on pixels, shuffled-image chance level

CPU threads: on a machine shared by several processes, torch's default thread count can make
training many times slower (threads spin waiting for each other); pass ``num_threads=1``.
"""

from v1nb.models.cache import CacheWarning, cache_dir, load, save
from v1nb.models.config import CORES, READOUTS, ModelConfig, make_config, valid_keys
from v1nb.models.data import ModelWarning
from v1nb.models.fit import fit
from v1nb.models.model import ResponseModel

__all__ = [
    "CORES", "READOUTS", "CacheWarning", "ModelConfig", "ModelWarning", "ResponseModel", "cache_dir",
    "fit", "load", "make_config", "save", "valid_keys",
]

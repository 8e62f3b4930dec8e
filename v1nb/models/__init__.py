"""Core–readout response models: images → predicted responses of every neuron.

A shared convolutional **core** turns an image into feature maps; a per-neuron **readout** picks a
position and a weighting of the features — the weighting ``w_n`` is the neuron's **embedding**.
Conventions follow the Sinz-lab models (Lurz et al. 2021; the book's "Notation and methods" page, book/notation.md).

Entry points
------------
fit(dataset, core="cnn" | "rotation" | "ln", readout="gaussian" | "factorized", seed=0,
    interaction="none", head="none", parent=None, terms=None, **settings)
    Train (or load from the on-disk cache) a :class:`ResponseModel`; ``parent`` starts a fine-tune
    from a fitted model, ``terms`` adds objective terms (:mod:`~v1nb.models.objectives`).
fit_seeds(ds, core, readout, seeds, n_jobs=None, **settings), fit_many(ds, jobs, n_jobs=None)
    Several fits in parallel worker processes (one torch thread each), each cached.
fit_readouts(ds, cores_from, **settings)
    Readouts of other neurons on the fixed cores of fitted models (``fit(..., core_from=model)``).
stack_embeddings(models), cross_seed_ari(models, n_clusters)
    Embeddings along a ``seed`` dimension; consistency of k-means labels across seeds.
ResponseModel
    scikit-learn conventions (``get_params``/``set_params``, ``random_state``); ``.fit(ds)``,
    ``.predict(ds, tier="test")`` → DataArray (trial, neuron), ``.embeddings()`` → DataArray
    (neuron, feature) or (neuron, rotation, feature), ``.evaluate(ds, tier)``, ``.save(path)`` /
    ``ResponseModel.load(path, ds)``.
make_config(**settings), valid_keys()
    Every setting with its default (:class:`ModelConfig`).

Modules
-------
registry      where components are declared: CORES, READOUTS, INTERACTIONS, HEADS (one line each)
cores         stacked 2-D CNN core and the LN baseline
rotation      rotation-equivariant core (Hermite steerable filters) and its embedding layout
readouts      Gaussian and factorised readouts (embedding, position)
interactions/ interaction stages between readout and output (divisive normalisation, temporal, attention)
heads         clustering heads on the embeddings (DEC, rotation-marginalised DEC)
context       what a network sees beyond the image: trial position, own earlier predictions, positions
network       core → readout → [interaction stage] → ELU+1 output, [+ head]
config        every setting with its default and validation
data          dataset → training tensors (splits, presentation order, scaling, NaN masking)
objectives    the training objective as named terms (prediction loss, regularisation, added terms)
training      Adam, plateau decay, early stopping, hooks for the terms
model         ResponseModel (xarray in and out, scikit-learn conventions)
cache         models on disk keyed by what training sees + components + settings + seed + parent + code
fit           the cached entry point
parallel      several fits at once in worker processes; stacked embeddings, cross-seed consistency
curves      learning curves (training-set size vs test performance)
embeddings  flattening, rotation-invariant features, 2-D projection of embeddings
baselines   reference points: ridge regression on pixels, shuffled-image chance level

CPU threads: on a machine shared by several processes, torch's default thread count can make
training many times slower (threads spin waiting for each other); pass ``num_threads=1``.
"""

from v1nb.models.registry import CORES, HEADS, INTERACTIONS, READOUTS, load_components

load_components()

from v1nb.models.cache import CacheWarning, cache_dir, load, save  # noqa: E402
from v1nb.models.config import ModelConfig, make_config, valid_keys  # noqa: E402
from v1nb.models.context import Context  # noqa: E402
from v1nb.models.data import ModelWarning, apply_split  # noqa: E402
from v1nb.models.fit import fit  # noqa: E402
from v1nb.models.model import ResponseModel  # noqa: E402
from v1nb.models.objectives import Term  # noqa: E402
from v1nb.models.parallel import cross_seed_ari, fit_many, fit_readouts, fit_seeds, stack_embeddings  # noqa: E402

__all__ = [
    "CORES", "HEADS", "INTERACTIONS", "READOUTS", "CacheWarning", "Context", "ModelConfig", "ModelWarning",
    "ResponseModel", "Term", "apply_split", "cache_dir", "cross_seed_ari", "fit", "fit_many", "fit_readouts",
    "fit_seeds", "load", "make_config", "save", "stack_embeddings", "valid_keys",
]

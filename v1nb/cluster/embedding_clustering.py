"""Classical clustering of neuronal embeddings: views × methods × K × seeds, scored against truth.

A trained model's readout vectors ``w_n`` are the neurons' embeddings. This module turns the
embeddings of several fits (one per seed, one list per core) into

* **views** — what is clustered (:func:`embedding_views`): ``"raw"`` (flattened), and for an
  embedding shaped (neuron, rotation, feature) also ``"dft"`` (|DFT over rotation| per feature,
  invariant to the cyclic shift that a neuron's preferred orientation introduces) and
  ``"aligned"`` (each neuron rolled along the rotation axis onto one common template by
  shift-invariant k-means with K = 1, then flattened). Every view is scaled to unit norm per
  neuron (the embeddings' overall scale follows the neuron's gain, not its type);
* **labels** from every method of :data:`METHODS` at every K, plus ``"rotation"``
  (:class:`~v1nb.cluster.RotationInvariantClustering`, joint alignment and clustering) on the
  rotation model's raw view;
* **scores**: ARI/AMI to the true types (all neurons, and the *reliable* ones — oracle
  correlation ≥ a threshold — scored on the same labels), and **cross-seed consistency**: the
  mean ARI between the labels of every pair of seeds (the same method, view and K on each seed's
  fit; neurons are the same recorded cells in every fit, so the labels are comparable).

:func:`best_pipeline` picks the best (core, view, method) at the true K and :func:`classical_verdict`
states whether the issue's goals are met. Formulas: ARI is the adjusted Rand index
(Hubert & Arabie 1985), AMI the adjusted mutual information (Vinh et al. 2010), arithmetic mean
normalisation.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

METHODS = ("kmeans", "gmm", "spectral", "sec", "ldmgi")
VIEWS = ("raw", "dft", "aligned")
#: goals of issue 12 for the best pipeline: ARI to the true types on reliable / all neurons
GOAL_RELIABLE, GOAL_ALL = 0.8, 0.6


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embedding_views(emb: xr.DataArray, views: Sequence[str] = VIEWS, random_state: int = 0) -> dict[str, np.ndarray]:
    """The arrays to cluster for one fit's embeddings.

    Parameters
    ----------
    emb : DataArray (neuron, feature) or (neuron, rotation, feature)
    views : sequence of {"raw", "dft", "aligned"}
        ``"dft"`` and ``"aligned"`` need a ``rotation`` dimension and are skipped without one.
    random_state : int
        Seed of the alignment (shift-invariant k-means, 10 restarts).

    Returns
    -------
    dict view → ndarray (neuron, D), each row of unit norm.
    """
    unknown = set(views) - set(VIEWS)
    if unknown:
        raise ValueError(f"unknown views {sorted(unknown)}; choose from {VIEWS}")
    if "neuron" not in emb.dims:
        raise ValueError(f"embeddings need a 'neuron' dimension, got dims {emb.dims}")
    rot = "rotation" in emb.dims
    w = emb.transpose("neuron", "rotation", ...).values if rot else emb.transpose("neuron", ...).values
    w = np.asarray(w, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for v in views:
        if v == "raw":
            out[v] = _unit_rows(w)
        elif not rot:
            continue
        elif v == "dft":
            from v1nb.cluster.rotation import dft_features

            out[v] = _unit_rows(dft_features(w))
        else:
            from v1nb.cluster.rotation import RotationInvariantClustering

            ric = RotationInvariantClustering(1, method="align", normalize=True, n_init=10,
                                              random_state=random_state).fit(w)
            out[v] = _unit_rows(ric.aligned_)
    return out


def cluster_labels(X: np.ndarray, method: str, k: int, random_state: int = 0,
                   n_rotations: int | None = None) -> np.ndarray:
    """Labels (N,) of one method at K (``"rotation"`` needs ``n_rotations`` for the (N, R·F) rows)."""
    from v1nb.cluster import make_clusterer

    kwargs = {}
    if method == "rotation":
        if not n_rotations:
            raise ValueError("method 'rotation' needs n_rotations (the rotation model's raw view)")
        kwargs = dict(n_rotations=n_rotations, normalize=False)
    elif method == "kmeans":
        kwargs = dict(n_init=20)
    est = make_clusterer(method, k, random_state=random_state, **kwargs)
    with warnings.catch_warnings():
        # SEC/LDMGI warn about a disconnected kNN graph on tight clusters; the labels are still valid
        warnings.simplefilter("ignore")
        return np.asarray(est.fit_predict(X), dtype=np.intp)


def reliable_mask(ds: xr.Dataset, evaluation: xr.Dataset | None = None, threshold: float = 0.5) -> np.ndarray:
    """Neurons whose oracle correlation is at least ``threshold``; shape (neuron,) bool.

    The twin's noise-free ``true_oracle_corr`` when present, else the measured
    ``oracle_correlation`` of ``evaluation`` (``model.evaluate(ds, "test")``, computed from the
    test repeats). NaN counts as unreliable.
    """
    if "true_oracle_corr" in ds.coords:
        oc = np.asarray(ds["true_oracle_corr"].values, dtype=float)
    elif evaluation is not None and "oracle_correlation" in evaluation:
        oc = np.asarray(evaluation["oracle_correlation"].values, dtype=float)
    else:
        raise ValueError("no oracle correlation: the dataset has no 'true_oracle_corr' and no evaluation "
                         "with 'oracle_correlation' was given")
    return np.nan_to_num(oc, nan=-np.inf) >= threshold


def true_types(ds: xr.Dataset) -> np.ndarray | None:
    """Integer codes of ``true_type`` (neuron,), or None on data without ground truth."""
    if "true_type" not in ds.coords:
        return None
    return pd.factorize(np.asarray(ds["true_type"].values))[0]


@dataclass
class EmbeddingClustering:
    """Result of :func:`cluster_embeddings`.

    Attributes
    ----------
    scores : DataFrame
        One row per (core, view, method, k, seed): ``ari``, ``ami`` (all neurons) and
        ``ari_reliable``, ``ami_reliable`` (NaN without truth).
    consistency : DataFrame
        One row per (core, view, method, k): ``cross_seed_ari`` (mean over seed pairs),
        ``cross_seed_ari_sd``, ``n_pairs`` (NaN with a single seed).
    labels : dict
        (core, view, method, k, seed) → labels (neuron,).
    """

    scores: pd.DataFrame
    consistency: pd.DataFrame
    labels: dict = field(repr=False)

    def summary(self) -> pd.DataFrame:
        """Mean and s.d. over seeds of every score, joined with the cross-seed consistency."""
        keys = ["core", "view", "method", "k"]
        g = self.scores.groupby(keys, sort=False)
        mean = g[["ari", "ami", "ari_reliable", "ami_reliable"]].mean()
        sd = g[["ari", "ari_reliable"]].std(ddof=1).add_suffix("_sd")
        return mean.join(sd).join(self.consistency.set_index(keys)).reset_index()


def cluster_embeddings(embeddings: Mapping[str, Sequence[xr.DataArray]], ks: Sequence[int],
                       truth: np.ndarray | None = None, reliable: np.ndarray | None = None,
                       methods: Sequence[str] = METHODS, views: Sequence[str] = VIEWS,
                       rotation_method: bool = True, ks_all_seeds: Sequence[int] | None = None,
                       random_state: int = 0, n_jobs: int | None = None) -> EmbeddingClustering:
    """Cluster every view of every fit with every method over K, and score the labels.

    Parameters
    ----------
    embeddings : mapping core → list of DataArray
        Per core, the embeddings of each seed's fit (same neurons in the same order).
    ks : sequence of int
        Numbers of clusters, clustered on the first seed's fit (and on every seed for
        ``ks_all_seeds``).
    truth : ndarray (neuron,) of int, optional
        True type codes; without it the truth scores are NaN.
    reliable : ndarray (neuron,) of bool, optional
        Neurons the ``*_reliable`` scores are computed on (the labels of all neurons restricted
        to them); NaN when None or fewer than two.
    methods : sequence of str
        Names for :func:`v1nb.cluster.make_clusterer`.
    views : sequence of str
        See :func:`embedding_views`.
    rotation_method : bool
        Also run :class:`~v1nb.cluster.RotationInvariantClustering` on the raw view of
        embeddings with a rotation dimension (method ``"rotation"``).
    ks_all_seeds : sequence of int, optional
        K values clustered on every seed (cross-seed consistency needs them); default: all ``ks``.
    random_state : int
        Seed of every clusterer (the same on every fit, so seeds differ only by the model).
    n_jobs : int, optional
        Worker processes for the (independent) clusterings, one thread each (joblib); default the
        cores this process may use (:func:`v1nb.machine.available_cores`); 1 runs them here. Each
        clustering has its own fixed seed, so the labels do not depend on which process ran it.

    Returns
    -------
    EmbeddingClustering
    """
    ks = sorted({int(k) for k in ks})
    ks_all = set(ks if ks_all_seeds is None else (int(k) for k in ks_all_seeds))
    if not ks or ks[0] < 2:
        raise ValueError(f"ks must be integers >= 2, got {ks}")
    n = None
    tasks = []  # (key, seed, view matrix, number of rotations): every clustering to run
    for core, fits in embeddings.items():
        if not len(fits):
            raise ValueError(f"no embeddings for core {core!r}")
        for s_idx, emb in enumerate(fits):
            if n is None:
                n = emb.sizes["neuron"]
            if emb.sizes["neuron"] != n:
                raise ValueError(f"core {core!r} fit {s_idx} has {emb.sizes['neuron']} neurons, expected {n}")
            seed = int(emb.attrs.get("seed", s_idx))
            vs = embedding_views(emb, views, random_state=random_state)
            jobs = [(v, m) for v in vs for m in methods]
            if rotation_method and "rotation" in emb.dims and "raw" in vs:
                jobs.append(("raw", "rotation"))
            tasks += [((core, v, m, k, s_idx), seed, vs[v], emb.sizes.get("rotation"))
                      for v, m in jobs for k in ks if s_idx == 0 or k in ks_all]
    if truth is not None and len(truth) != n:
        raise ValueError(f"truth has {len(truth)} entries for {n} neurons")
    found = _run_clusterings(tasks, random_state, n_jobs)
    labels = {key: lab for (key, _, _, _), lab in zip(tasks, found)}
    rows = [dict(core=core, view=v, method=m, k=k, seed=seed, seed_index=s_idx, **score_labels(lab, truth, reliable))
            for ((core, v, m, k, s_idx), seed, _, _), lab in zip(tasks, found)]
    scores = pd.DataFrame(rows)
    cons = []
    for (core, v, m, k), g in scores.groupby(["core", "view", "method", "k"], sort=False):
        idx = sorted(g["seed_index"])
        aris = [adjusted_rand_score(labels[(core, v, m, k, a)], labels[(core, v, m, k, b)])
                for a, b in combinations(idx, 2)]
        cons.append(dict(core=core, view=v, method=m, k=k,
                         cross_seed_ari=float(np.mean(aris)) if aris else np.nan,
                         cross_seed_ari_sd=float(np.std(aris, ddof=1)) if len(aris) > 1 else np.nan,
                         n_pairs=len(aris)))
    return EmbeddingClustering(scores, pd.DataFrame(cons), labels)


def _run_clusterings(tasks: list, random_state: int, n_jobs: int | None) -> list[np.ndarray]:
    """Labels of every ``(key, seed, X, n_rotations)`` task, in order, on ``n_jobs`` processes."""
    from joblib import Parallel, delayed

    from v1nb.machine import available_cores

    n_jobs = available_cores() if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs={n_jobs!r} must be a positive int (or None: every available core)")
    work = [(X, key[2], key[3], n_rot) for key, _, X, n_rot in tasks]  # (X, method, K, rotations)
    if n_jobs == 1 or len(work) < 2:
        return [cluster_labels(X, m, k, random_state, n_rotations=r) for X, m, k, r in work]
    # loky gives each worker one BLAS thread (cores // n_jobs), so the workers do not oversubscribe
    return Parallel(n_jobs=min(n_jobs, len(work)), backend="loky")(
        delayed(cluster_labels)(X, m, k, random_state, n_rotations=r) for X, m, k, r in work)


def score_labels(labels: np.ndarray, truth: np.ndarray | None, reliable: np.ndarray | None) -> dict[str, float]:
    """ARI/AMI of ``labels`` to ``truth`` on all neurons and on the ``reliable`` ones (NaN when undefined)."""
    nan = dict(ari=np.nan, ami=np.nan, ari_reliable=np.nan, ami_reliable=np.nan)
    if truth is None:
        return nan
    out = dict(ari=float(adjusted_rand_score(truth, labels)),
               ami=float(adjusted_mutual_info_score(truth, labels)), ari_reliable=np.nan, ami_reliable=np.nan)
    if reliable is not None and int(np.sum(reliable)) >= 2:
        out["ari_reliable"] = float(adjusted_rand_score(truth[reliable], labels[reliable]))
        out["ami_reliable"] = float(adjusted_mutual_info_score(truth[reliable], labels[reliable]))
    return out


def best_pipeline(result: EmbeddingClustering, k: int, score: str = "ari") -> dict:
    """The (core, view, method) with the highest seed-mean ``score`` at K = ``k``.

    Returns
    -------
    dict with ``core, view, method, name`` ("core/view/method"), ``ari``, ``ari_reliable``,
    ``cross_seed_ari`` (NaN everywhere when there is no truth or no row at ``k``).
    """
    s = result.summary()
    s = s[s["k"] == k]
    if s.empty or not np.isfinite(s[score]).any():
        return dict(core="", view="", method="", name="", ari=np.nan, ari_reliable=np.nan,
                    cross_seed_ari=np.nan)
    r = s.loc[s[score].idxmax()]
    return dict(core=r["core"], view=r["view"], method=r["method"], name=f"{r['core']}/{r['view']}/{r['method']}",
                ari=float(r["ari"]), ari_reliable=float(r["ari_reliable"]), cross_seed_ari=float(r["cross_seed_ari"]))


def classical_verdict(ari_all: float, ari_reliable: float) -> str:
    """Whether the best classical pipeline reaches the goals (ARI ≥ 0.8 reliable, ≥ 0.6 all).

    Returns one of ``"both goals met"``, ``"reliable goal met"``, ``"all-neuron goal met"``,
    ``"neither goal met"``, or ``"no ground truth"`` (NaN scores).
    """
    if not (np.isfinite(ari_all) or np.isfinite(ari_reliable)):
        return "no ground truth"
    rel, full = bool(ari_reliable >= GOAL_RELIABLE), bool(ari_all >= GOAL_ALL)
    return ("both goals met" if rel and full else "reliable goal met" if rel
            else "all-neuron goal met" if full else "neither goal met")


def parse_ints(text: str | int, name: str) -> list[int]:
    """A chapter parameter like ``"0,1,2"`` (or one int) as a list of distinct ints.

    Raises
    ------
    ValueError
        Naming the parameter and the value when an entry is not an integer or repeats.
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return [int(text)]
    try:
        out = [int(t) for t in str(text).replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise ValueError(f"parameter {name}={text!r} must be comma-separated integers, e.g. '0,1,2'") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"parameter {name}={text!r} must list at least one integer, without repeats")
    return out


def k_range(k_min: int, k_max: int, n_neurons: int) -> list[int]:
    """K = k_min..k_max (both ≥ 2, k_max < number of neurons), checked."""
    if not (2 <= int(k_min) <= int(k_max) < int(n_neurons)):
        raise ValueError(f"parameters k_min={k_min}, k_max={k_max} must satisfy 2 <= k_min <= k_max < "
                         f"n_neurons={n_neurons}")
    return list(range(int(k_min), int(k_max) + 1))


def chapter_ks(k_min: int, k_max: int, n_neurons: int, budget: str, keep: Sequence[int] = ()) -> list[int]:
    """The K sweep of a chapter (:func:`k_range`) under a (resolved) budget, with ``keep`` added.

    Under ``"quick"`` every second K from ``k_min`` (and ``k_max``): half the sweep's clusterings,
    and its curves keep their shape. (Measured: it saved only a few seconds of the quick
    ``classical`` chapter, 84.5 -> 81.9 s on the 2-core AMD EPYC box; the rest of its time is
    elsewhere.)
    """
    ks = k_range(k_min, k_max, n_neurons)
    if budget == "quick":
        ks = ks[::2] + ([ks[-1]] if len(ks) % 2 == 0 else [])
    return sorted(set(ks) | {int(k) for k in keep})


def resolve_k(n_types: int, ds: xr.Dataset) -> tuple[int, int | None]:
    """The K at which methods are compared, and the true number of types (None without truth).

    ``n_types = 0`` means the true number of types (an error on data without ``true_type``).
    """
    truth = true_types(ds)
    k_true = None if truth is None else int(np.unique(truth).size)
    if int(n_types) > 0:
        return int(n_types), k_true
    if k_true is None:
        raise ValueError("parameter n_types=0 asks for the true number of types, but the data have no "
                         "'true_type': give n_types (e.g. 6)")
    return k_true, k_true


def supervised_ceiling(X: np.ndarray, truth: np.ndarray | None, reliable: np.ndarray | None = None,
                       n_splits: int = 5, random_state: int = 0) -> dict[str, float]:
    """How separable the true types are in a view at all: ARI of 5-fold cross-validated
    multinomial logistic regression predictions (the types *given* to the classifier).

    No clustering of the same view can be expected to beat a supervised linear read-out by much;
    when this ceiling is below a goal, the embedding, not the clustering method, is what misses it.

    Returns
    -------
    dict with ``ari``, ``ari_reliable``, ``accuracy`` (NaN without truth).
    """
    if truth is None:
        return dict(ari=np.nan, ari_reliable=np.nan, accuracy=np.nan)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = min(n_splits, int(np.bincount(truth).min()))
    if folds < 2:
        return dict(ari=np.nan, ari_reliable=np.nan, accuracy=np.nan)
    cv = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny data
        pred = cross_val_predict(LogisticRegression(C=10.0, max_iter=2000), X, truth, cv=cv)
    out = score_labels(pred, truth, reliable)
    return dict(ari=out["ari"], ari_reliable=out["ari_reliable"], accuracy=float(np.mean(pred == truth)))


def orientation_concentration(labels: np.ndarray, orientation: np.ndarray) -> float:
    """How much clusters gather neurons of one preferred orientation: the size-weighted mean over
    clusters of the resultant length |mean exp(2iθ)| of the true orientations θ (period π) of
    their members (neurons without an orientation, NaN, are left out).

    0 when every cluster holds all orientations evenly, 1 when each holds a single orientation;
    for a random partition of n_c members it is ≈ √(π/(4 n_c)). Type clusters of an
    orientation-invariant embedding should stay near that floor.
    """
    labels = np.asarray(labels)
    theta = np.asarray(orientation, dtype=float)
    ok = np.isfinite(theta)
    total, weight = 0.0, 0
    for c in np.unique(labels[ok]):
        m = ok & (labels == c)
        total += m.sum() * float(np.abs(np.mean(np.exp(2j * theta[m]))))
        weight += int(m.sum())
    return total / weight if weight else np.nan


def chapter_seeds(seeds: str | int, budget: str) -> list[int]:
    """The ``seeds`` parameter parsed (:func:`parse_ints`), cut to the budget's
    (:func:`v1nb.models.budgets.budget_seeds`: the first two under the resolved ``"quick"`` budget)."""
    from v1nb.models.budgets import budget_seeds

    return budget_seeds(parse_ints(seeds, "seeds"), budget)


#: Cores whose fits take longest (a default rotation-core fit: ~300 CPU-seconds against ~115 for the
#: CNN on a 2-core AMD EPYC Zen 4, ``bench/results/chapters_embeddings_default.json``): started first.
LONG_CORES = ("rotation",)


def fit_core_seeds(ds: xr.Dataset, seeds_by_core: Mapping[str, Sequence[int]], readout: str = "gaussian",
                   n_jobs: int | None = None, cache_dir: str | None = None, **settings) -> dict[str, list]:
    """Fit every (core, seed) of ``seeds_by_core`` in one :func:`v1nb.models.fit_many` call (each cached).

    One call rather than one :func:`v1nb.models.fit_seeds` per core: the workers stay busy across
    cores (two CNN seeds train beside one rotation seed), and the long cores' fits
    (:data:`LONG_CORES`) start first so that none starts last beside an idle core.

    Parameters
    ----------
    ds : xarray.Dataset
    seeds_by_core : mapping
        Core name → its model seeds, e.g. ``{"cnn": [0, 1, 2], "rotation": [0, 1]}``.
    readout : str
    n_jobs : int, optional
        Worker processes (default: the CPU cores).
    cache_dir : path, optional
        The model cache (default: :func:`v1nb.models.cache.cache_dir`).
    **settings
        Training settings shared by every fit (e.g. :func:`v1nb.models.budgets.budget_settings`).

    Returns
    -------
    dict
        Core name → its fitted models, in the order of its seeds.
    """
    from v1nb.models import fit_many

    pairs = [(core, int(s)) for core, seeds in seeds_by_core.items() for s in seeds]
    for core, seeds in seeds_by_core.items():
        if not len(seeds) or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds of core {core!r}: {list(seeds)} must be distinct and not empty")
    started = sorted(pairs, key=lambda p: p[0] not in LONG_CORES)  # stable: the rest keep their order
    models = fit_many(ds, [dict(core=c, readout=readout, seed=s, **settings) for c, s in started], n_jobs=n_jobs,
                      cache_dir=cache_dir)
    fitted = dict(zip(started, models))
    return {core: [fitted[(core, int(s))] for s in seeds] for core, seeds in seeds_by_core.items()}


def stability_seeds(model_seeds: Sequence[int], null_seeds: int, null_types: str = "") -> tuple[list[int], list[int]]:
    """The model seeds of the main twin and of the null twin, for cross-seed stability.

    Parameters
    ----------
    model_seeds : sequence of int
        The chapter's seeds (:func:`chapter_seeds`).
    null_seeds : int
        How many of them (the first) are fitted on the null twin.
    null_types : str
        The null twin's cell types; empty: no null twin, so ``null_seeds`` is not checked.

    Returns
    -------
    (main, null) : lists of int

    Raises
    ------
    ValueError
        Fewer than two main seeds, or (with a null twin) fewer than two null seeds: stability
        compares the labels of two fits at least.
    """
    main = [int(s) for s in model_seeds]
    if len(main) < 2:
        raise ValueError(f"seeds={main!r}: cross-seed stability needs at least two model seeds")
    if isinstance(null_seeds, bool) or not isinstance(null_seeds, (int, np.integer)):
        raise ValueError(f"null_seeds={null_seeds!r} must be an int (the number of seeds fitted on the null twin)")
    null = main[:null_seeds] if null_seeds > 0 else []
    if null_types and len(null) < 2:
        raise ValueError(f"null_seeds={null_seeds!r}: cross-seed stability on the null twin needs at least two "
                         f"model seeds (of {main!r})")
    return main, null

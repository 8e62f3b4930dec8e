"""Decoding the stimulus from population responses.

Identification across repeats (Stringer et al. 2019)
    Each response to an image is matched to the most correlated response among the *other*
    presentations (one reference per image); it is correct when the match is the same image.
    Chance is ``1 / n_images``.
Category decoding
    A scikit-learn pipeline (standardise → optional feature selection / extraction → classifier)
    scored by stratified cross-validation in which all repeats of an image stay in one fold
    (otherwise a decoder could recognise the image rather than its category). Classes are
    balanced by class weights where the classifier supports them and scored by balanced
    accuracy (chance = 1 / n_classes whatever the class sizes), with a bootstrap confidence
    interval over the pooled held-out predictions.
Class merging
    Categories whose images look alike are merged by agglomerative clustering of the mean image
    features of each category, which turns many confusable classes into fewer separable ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import RFE, SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from v1nb.analysis._inputs import repeats_3d

__all__ = [
    "CategoryDecoding", "Identification", "MODELS", "SELECTIONS", "category_trials", "decode_category",
    "identify", "make_decoder", "merge_classes",
]

MODELS = ("logistic", "forest", "boosting", "mlp")
#: Principal components given to gradient boosting when no selection/extraction is asked for.
BOOSTING_COMPONENTS = 64
SELECTIONS = (None, "kbest", "rfe", "pca", "factor")


def anova_f(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sklearn.feature_selection.f_classif` with F = 0, p = 1 for a feature that is constant
    in the training fold (a silent neuron separates no class), instead of NaN and a warning.

    Ranks the features as ``f_classif`` does (scikit-learn already puts NaN scores last); it only
    keeps the "Features [...] are constant" warnings out of the chapters' output.
    """
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        f, p = f_classif(X, y)
    return np.nan_to_num(f, nan=0.0), np.nan_to_num(p, nan=1.0)


@dataclass(frozen=True)
class Identification:
    """1-NN identification of images across repeats.

    Attributes
    ----------
    accuracy : float
        Fraction of (image, repeat) queries matched to the right image.
    chance : float
        ``1 / n_images``.
    ci : (float, float)
        95 % bootstrap interval of the accuracy (images resampled).
    correct : (image, repeat) bool array
    n_images : int
    """

    accuracy: float
    chance: float
    ci: tuple[float, float]
    correct: np.ndarray
    n_images: int


def _rowwise_standardize(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(norm > 0, norm, 1.0)


def identify(data: Any, tier: str = "test", n_boot: int = 1000, random_state: int | None = 0) -> Identification:
    """Identify each image from one repeat by its nearest neighbour (correlation) among the others.

    Parameters
    ----------
    data : xarray.Dataset or (image, repeat, neuron) array
        A dataset uses the repeats of ``tier``. With exactly two repeats this is Stringer's
        test: repeat 1 queried against repeat 0 and vice versa (both directions averaged). With
        more, each repeat is queried against the mean of the other repeats of every image.
    tier : str
    n_boot : int
        Bootstrap resamples of the images for the confidence interval.
    random_state : int, optional

    Returns
    -------
    Identification
    """
    R, _, _ = repeats_3d(data, tier)
    if not np.isfinite(R).all():
        R = np.where(np.isfinite(R), R, np.nanmean(R, axis=(0, 1), keepdims=True))
    n_img, n_rep, _ = R.shape
    if n_img < 2:
        raise ValueError(f"identify needs at least 2 images with repeats, got {n_img}")
    # Centre each neuron on its mean over all trials so that correlations reflect the pattern.
    R = R - R.mean(axis=(0, 1), keepdims=True)
    total = R.sum(axis=1)
    correct = np.zeros((n_img, n_rep), dtype=bool)
    for r in range(n_rep):
        query = _rowwise_standardize(R[:, r])
        reference = _rowwise_standardize((total - R[:, r]) / (n_rep - 1))
        correct[:, r] = np.argmax(query @ reference.T, axis=1) == np.arange(n_img)
    per_image = correct.mean(axis=1)
    rng = np.random.default_rng(random_state)
    boots = per_image[rng.integers(0, n_img, size=(n_boot, n_img))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Identification(float(per_image.mean()), 1.0 / n_img, (float(lo), float(hi)), correct, n_img)


class _AtMostPCA(TransformerMixin, BaseEstimator):
    """PCA to ``n_components``, or to as many as the training data allow when it has fewer."""

    def __init__(self, n_components: int = BOOSTING_COMPONENTS, random_state: int | None = None):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None) -> "_AtMostPCA":
        k = int(min(self.n_components, X.shape[1], X.shape[0] - 1))
        self.pca_ = PCA(k, random_state=self.random_state).fit(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.pca_.transform(X)


def make_decoder(model: str = "logistic", selection: str | None = None, n_features: int | None = None,
                 balanced: bool = True, random_state: int | None = 0) -> Pipeline:
    """The decoding pipeline: standardise → feature selection/extraction → classifier.

    Parameters
    ----------
    model : {"logistic", "forest", "boosting", "mlp"}
        L2 logistic regression, random forest, histogram gradient boosting (on the top
        :data:`BOOSTING_COMPONENTS` principal components unless ``selection`` is set, with early
        stopping), 1-hidden-layer MLP.
    selection : {None, "kbest", "rfe", "pca", "factor"}
        Univariate ANOVA selection, recursive feature elimination (with a linear model), PCA or
        factor analysis to ``n_features``.
    n_features : int, optional
        Features kept (required when ``selection`` is set).
    balanced : bool
        Class weights inversely proportional to class size (logistic, forest, boosting); the
        MLP has none, so it relies on the balanced-accuracy score.
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r} is not one of {MODELS}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r} is not one of {SELECTIONS}")
    if selection is not None and (n_features is None or n_features < 1):
        raise ValueError(f"selection={selection!r} needs n_features ≥ 1, got {n_features}")
    weight = "balanced" if balanced else None
    classifiers = {
        "logistic": lambda: LogisticRegression(C=0.1, max_iter=2000, class_weight=weight),
        "forest": lambda: RandomForestClassifier(200, min_samples_leaf=2, class_weight=weight, n_jobs=1, random_state=random_state),
        # Boosting grows one tree per class and iteration over every input feature's histogram:
        # on 1,000 neurons × 17 classes that took 6 min per 5-fold run. It therefore sees the top
        # ``BOOSTING_COMPONENTS`` principal components (fitted on the training fold only; see
        # make_decoder) and stops when 10 iterations bring no gain on a held-out 10 % of the
        # training fold (trials of one image may fall on both sides of that internal split: it only
        # decides when to stop, the scored folds stay grouped by image).
        "boosting": lambda: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=15,
                                                           class_weight=weight, early_stopping=True,
                                                           validation_fraction=0.1, n_iter_no_change=10,
                                                           random_state=random_state),
        "mlp": lambda: MLPClassifier((128,), alpha=1e-2, max_iter=500, early_stopping=True, random_state=random_state),
    }
    steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
    if selection == "kbest":
        steps.append(("select", SelectKBest(anova_f, k=n_features)))
    elif selection == "rfe":
        steps.append(("select", RFE(LogisticRegression(C=0.1, max_iter=1000, class_weight=weight),
                                    n_features_to_select=n_features, step=0.2)))
    elif selection == "pca":
        steps.append(("select", PCA(n_features, random_state=random_state)))
    elif selection == "factor":
        steps.append(("select", FactorAnalysis(n_features, random_state=random_state)))
    elif model == "boosting":
        steps.append(("reduce", _AtMostPCA(BOOSTING_COMPONENTS, random_state=random_state)))
    steps.append(("classify", classifiers[model]()))
    return Pipeline(steps)


def category_trials(ds: xr.Dataset, tiers: Sequence[str] = ("train", "validation", "test"),
                    min_per_class: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses, category labels and image ids of the trials with a categorised image.

    Returns
    -------
    X : (trial, neuron) array, y : (trial,) str array, groups : (trial,) int array (image id)
        Classes with images fewer than ``min_per_class`` are dropped (they cannot be split).
    """
    if "category" not in ds.coords:
        raise ValueError(f"dataset {ds.attrs.get('source', '')!r} has no 'category' coordinate: category decoding is unavailable")
    tier = ds["tier"].values.astype(str)
    ids = ds["image_id"].values
    keep = np.isin(tier, list(tiers)) & (ids >= 0)
    cats = np.asarray(ds["category"].values).astype(str)
    y = np.where(keep, cats[np.clip(ids, 0, None)], "")
    groups = ids
    # Count images (not trials) per class: folds split images.
    img_per_class = {c: len(np.unique(groups[keep & (y == c)])) for c in np.unique(y[keep])}
    ok = keep & np.isin(y, [c for c, n in img_per_class.items() if n >= min_per_class])
    if len(np.unique(y[ok])) < 2:
        raise ValueError(f"category decoding needs ≥ 2 classes with ≥ {min_per_class} images each; found {img_per_class}")
    X = ds["responses"].values[ok].astype(np.float64)
    X = np.where(np.isfinite(X), X, np.nanmean(X, axis=0))
    return X, y[ok], groups[ok]


def merge_classes(features: np.ndarray, labels: np.ndarray, n_groups: int) -> dict[str, int]:
    """Merge classes whose mean features are alike (Ward agglomerative clustering of class means).

    Parameters
    ----------
    features : (sample, feature) array
        E.g. flattened (and downsampled) images, one row per image.
    labels : (sample,) array of class labels
    n_groups : int
        Number of merged classes.

    Returns
    -------
    dict
        Original class label → merged class index (0 .. n_groups − 1).
    """
    features = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    classes = np.unique(labels)
    if not 1 <= n_groups <= len(classes):
        raise ValueError(f"n_groups={n_groups} must be between 1 and the {len(classes)} classes")
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    means = StandardScaler().fit_transform(means) if len(classes) > 1 else means
    merged = AgglomerativeClustering(n_groups, linkage="ward").fit_predict(means) if n_groups < len(classes) else np.arange(len(classes))
    return {str(c): int(g) for c, g in zip(classes, merged)}


def _bootstrap_balanced_accuracy(y: np.ndarray, pred: np.ndarray, classes: list[str], n_boot: int,
                                 random_state: int | None) -> tuple[float, float]:
    """95 % bootstrap interval of the balanced accuracy (trials resampled with replacement).

    Balanced accuracy is the mean per-class recall; per-class counts of a resample come from two
    ``bincount`` calls, hundreds of times faster than calling scikit-learn's scorer per
    resample. Resamples that miss a class are dropped (its recall is undefined).
    """
    codes = np.searchsorted(classes, y)
    hit = (y == pred).astype(np.float64)
    rng = np.random.default_rng(random_state)
    k, boots = len(classes), []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        n = np.bincount(codes[idx], minlength=k)
        if n.min() > 0:
            boots.append(float(np.mean(np.bincount(codes[idx], weights=hit[idx], minlength=k) / n)))
    if not boots:
        return np.nan, np.nan
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(lo), float(hi)


@dataclass(frozen=True)
class CategoryDecoding:
    """Cross-validated category decoding.

    Attributes
    ----------
    balanced_accuracy : float
        Over the pooled held-out predictions.
    ci : (float, float)
        95 % bootstrap interval (trials resampled within the pooled predictions).
    fold_scores : (fold,) array
        Balanced accuracy of each fold.
    chance : float
        ``1 / n_classes``.
    classes : list of str
    confusion : (class, class) array
        Row-normalised confusion matrix (true × predicted).
    """

    balanced_accuracy: float
    ci: tuple[float, float]
    fold_scores: np.ndarray
    chance: float
    classes: list[str]
    confusion: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


def decode_category(
    data: xr.Dataset | tuple[np.ndarray, np.ndarray, np.ndarray],
    model: str = "logistic",
    *,
    selection: str | None = None,
    n_features: int | None = None,
    merge: dict[str, int] | None = None,
    tiers: Sequence[str] = ("train", "validation", "test"),
    n_splits: int = 5,
    balanced: bool = True,
    n_boot: int = 1000,
    n_threads: int | None = 1,
    random_state: int | None = 0,
) -> CategoryDecoding:
    """Decode image categories from responses with grouped, stratified cross-validation.

    Parameters
    ----------
    data : xarray.Dataset or (X, y, groups)
        A dataset with a ``category`` image coordinate (trials of ``tiers`` are used), or arrays:
        responses (trial, neuron), labels (trial,), image ids (trial,) for grouping.
    model, selection, n_features, balanced
        See :func:`make_decoder`.
    merge : dict, optional
        Label → merged label (e.g. from :func:`merge_classes`), applied before decoding.
    n_splits : int
        Folds of :class:`~sklearn.model_selection.StratifiedGroupKFold` (reduced to the size of
        the smallest class in images when needed).
    n_boot : int
        Bootstrap resamples for the confidence interval.
    n_threads : int, optional
        BLAS/OpenMP threads while fitting; None keeps the libraries' defaults. Default 1: on the
        2-core reference machine, shared with other jobs (load average 2.7), 5-fold logistic
        decoding of the default twin took 29 s with one thread and 191 s with two, because
        multithreaded BLAS and OpenMP loops spin when a core is busy (bench/analysis.py).

    Returns
    -------
    CategoryDecoding
    """
    if isinstance(data, xr.Dataset):
        X, y, groups = category_trials(data, tiers)
    else:
        X, y, groups = (np.asarray(a) for a in data)
        if X.ndim != 2 or len(X) != len(y) or len(y) != len(groups):
            raise ValueError(f"data=(X, y, groups) must be (trial, neuron), (trial,), (trial,); got {X.shape}, {y.shape}, {groups.shape}")
    y = np.asarray(y).astype(str)
    if merge is not None:
        missing = sorted(set(y) - set(map(str, merge)))
        if missing:
            raise ValueError(f"merge has no entry for classes {missing}")
        y = np.array([str(merge[c]) for c in y])
    classes = sorted(set(y))
    images_per_class = min(len(np.unique(groups[y == c])) for c in classes)
    n_splits = int(min(n_splits, images_per_class))
    if n_splits < 2:
        raise ValueError(f"a class has only {images_per_class} image(s): cross-validation needs ≥ 2 per class")
    decoder = make_decoder(model, selection, n_features, balanced, random_state)
    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=random_state)
    pred = np.empty(len(y), dtype=object)
    scores = []
    with threadpool_limits(n_threads):
        for train, test in cv.split(X, y, groups):
            fitted = clone(decoder).fit(X[train], y[train])
            pred[test] = fitted.predict(X[test])
            scores.append(balanced_accuracy_score(y[test], pred[test].astype(str)))
    pred = pred.astype(str)
    score = balanced_accuracy_score(y, pred)
    lo, hi = _bootstrap_balanced_accuracy(y, pred, classes, n_boot, random_state)
    conf = confusion_matrix(y, pred, labels=classes).astype(float)
    conf /= np.clip(conf.sum(axis=1, keepdims=True), 1, None)
    return CategoryDecoding(float(score), (float(lo), float(hi)), np.asarray(scores), 1.0 / len(classes), classes, conf,
                            {"model": model, "selection": selection, "n_features": n_features, "n_splits": n_splits,
                             "n_trials": len(y), "class_sizes": {c: int((y == c).sum()) for c in classes}})

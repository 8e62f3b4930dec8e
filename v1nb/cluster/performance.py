"""Is a neuron's prediction performance connected to its cluster, beyond its signal-to-noise ratio?

Performance (test correlation, FEVE) rises with a neuron's SNR, and clusters of embeddings can
differ in SNR (the embedding of a noisy neuron is itself noisy), so a raw difference between
clusters says little. The test here is the nested linear model

    reduced:  y_n = f(log SNR_n) + ε_n,         f = natural cubic spline, 5 knots at quantiles
    full:     y_n = f(log SNR_n) + a_{c(n)} + ε_n

with the F statistic F = [(RSS_r − RSS_f)/(K − 1)] / [RSS_f/(N − p_f)] and its p-value by
**Freedman–Lane permutation** (residuals of the reduced model permuted and added back to its
fit; valid without normal errors, which correlations bounded by 1 do not have), next to the
parametric F p-value. Effect size: partial η² = (RSS_r − RSS_f)/RSS_r, the share of the
SNR-adjusted variance the clusters explain. A **stratified** check alongside: neurons in SNR
quantile strata, labels permuted within strata, statistic = Σ over strata of the between-cluster
sum of squares.

:func:`performance_verdict` turns the controlled p-value and effect size into the chapter's answer.

Without an SNR (recordings with one presentation per image, or dF/F responses, for which the Anscombe
SNR is undefined: :func:`snr_measured` is False) nothing can be controlled: ``snr=None`` gives the
uncontrolled one-way ANOVA alone, every controlled value NaN, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

#: verdict thresholds: significance level and the smallest partial η² called an effect (Cohen's "small")
ALPHA, MIN_ETA2 = 0.01, 0.02


@dataclass
class ClusterEffect:
    """Result of :func:`cluster_effect_given_snr`.

    Attributes
    ----------
    f : float
        F statistic of the cluster term given f(log SNR).
    p_value : float
        Freedman–Lane permutation p-value of F.
    p_value_parametric : float
        F-distribution p-value (normal errors assumed).
    partial_eta2 : float
        (RSS_r − RSS_f)/RSS_r.
    p_value_raw, eta2_raw : float
        One-way ANOVA of y on cluster without the SNR term (what ignoring SNR would conclude).
    p_value_stratified : float
        Permutation p-value with labels permuted within SNR strata.
    n, k, n_permutations : int
    snr_controlled : bool
        False when no SNR was given (``snr=None``): only the uncontrolled fields are numbers, the
        rest NaN.
    """

    f: float
    p_value: float
    p_value_parametric: float
    partial_eta2: float
    p_value_raw: float
    eta2_raw: float
    p_value_stratified: float
    n: int
    k: int
    n_permutations: int
    snr_controlled: bool = True


def snr_measured(snr) -> bool:
    """Whether an SNR per neuron exists to control for: at least one finite, positive value.

    :func:`v1nb.metrics.snr` is NaN for every neuron of data without repeated test images, and for
    neurons with negative responses (dF/F)."""
    snr = np.asarray(snr, dtype=float)
    return bool(np.any(np.isfinite(snr) & (snr > 0)))


def snr_basis(log_snr: np.ndarray, n_knots: int = 5) -> np.ndarray:
    """Restricted (natural) cubic spline basis of log SNR with knots at quantiles (Harrell 2015):
    columns 1, x, and for j = 1..k−2 the truncated cubics
    [(x−t_j)₊³ − (x−t_{k−1})₊³ (t_k−t_j)/(t_k−t_{k−1}) + (x−t_k)₊³ (t_{k−1}−t_j)/(t_k−t_{k−1})] / (t_k−t_1)²,
    linear beyond the outer knots; shape (N, n_knots)."""
    x = np.asarray(log_snr, dtype=float)
    t = np.quantile(x, np.linspace(0.05, 0.95, n_knots))
    if n_knots < 3 or np.unique(t).size < n_knots:
        return np.column_stack([np.ones_like(x), x])
    k = n_knots
    cube = lambda u: np.clip(u, 0, None) ** 3  # noqa: E731
    cols = [np.ones_like(x), x]
    for j in range(k - 2):
        cols.append((cube(x - t[j]) - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
                     + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / (t[-1] - t[0]) ** 2)
    return np.column_stack(cols)


def _onehot(labels: np.ndarray) -> np.ndarray:
    u = np.unique(labels)
    return (labels[:, None] == u[None, 1:]).astype(float)  # first cluster is the reference


def _rss(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    fit = X @ beta
    return float(((y - fit) ** 2).sum()), fit


def _between_ss(y: np.ndarray, labels: np.ndarray) -> float:
    m = y.mean()
    return float(sum(((y[labels == c].mean() - m) ** 2) * (labels == c).sum() for c in np.unique(labels)))


def clean_inputs(performance, labels, snr, floor: float | None = None):
    """Drop neurons with a non-finite performance or SNR; clip SNR at ``floor`` (default: the
    smallest positive SNR) before the log. Returns (y, labels, log_snr, kept mask)."""
    y = np.asarray(performance, dtype=float)
    labels = np.asarray(labels)
    snr = np.asarray(snr, dtype=float)
    if not (y.shape == labels.shape == snr.shape) or y.ndim != 1:
        raise ValueError(f"performance, labels and snr must be 1-D of equal length; got shapes "
                         f"{y.shape}, {labels.shape}, {snr.shape}")
    keep = np.isfinite(y) & np.isfinite(snr)
    pos = snr[keep & (snr > 0)]
    if pos.size == 0:
        raise ValueError("no neuron has a positive SNR: cannot control for log SNR")
    floor = float(pos.min()) if floor is None else float(floor)
    return y[keep], labels[keep], np.log(np.maximum(snr[keep], floor)), keep


# one thread: thousands of least-squares fits of N × (knots + K) designs, too small for a BLAS thread pool
# (performance_by_cluster re-run with its models cached: 23 CPU-s with the 2 cores' threads, 19 with one;
# same numbers)
@threadpool_limits.wrap(limits=1)
def cluster_effect_given_snr(performance, labels, snr, n_knots: int = 5, n_strata: int = 5,
                             n_permutations: int = 2000, random_state=0) -> ClusterEffect:
    """Test whether ``labels`` explain ``performance`` beyond a polynomial in log SNR.

    Parameters
    ----------
    performance : array (N,)
        Per-neuron test correlation or FEVE.
    labels : array (N,)
        Cluster (or true type) of each neuron.
    snr : array (N,) or None
        Per-neuron SNR (non-positive values are clipped to the smallest positive one). None where
        the data have no SNR (:func:`snr_measured`): then only the uncontrolled one-way ANOVA is
        computed (``snr_controlled=False``, the controlled fields NaN).
    n_knots : int
        Knots of the natural cubic spline f of log SNR (:func:`snr_basis`; 5 follows the
        saturating curve of correlation against SNR without overfitting).
    n_strata : int
        SNR quantile strata of the stratified permutation test.
    n_permutations : int
    random_state : int or RandomState

    Returns
    -------
    ClusterEffect
    """
    if snr is None:
        return _uncontrolled_effect(performance, labels)
    y, labels, ls, _ = clean_inputs(performance, labels, snr)
    n = y.size
    k = _check_clusters(labels, n)
    A = snr_basis(ls, n_knots)
    full = np.column_stack([A, _onehot(labels)])
    df_f = n - np.linalg.matrix_rank(full)
    df_num = np.linalg.matrix_rank(full) - np.linalg.matrix_rank(A)
    if df_f < 1 or df_num < 1:
        raise ValueError(f"too few neurons ({n}) for {k} clusters and a {n_knots}-knot SNR spline")
    rss_r, fit_r = _rss(A, y)
    rss_f, _ = _rss(full, y)

    def f_stat(yy, lab):
        r0, _ = _rss(A, yy)
        r1, _ = _rss(np.column_stack([A, _onehot(lab)]), yy)
        return ((r0 - r1) / df_num) / max(r1 / df_f, 1e-300)

    F = ((rss_r - rss_f) / df_num) / max(rss_f / df_f, 1e-300)
    rng = check_random_state(random_state)
    resid = y - fit_r
    # Freedman–Lane: only the reduced model's residuals are exchangeable under H0
    null = np.array([f_stat(fit_r + rng.permutation(resid), labels) for _ in range(n_permutations)])
    p_perm = (1 + int((null >= F - 1e-12).sum())) / (1 + n_permutations)
    # stratified: permute labels within SNR quantile strata
    edges = np.quantile(ls, np.linspace(0, 1, n_strata + 1)[1:-1])
    strata = np.searchsorted(edges, ls, side="right")
    def strat_stat(lab):
        return sum(_between_ss(y[strata == s], lab[strata == s]) for s in np.unique(strata))
    obs = strat_stat(labels)
    perm = labels.copy()
    count = 0
    for _ in range(n_permutations):
        for s in np.unique(strata):
            i = np.flatnonzero(strata == s)
            perm[i] = labels[rng.permutation(i)]
        count += strat_stat(perm) >= obs - 1e-12
    p_raw, eta2_raw = _anova(y, labels)
    return ClusterEffect(f=float(F), p_value=float(p_perm),
                         p_value_parametric=float(stats.f.sf(F, df_num, df_f)),
                         partial_eta2=float((rss_r - rss_f) / max(rss_r, 1e-300)),
                         p_value_raw=p_raw, eta2_raw=eta2_raw,
                         p_value_stratified=(1 + int(count)) / (1 + n_permutations),
                         n=int(n), k=int(k), n_permutations=int(n_permutations))


def _check_clusters(labels: np.ndarray, n: int) -> int:
    k = np.unique(labels).size
    if k < 2:
        raise ValueError(f"need at least two clusters among the {n} neurons with finite values, got {k}")
    return k


def _anova(y: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """One-way ANOVA of y on the labels, SNR ignored: its p-value and η² (between-cluster share of the sum of squares)."""
    raw = stats.f_oneway(*[y[labels == c] for c in np.unique(labels)])
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return float(raw.pvalue), _between_ss(y, labels) / max(ss_tot, 1e-300)


def _uncontrolled_effect(performance, labels) -> ClusterEffect:
    """The one-way ANOVA of performance on cluster, for data without an SNR (every other field NaN)."""
    y = np.asarray(performance, dtype=float)
    labels = np.asarray(labels)
    if y.shape != labels.shape or y.ndim != 1:
        raise ValueError(f"performance and labels must be 1-D of equal length; got shapes {y.shape}, {labels.shape}")
    keep = np.isfinite(y)
    y, labels = y[keep], labels[keep]
    k = _check_clusters(labels, y.size)
    p_raw, eta2_raw = _anova(y, labels)
    nan = float("nan")
    return ClusterEffect(f=nan, p_value=nan, p_value_parametric=nan, partial_eta2=nan, p_value_raw=p_raw,
                         eta2_raw=eta2_raw, p_value_stratified=nan, n=int(y.size), k=int(k), n_permutations=0,
                         snr_controlled=False)


def stratified_table(performance, labels, snr, n_strata: int = 3) -> pd.DataFrame:
    """Mean performance per (SNR stratum, cluster) with counts: the stratified view of the effect.

    Returns
    -------
    DataFrame with columns ``stratum`` (``"low"``/``"mid"``/``"high"`` for 3 strata, else
    ``"q1"``..), ``cluster``, ``n``, ``mean``, ``sem``.
    """
    y, labels, ls, _ = clean_inputs(performance, labels, snr)
    edges = np.quantile(ls, np.linspace(0, 1, n_strata + 1)[1:-1])
    strata = np.searchsorted(edges, ls, side="right")
    names = ["low", "mid", "high"] if n_strata == 3 else [f"q{i + 1}" for i in range(n_strata)]
    df = pd.DataFrame(dict(stratum=[names[s] for s in strata], cluster=labels, y=y))
    g = df.groupby(["stratum", "cluster"], sort=False)["y"]
    out = g.agg(n="size", mean="mean", sem=lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan)
    out = out.reset_index()
    out["stratum"] = pd.Categorical(out["stratum"], categories=names, ordered=True)
    return out.sort_values(["stratum", "cluster"]).reset_index(drop=True)


def performance_verdict(effect: ClusterEffect, alpha: float = ALPHA, min_eta2: float = MIN_ETA2) -> str:
    """The answer: ``"yes, beyond SNR"`` (controlled p < alpha and partial η² ≥ min_eta2),
    ``"significant but negligible"`` (p < alpha, η² below), ``"only through SNR"`` (raw ANOVA
    p < alpha, controlled not), or ``"no"``. Without an SNR (``effect.snr_controlled`` False) the
    question cannot be answered, and the verdict says what the uncontrolled test found:
    ``"unknown: no SNR to control for (clusters differ, uncontrolled)"`` or ``"unknown: no SNR to
    control for (no difference even uncontrolled)"``."""
    if not effect.snr_controlled:
        found = "clusters differ, uncontrolled" if effect.p_value_raw < alpha else "no difference even uncontrolled"
        return f"unknown: no SNR to control for ({found})"
    if effect.p_value < alpha:
        return "yes, beyond SNR" if effect.partial_eta2 >= min_eta2 else "significant but negligible"
    return "only through SNR" if effect.p_value_raw < alpha else "no"


def snr_fit(performance, snr, n_knots: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The reduced model alone: (y, log SNR, fitted f(log SNR), kept mask) for the neurons with finite values.

    ``y − fit`` is each neuron's performance relative to what its SNR predicts (plotted by cluster).
    """
    y, _, ls, keep = clean_inputs(performance, np.zeros(np.shape(performance)), snr)
    _, fit = _rss(snr_basis(ls, n_knots), y)
    return y, ls, fit, keep

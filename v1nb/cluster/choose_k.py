"""Choosing the number of clusters: every criterion over K side by side, against a no-cluster null.

:func:`choose_k` returns a tidy (long) table with one row per (criterion, K):

========== ========================================================== ======= =================
criterion  value                                                      better  null comparison
========== ========================================================== ======= =================
bic, aic   GaussianMixture information criterion (K = 1 *is* the      lower   built in (K = 1)
           null: one Gaussian with the data's mean and covariance)
silhouette mean silhouette of k-means labels (K ≥ 2)                  higher  null draws
gap        gap statistic E*[log W_K] − log W_K (Tibshirani et al.     higher  built in
           2001), reference = null draws
eigengap   λ_{K+1} − λ_K of the kNN-graph normalised Laplacian        higher  null draws
stability  mean ARI between k-means fits on bootstrap resamples,      higher  null draws
           compared on all points (Ben-Hur et al. 2002 style)
========== ========================================================== ======= =================

The null: ``n_null`` data sets of the same size drawn from a single Gaussian with the data's
mean and covariance — no clusters, same second-order structure. Their criterion values give
``null_mean`` and ``null_sd`` for every (criterion, K); :func:`select_k` only lets a
null-compared criterion claim K > 1 when its best value beats the null by ``z`` standard
deviations of the null's own best-over-K value (z = 3 by default: the argmax over K of a
noisy curve is itself noisy). Expect a continuum on real embeddings: read the curves, not just
the argmin.

Threads: the criteria fit thousands of small models (k-means and mixtures on N × ≤ 10 after PCA),
each too small for a thread pool, whose start and spin per call then cost more than the threads give:
``choose_k`` on 1,020 × 10 points over K = 1..12 took 14.2 s wall and 27.8 s CPU with the 2 cores'
OpenMP and BLAS threads on the AMD EPYC (Zen 3) box, and 10.0 s wall and 10.0 s CPU with one. So
:func:`choose_k` and :func:`cross_seed_stability` run single-threaded by default (``n_threads``);
the numbers do not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_array, check_random_state
from threadpoolctl import threadpool_limits

from v1nb.cluster.graph import knn_graph, normalized_laplacian

CRITERIA = ("bic", "aic", "silhouette", "gap", "eigengap", "stability")
BETTER = {"bic": "lower", "aic": "lower", "silhouette": "higher", "gap": "higher",
          "eigengap": "higher", "stability": "higher"}
NULL_COMPARED = ("silhouette", "eigengap", "stability")


def null_samples(X: np.ndarray, n_draws: int, random_state=None) -> list[np.ndarray]:
    """``n_draws`` data sets shaped like X (N, D) from N(mean(X), cov(X)): the no-cluster null."""
    rng = check_random_state(random_state)
    mean = X.mean(0)
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    w, V = np.linalg.eigh(cov)
    A = V * np.sqrt(np.clip(w, 0, None))
    return [mean + rng.standard_normal(X.shape) @ A.T for _ in range(n_draws)]


def _kmeans(X, k, seed, n_init=5):
    return KMeans(k, n_init=n_init, random_state=seed).fit(X)


def _criteria(X: np.ndarray, ks: list[int], criteria, n_bootstrap: int, n_neighbors: int,
              covariance_type: str, seed: int) -> dict[str, dict[int, float]]:
    """Criterion values (no gap: that needs the null) for one data set."""
    rng = check_random_state(seed)
    out: dict[str, dict[int, float]] = {c: {} for c in criteria}
    km = {k: _kmeans(X, k, rng.randint(2 ** 31 - 1)) for k in ks
          if {"silhouette", "gap"} & set(criteria)}
    if "gap" in criteria:
        out["log_w"] = {k: float(np.log(max(km[k].inertia_, 1e-300))) for k in ks}
    for k in ks:
        if "bic" in criteria or "aic" in criteria:
            gm = GaussianMixture(k, covariance_type=covariance_type, n_init=2, reg_covar=1e-6,
                                 random_state=rng.randint(2 ** 31 - 1)).fit(X)
            if "bic" in criteria:
                out["bic"][k] = float(gm.bic(X))
            if "aic" in criteria:
                out["aic"][k] = float(gm.aic(X))
        if "silhouette" in criteria:
            lab = km[k].labels_
            ok = 2 <= np.unique(lab).size <= X.shape[0] - 1
            out["silhouette"][k] = float(silhouette_score(X, lab)) if ok else np.nan
        if "stability" in criteria:
            if k < 2:
                out["stability"][k] = np.nan
            else:
                scores = []
                for _ in range(n_bootstrap):
                    a = rng.choice(X.shape[0], X.shape[0], replace=True)
                    b = rng.choice(X.shape[0], X.shape[0], replace=True)
                    la = _kmeans(X[a], k, rng.randint(2 ** 31 - 1), n_init=3).predict(X)
                    lb = _kmeans(X[b], k, rng.randint(2 ** 31 - 1), n_init=3).predict(X)
                    scores.append(adjusted_rand_score(la, lb))
                out["stability"][k] = float(np.mean(scores))
    if "eigengap" in criteria:
        m = min(max(ks) + 1, X.shape[0] - 1)
        L = normalized_laplacian(knn_graph(X, n_neighbors))
        if X.shape[0] <= 500:
            lam = np.linalg.eigvalsh(L.toarray())[:m]
        else:
            # smallest eigenvalues of L (spectrum in [0, 2]) = 2 − largest of 2I − L
            shifted = 2.0 * sp.identity(L.shape[0], format="csr") - L
            lam = np.sort(2.0 - eigsh(shifted, k=m, which="LA", v0=rng.uniform(-1, 1, L.shape[0]),
                                      return_eigenvectors=False))
        for k in ks:
            out["eigengap"][k] = float(lam[k] - lam[k - 1]) if k < lam.size else np.nan
    return out


def choose_k(X, ks=range(1, 11), criteria=CRITERIA, n_null: int = 5, n_bootstrap: int = 10,
             n_neighbors: int = 10, covariance_type: str = "full",
             random_state=None, n_threads: int | None = 1) -> pd.DataFrame:
    """Every K-selection criterion over ``ks``, with the no-cluster null alongside.

    Parameters
    ----------
    X : array-like, shape (N, D)
    ks : iterable of int
        Candidate numbers of clusters (include 1 for the information criteria and the gap rule).
    criteria : sequence of str
        Subset of ``("bic", "aic", "silhouette", "gap", "eigengap", "stability")``.
    n_null : int, default=5
        Null data sets (single Gaussian with X's mean and covariance); also the gap reference.
    n_bootstrap : int, default=10
        Bootstrap pairs per K for stability.
    n_neighbors : int, default=10
        kNN graph for the eigengap.
    covariance_type : str, default="full"
        GaussianMixture covariance for BIC/AIC ("diag" after PCA is cheaper for large D).
    random_state : int, RandomState or None
    n_threads : int or None, default=1
        Threads of the numerical libraries (OpenMP, BLAS) meanwhile; None leaves them as they are.
        One is fastest for embedding-sized data (module docstring).

    Returns
    -------
    DataFrame
        Columns ``criterion, k, value, null_mean, null_sd, null_max_mean, null_max_sd, better``;
        one row per (criterion, K). ``null_max_*``: mean and sd over null draws of the
        criterion's best value over K (what :func:`select_k` compares against).
        Pass it to :func:`select_k` for each criterion's choice.
    """
    X = check_array(X, dtype=np.float64)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if ks[-1] >= X.shape[0]:
        raise ValueError(f"max(ks)={ks[-1]} must be smaller than n_samples={X.shape[0]}")
    criteria = tuple(criteria)
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; choose from {CRITERIA}")
    if "gap" in criteria and n_null < 2:
        raise ValueError("the gap statistic needs n_null >= 2 reference data sets")
    rng = check_random_state(random_state)
    null_crit = tuple(c for c in criteria if c in NULL_COMPARED or c == "gap")
    with threadpool_limits(n_threads):
        obs = _criteria(X, ks, criteria, n_bootstrap, n_neighbors, covariance_type,
                        rng.randint(2 ** 31 - 1))
        nulls = [_criteria(Z, ks, null_crit, n_bootstrap, n_neighbors, covariance_type,
                           rng.randint(2 ** 31 - 1))
                 for Z in (null_samples(X, n_null, rng) if null_crit else [])]
    # Max statistic of each null draw over the candidate K (K >= 2; eigengap also K = 1): the
    # selection rule takes the argmax over K, so the null must too, or it over-claims.
    null_max: dict[str, tuple[float, float]] = {}
    for c in criteria:
        if c in NULL_COMPARED and nulls:
            kk = [k for k in ks if k >= 2 or c == "eigengap"]
            m = np.array([np.nanmax([nd[c][k] for k in kk]) if kk else np.nan for nd in nulls])
            null_max[c] = (float(np.nanmean(m)), float(np.nanstd(m))) if np.isfinite(m).any() \
                else (np.nan, np.nan)
    rows = []
    for c in criteria:
        for k in ks:
            if c == "gap":
                ref = np.array([nd["log_w"][k] for nd in nulls])
                value = float(ref.mean() - obs["log_w"][k])
                # Tibshirani's s_k = sd_k √(1 + 1/B)
                nm, ns = 0.0, float(ref.std() * np.sqrt(1 + 1 / len(ref)))
            elif c in NULL_COMPARED and nulls:
                ref = np.array([nd[c][k] for nd in nulls], dtype=float)
                value = obs[c][k]
                nm, ns = (float(np.nanmean(ref)), float(np.nanstd(ref))) if np.isfinite(ref).any() \
                    else (np.nan, np.nan)
            else:
                value, nm, ns = obs[c][k], np.nan, np.nan
            mm, ms = null_max.get(c, (np.nan, np.nan))
            rows.append(dict(criterion=c, k=k, value=value, null_mean=nm, null_sd=ns,
                             null_max_mean=mm, null_max_sd=ms, better=BETTER[c]))
    return pd.DataFrame(rows)


def select_k(table: pd.DataFrame, z: float = 3.0, stability_tol: float = 0.02) -> pd.DataFrame:
    """Each criterion's choice of K from a :func:`choose_k` table.

    Rules: BIC/AIC — argmin (K = 1 is the single-Gaussian null). Gap — Tibshirani's smallest K
    with gap(K) ≥ gap(K+1) − s_{K+1}. Silhouette, eigengap, stability — argmax over K (stability:
    the largest K within ``stability_tol`` of the best), claimed only if the value beats the
    null's max-over-K statistic (stability: the null at the same K) by ``z`` null sd; otherwise
    K = 1.

    Returns
    -------
    DataFrame
        Columns ``criterion, k, claims_structure, rule`` (one row per criterion).
    """
    out = []
    for c, g in table.groupby("criterion", sort=False):
        g = g.sort_values("k").reset_index(drop=True)
        vals = g["value"].to_numpy(float)
        if c in ("bic", "aic"):
            k = int(g["k"][np.nanargmin(vals)])
            rule = "argmin"
        elif c == "gap":
            s = g["null_sd"].to_numpy(float)
            k = int(g["k"].iloc[-1])
            for i in range(len(g) - 1):
                if vals[i] >= vals[i + 1] - s[i + 1]:
                    k = int(g["k"][i])
                    break
            rule = "smallest K with gap(K) >= gap(K+1) - s(K+1)"
        else:
            cand = g[g["k"] >= 2] if c != "eigengap" else g
            v = cand["value"].to_numpy(float)
            if not np.isfinite(v).any():
                k = 1
            else:
                i = int(np.nanargmax(v))
                if c == "stability":
                    # Coarser partitions of well-separated clusters are as stable as the true
                    # one (often exactly 1): take the largest K within stability_tol of the best.
                    i = int(np.flatnonzero(v >= v[i] - stability_tol).max())
                row = cand.iloc[i]
                # Stability is compared at the chosen K: the null's most stable K is K = 2 (a
                # Gaussian splits reproducibly along its major axis), which says nothing about K.
                ref = ("null_mean", "null_sd") if c == "stability" else ("null_max_mean", "null_max_sd")
                beats = (np.isnan(row[ref[0]])
                         or row["value"] > row[ref[0]] + z * max(row[ref[1]], 1e-12))
                k = int(row["k"]) if beats else 1
            rule = (f"largest K within {stability_tol:g} of the max, if > null mean + {z:g} sd at K"
                    if c == "stability" else f"argmax, if > null max-over-K mean + {z:g} sd")
        out.append(dict(criterion=c, k=k, claims_structure=k > 1, rule=rule))
    return pd.DataFrame(out)


def cross_seed_stability(embeddings: Sequence[np.ndarray], ks=range(2, 11), n_init: int = 20,
                         random_state=0, n_threads: int | None = 1) -> pd.DataFrame:
    """Cross-seed stability over K: mean ARI between the k-means labels of every pair of fits.

    The neurons are the same in every fit, so a partition that reflects the data rather than one
    model's idiosyncrasies is found again in another seed's embeddings.

    Parameters
    ----------
    embeddings : sequence of arrays (N, D)
        One per seed (the same N neurons in the same order; D may differ between fits).
    ks : iterable of int
        K ≥ 2.
    n_init : int
        k-means restarts.
    random_state : int
        Seed of k-means (the same on every fit).
    n_threads : int or None, default=1
        Threads of the numerical libraries meanwhile, as in :func:`choose_k`.

    Returns
    -------
    DataFrame
        Columns ``criterion`` ("cross_seed"), ``k``, ``value`` (mean pairwise ARI), ``sd``,
        ``n_pairs``, ``better`` ("higher").
    """
    if len(embeddings) < 2:
        raise ValueError(f"cross-seed stability needs the embeddings of at least two seeds, got {len(embeddings)}")
    X = [check_array(x, dtype=np.float64) for x in embeddings]
    n = {x.shape[0] for x in X}
    if len(n) != 1:
        raise ValueError(f"every seed's embeddings must have the same neurons; got row counts {sorted(n)}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 2 or ks[-1] >= n.pop():
        raise ValueError(f"ks must be integers in [2, n_samples); got {ks}")
    seed = check_random_state(random_state).randint(2 ** 31 - 1)
    rows = []
    with threadpool_limits(n_threads):
        for k in ks:
            lab = [KMeans(k, n_init=n_init, random_state=seed).fit_predict(x) for x in X]
            aris = [adjusted_rand_score(lab[a], lab[b]) for a in range(len(lab)) for b in range(a + 1, len(lab))]
            rows.append(dict(criterion="cross_seed", k=k, value=float(np.mean(aris)),
                             sd=float(np.std(aris, ddof=1)) if len(aris) > 1 else np.nan,
                             n_pairs=len(aris), better="higher"))
    return pd.DataFrame(rows)


def select_k_cross_seed(stability: pd.DataFrame, null: pd.DataFrame | None = None, z: float = 3.0,
                        tol: float = 0.02) -> int:
    """K chosen by cross-seed stability (:func:`cross_seed_stability`).

    Rule: among the K whose stability beats the no-cluster yardstick, the largest within ``tol``
    of the best (coarser merges of well-separated clusters are as reproducible as the true
    partition, as for bootstrap stability in :func:`select_k`). The yardstick is the
    ``"stability"`` rows of a :func:`choose_k` table (``null``): the bootstrap stability of
    k-means on a single Gaussian with the data's covariance, mean + ``z`` s.d. at the same K.
    Without ``null`` every K qualifies. Returns 1 when no K qualifies.
    """
    s = stability.sort_values("k").reset_index(drop=True)
    ok = np.isfinite(s["value"].to_numpy(float))
    if null is not None:
        ref = null[null["criterion"] == "stability"].set_index("k")
        for i, k in enumerate(s["k"]):
            if k in ref.index and np.isfinite(ref.loc[k, "null_mean"]):
                ok[i] &= s["value"][i] > ref.loc[k, "null_mean"] + z * max(ref.loc[k, "null_sd"], 1e-12)
    if not ok.any():
        return 1
    v = np.where(ok, s["value"].to_numpy(float), -np.inf)
    best = v.max()
    return int(s["k"][np.flatnonzero(v >= best - tol).max()])


def k_choices(table: pd.DataFrame, stability: pd.DataFrame | None = None, z: float = 3.0) -> dict[str, int]:
    """``{"k_bic": .., "k_silhouette": .., "k_gap": .., "k_eigengap": .., "k_stability": ..}`` (and
    ``k_aic``, ``k_bootstrap_stability`` when in the table): each criterion's choice.

    ``k_stability`` is the cross-seed rule (:func:`select_k_cross_seed`) when ``stability`` is
    given, else choose_k's bootstrap stability; the bootstrap rule is then ``k_bootstrap_stability``.
    """
    sel = select_k(table, z=z).set_index("criterion")["k"].to_dict()
    out = {f"k_{c}": int(k) for c, k in sel.items() if c != "stability"}
    if "stability" in sel:
        out["k_bootstrap_stability"] = int(sel["stability"])
    if stability is not None:
        out["k_stability"] = select_k_cross_seed(stability, table, z=z)
    elif "stability" in sel:
        out["k_stability"] = int(sel["stability"])
    return out


def criteria_at_k(X, k: int, n_null: int = 5, n_neighbors: int = 10, covariance_type: str = "full",
                  random_state=None, n_threads: int | None = 1) -> dict[str, float]:
    """Criteria of an embedding that was itself shaped for K clusters (e.g. DEC-fine-tuned with K),
    at that K only, on scales comparable between different embeddings.

    Returns
    -------
    dict
        ``bic`` — (BIC(K) − BIC(1)) / N, the mixture's gain over one Gaussian on the same data
        (lower is better; BIC itself is not comparable between data sets); ``silhouette``,
        ``gap`` (against its own no-cluster reference), ``eigengap`` (λ_{K+1} − λ_K) at K.
    """
    X = check_array(X, dtype=np.float64)
    k = int(k)
    t = choose_k(X, ks=[1, k, k + 1], criteria=("bic", "silhouette", "gap", "eigengap"), n_null=max(2, n_null),
                 n_neighbors=n_neighbors, covariance_type=covariance_type, random_state=random_state,
                 n_threads=n_threads)
    v = t.set_index(["criterion", "k"])["value"]
    return {"bic": float((v["bic", k] - v["bic", 1]) / X.shape[0]), "silhouette": float(v["silhouette", k]),
            "gap": float(v["gap", k]), "eigengap": float(v["eigengap", k])}


def select_k_at_own_k(table: pd.DataFrame) -> dict[str, int]:
    """Choices from a table with columns ``k`` and one column per criterion of
    :func:`criteria_at_k` (plus ``stability``), one row per fine-tuned K: argmin of ``bic``,
    argmax of the others. Returns ``{"k_<criterion>": K}``."""
    out = {}
    for c in ("bic", "silhouette", "gap", "eigengap", "stability"):
        if c in table and np.isfinite(table[c].to_numpy(float)).any():
            v = table[c].to_numpy(float)
            i = int(np.nanargmin(v) if c == "bic" else np.nanargmax(v))
            out[f"k_{c}"] = int(table["k"].iloc[i])
    return out


def n_clusters_verdict(choices: Mapping[str, int], k_true: int | None,
                       null_choices: Mapping[str, int] | None = None) -> str:
    """One sentence: which criteria found the true K, and which claimed clusters on the one-type null.

    ``choices``/``null_choices``: ``{"k_<criterion>": K}``; ``k_true`` None on data without truth.
    """
    names = [c[2:] for c in choices if c in ("k_bic", "k_silhouette", "k_gap", "k_eigengap", "k_stability")]
    if k_true is None:
        found = "no ground truth: " + ", ".join(f"{c} K = {choices['k_' + c]}" for c in names)
    else:
        hit = [c for c in names if choices[f"k_{c}"] == k_true]
        found = (f"{len(hit)} of {len(names)} criteria recover K = {k_true}"
                 + (f" ({', '.join(hit)})" if hit else ""))
    if null_choices:
        fooled = [c for c in names if null_choices.get(f"k_{c}", 1) > 1]
        found += ("; on the one-type null every criterion says K = 1" if not fooled else
                  f"; on the one-type null {', '.join(fooled)} still claim{'s' if len(fooled) == 1 else ''} clusters")
    return found

"""Scores, tables and verdicts of the three DEC chapters of Part IV (dec_improves, dec_tradeoff, dec_rotation).

The fine-tunes themselves are :func:`v1nb.models.dec.finetune_dec`; this module turns pre-trained and
fine-tuned models into the numbers the chapters report and states their answers by explicit rules.

Scores (all from the same labels): ARI / AMI to the true types over all neurons and over the
*reliable* ones (oracle correlation ≥ 0.5, :func:`v1nb.cluster.embedding_clustering.reliable_mask`),
and **cross-seed ARI**: the mean ARI between the labels of every pair of seeds (the same neurons in
every fit). "Pre" labels are k-means (20 restarts) of the pre-trained model's unit-normalised
embeddings (the issue's baseline and the recipe's initialisation); "init" labels are the partition
the fine-tune starts from (k-means, a full-covariance GMM or spectral clustering of the same
embeddings, :class:`v1nb.models.dec.DECTerm`), so that DEC is compared both with k-means and with its
own start; "DEC" labels are the fine-tuned head's hard assignments argmax_j q_nj.

Why the mixture's scales matter (:func:`em_drift`): the head is a Student-t mixture updated by EM
after every step. Started from a partition, EM moves it to the nearest fixed point of the mixture
family; a diagonal-scale family and a full-covariance one have different fixed points, and the
table shows, without any training, which partitions survive.

Orientation (rotation core): the true preferred orientation θ_n ∈ [0, π) is an axial angle, so its
spread within a cluster is measured on the doubled angle, 1 − R̄ with R̄ = |mean_n exp(2iθ_n)| (0: one
orientation, 1: uniform). A recovered cyclic shift r of R rotations turns the filter by 360°·r/R,
i.e. the orientation by 2πr/R (mod π), doubled 4πr/R. Their association is the circular correlation
(Jammalamadaka & SenGupta 2001) ρ = Σ sin(a − ā) sin(b − b̄) / √(Σ sin²(a − ā) Σ sin²(b − b̄)) of
the doubled angles within each cluster (each cluster's template has its own orientation, and the
direction in which the core's rotation turns the filter sets the sign), averaged as |ρ| weighted
by cluster size.
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from v1nb.cluster.embedding_clustering import score_labels

#: the largest drop in mean test correlation that counts as "keeps the model's performance"
CORR_TOLERANCE = 0.01
#: a mean ARI gain smaller than this (or than the seeds' standard error) is "no change"
MIN_GAIN = 0.02


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows (neurons) flattened and scaled to unit length; shape (N, D)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kmeans_labels(embeddings, k: int, random_state: int = 0) -> np.ndarray:
    """k-means (20 restarts) labels (N,) of unit-normalised embeddings (DataArray or array (N, ...))."""
    x = unit_rows(np.asarray(getattr(embeddings, "values", embeddings)))
    return KMeans(k, n_init=20, random_state=random_state).fit_predict(x).astype(np.intp)


def init_labels(embeddings, k: int, init: str = "kmeans", random_state: int = 0, n_init: int = 20) -> np.ndarray:
    """The partition (N,) a DEC fine-tune with ``init`` starts from (:func:`v1nb.models.dec.initial_partition`).

    The embeddings are normalised as the fine-tune's head sees them (float32 rows scaled to unit length,
    :func:`v1nb.models.dec.normalise_rows`), so the labels are the fine-tune's own starting labels.
    """
    from v1nb.models.dec import initial_partition

    return initial_partition(head_rows(embeddings).double().numpy(), k, init, random_state, n_init)


def head_rows(embeddings):
    """Embeddings (N, ...) as a fine-tune's head sees them: float32 tensor (N, D), rows at unit length
    (:func:`v1nb.models.dec.normalise_rows`)."""
    import torch

    from v1nb.models.dec import normalise_rows

    w = torch.as_tensor(np.asarray(getattr(embeddings, "values", embeddings)), dtype=torch.float32)
    return normalise_rows(w.reshape(w.shape[0], -1))


# one thread: the starts fit many small mixtures, for which the OpenMP/BLAS thread pools cost more CPU
# than they give (dec_improves re-run with its models cached: 35 CPU-s with the 2 cores' threads, 28 with
# one; same numbers)
@threadpool_limits.wrap(limits=1)
def em_drift(embeddings: Sequence, k: int, truth: np.ndarray | None, inits: Sequence[str] = ("kmeans", "gmm", "spectral"),
             covariances: Sequence[str] = ("diagonal", "full"), em_steps: int = 20,
             alpha: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Where the head's EM takes each starting partition, for each kind of scales (no training).

    For every seed's embeddings, start partition (``inits``) and covariance: centres from the partition
    exactly as a fine-tune sets them (:func:`v1nb.models.dec.start_head`), scales and weights from its
    members (:func:`v1nb.models.dec.init_mixture`), then
    ``em_steps`` EM steps of the Student-t mixture (what a fine-tune does before its first target,
    and after every step), then the head's hard labels.

    Parameters
    ----------
    embeddings : sequence of arrays (N, D) or DataArrays, one per seed
    k : int
    truth : array (N,) or None
    inits, covariances : sequences of names
    em_steps : int
    alpha : mapping covariance → α, optional
        Default: D for diagonal scales, :data:`v1nb.models.dec.FULL_COVARIANCE_ALPHA` for full ones
        (the defaults of :func:`v1nb.models.dec.dec_job`).

    Returns
    -------
    DataFrame
        One row per (init, covariance, stage ∈ {"start", "after EM"}): ``ari`` (mean over seeds; NaN
        without truth), ``cross_seed_ari``.
    """
    import torch

    from v1nb.cluster.head import DECHead
    from v1nb.models.dec import FULL_COVARIANCE_ALPHA, init_mixture, start_head

    zs = [head_rows(e) for e in embeddings]  # normalised once, as the fine-tune's head sees them
    dim = zs[0].shape[1]
    alphas = {"diagonal": float(dim), "full": FULL_COVARIANCE_ALPHA, **(alpha or {})}
    rows = []
    for init in inits:
        starts, ends = [], {c: [] for c in covariances}
        for seed, z in enumerate(zs):
            heads = {cov: DECHead(k, dim, alpha=alphas[cov], learn_scales=True, learn_weights=True, covariance=cov)
                     for cov in covariances}
            first = heads[covariances[0]]
            labels = start_head(first, z, init, random_state=seed)  # the fine-tune's own start (DECTerm)
            starts.append(labels)
            for cov, head in heads.items():
                with torch.no_grad():
                    head.centres.copy_(first.centres)  # same start for every kind of scales
                init_mixture(head, z, labels)
                for _ in range(em_steps):
                    head.em_update(z)
                ends[cov].append(head.predict(z).numpy())
        for cov in covariances:
            for stage, labs in (("start", starts), ("after EM", ends[cov])):
                ari = (float(np.mean([adjusted_rand_score(truth, lab) for lab in labs])) if truth is not None
                       else np.nan)
                rows.append(dict(init=init, covariance=cov, stage=stage, ari=ari, cross_seed_ari=cross_seed(labs)[0]))
    return pd.DataFrame(rows)


def cross_seed(labels: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and s.d. of the ARI between the labels of every pair of seeds (NaN with fewer than two)."""
    aris = [adjusted_rand_score(a, b) for a, b in combinations(labels, 2)]
    if not aris:
        return np.nan, np.nan
    return float(np.mean(aris)), float(np.std(aris, ddof=1)) if len(aris) > 1 else np.nan


def mean_test_corr(model, ds) -> tuple[float, float]:
    """Mean over neurons of the test single-trial correlation, and mean FEVE (the reported metrics)."""
    ev = model.evaluate(ds, "test")
    return float(np.nanmean(ev["single_trial_correlation"].values)), float(ev.attrs.get("mean_feve", np.nan))


def _se(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


# ------------------------------------------------------------------------------ dec_improves
def drift_text(drift: pd.DataFrame, tolerance: float = MIN_GAIN) -> str:
    """One sentence on what the mixture's EM did to the best starting partition (rule stated in it).

    The best start is the one with the highest ARI to the true types (without truth: the highest
    cross-seed ARI); for each kind of scales EM "keeps" it when the score after EM is at least the
    start's minus ``tolerance``, else it "moves it away".
    """
    score = "ari" if drift["ari"].notna().any() else "cross_seed_ari"
    start = drift[drift.stage == "start"].drop_duplicates("init").set_index("init")[score]
    best = str(start.idxmax())
    after = drift[(drift.stage == "after EM") & (drift.init == best)].set_index("covariance")[score]
    parts = []
    for cov, value in after.items():
        verb = "keeps it" if value >= start[best] - tolerance else "moves it away"
        parts.append(f"{cov} scales {verb} ({value:.2f})")
    name = "ARI to the true types" if score == "ari" else "cross-seed ARI"
    return (f"the best start, {best} ({name} {start[best]:.2f}): EM with " + ", with ".join(parts)
            + f" (kept: within {tolerance:g} of the start)")


def before_after(ds, parents: Sequence, tuned: Sequence, k: int, truth: np.ndarray | None,
                 reliable: np.ndarray | None, init: str = "kmeans") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed and stage ("pre" k-means, "init" the fine-tune's starting partition — only when ``init``
    is not k-means —, "dec" head labels, "dec+kmeans" k-means of the fine-tuned embeddings): ARI/AMI
    (all, reliable), test correlation; and per stage the cross-seed ARI.

    Returns
    -------
    scores : DataFrame (stage, seed, ari, ami, ari_reliable, ami_reliable, corr, feve)
    consistency : DataFrame (stage, cross_seed_ari, cross_seed_ari_sd)
    """
    stages = ["pre"] + (["init"] if init != "kmeans" else []) + ["dec", "dec+kmeans"]
    rows, labels = [], {stage: [] for stage in stages}
    for parent, model in zip(parents, tuned):
        corr_pre, feve_pre = mean_test_corr(parent, ds)
        corr_dec, feve_dec = mean_test_corr(model, ds)
        stage_labels = {"pre": kmeans_labels(parent.embeddings(), k), "dec": np.asarray(model.labels_),
                        "dec+kmeans": kmeans_labels(model.embeddings(), k)}
        if init != "kmeans":
            # the fine-tune's own start, with its seed (DECTerm uses random_state = the model's seed)
            stage_labels["init"] = init_labels(parent.embeddings(), k, init, random_state=int(model.random_state))
        for stage in stages:
            lab = stage_labels[stage]
            labels[stage].append(lab)
            corr, feve = (corr_pre, feve_pre) if stage in ("pre", "init") else (corr_dec, feve_dec)
            rows.append(dict(stage=stage, seed=int(parent.random_state), **score_labels(lab, truth, reliable),
                             corr=corr, feve=feve))
    cons = [dict(stage=s, **dict(zip(("cross_seed_ari", "cross_seed_ari_sd"), cross_seed(v))))
            for s, v in labels.items()]
    return pd.DataFrame(rows), pd.DataFrame(cons)


def cross_seed_gain_counts(gain: float, *sds: float) -> tuple[bool, float]:
    """Does a change of cross-seed ARI count? It must exceed :data:`MIN_GAIN` and the larger of the
    pair s.d.s ``sds`` (NaN where a cross-seed ARI rests on one pair of seeds: then only the floor).

    Returns
    -------
    (counts, sd) : the answer, and the larger s.d. (NaN when none is finite)
    """
    finite = [float(v) for v in sds if np.isfinite(v)]
    sd = max(finite) if finite else np.nan
    return bool(np.isfinite(gain) and gain > max([MIN_GAIN, *finite])), sd


def improves_verdict(scores: pd.DataFrame, consistency: pd.DataFrame, best_classical_ari: float) -> dict:
    """Does DEC improve clustering? Computed answer of the dec_improves chapter.

    Rule: the gain of a score (ARI to truth; cross-seed ARI) counts when its mean over seeds exceeds
    both :data:`MIN_GAIN` and twice the standard error of the per-seed differences (for cross-seed
    ARI, which has one value per pair, the pair s.d.). "yes" when both gains count, "partly" when
    one does, "no" otherwise; without ground truth only the cross-seed gain decides. Also whether
    DEC beats the best classical pipeline on the pre-trained embeddings (mean DEC ARI >
    ``best_classical_ari``), and both gains against the fine-tune's own starting partition (the
    "init" stage; the k-means "pre" stage when the fine-tune starts from k-means).
    """
    pre = scores[scores.stage == "pre"].set_index("seed")
    dec = scores[scores.stage == "dec"].set_index("seed")
    diff = (dec["ari"] - pre["ari"]).to_numpy(dtype=float)
    truth_known = bool(np.isfinite(diff).any())
    gain_truth = float(np.nanmean(diff)) if truth_known else np.nan
    se = _se(diff)
    truth_counts = truth_known and gain_truth > MIN_GAIN and not (np.isfinite(se) and gain_truth <= 2 * se)
    c = consistency.set_index("stage")
    gain_cons = float(c.loc["dec", "cross_seed_ari"] - c.loc["pre", "cross_seed_ari"])
    cons_counts, _ = cross_seed_gain_counts(gain_cons, c.loc["dec", "cross_seed_ari_sd"], c.loc["pre", "cross_seed_ari_sd"])
    counted = [cons_counts] + ([truth_counts] if truth_known else [])
    verdict = "yes" if all(counted) else "partly" if any(counted) else "no"
    ari_dec = float(np.nanmean(dec["ari"])) if truth_known else np.nan
    beats = (bool(ari_dec > best_classical_ari) if truth_known and np.isfinite(best_classical_ari) else None)
    # against the fine-tune's own start ("init" stage; k-means, i.e. "pre", when it has none)
    start = "init" if "init" in set(scores["stage"]) else "pre"
    init = scores[scores.stage == start].set_index("seed")
    gain_init = float(np.nanmean((dec["ari"] - init["ari"]).to_numpy(dtype=float))) if truth_known else np.nan
    gain_cons_init = float(c.loc["dec", "cross_seed_ari"] - c.loc[start, "cross_seed_ari"])
    return dict(verdict=verdict, gain_truth=gain_truth, gain_truth_se=se, gain_cross_seed=gain_cons,
                truth_counts=bool(truth_counts), cross_seed_counts=cons_counts, beats_best_classical=beats,
                gain_truth_vs_init=gain_init, gain_cross_seed_vs_init=gain_cons_init)


# ------------------------------------------------------------------------------ dec_tradeoff
def tradeoff_table(ds, parents: Sequence, tuned: Mapping[tuple[str, float, int], object], k: int,
                   truth: np.ndarray | None, reliable: np.ndarray | None) -> pd.DataFrame:
    """Per (mode, β): mean over seeds of test correlation, FEVE, ARI to truth (all, reliable), their
    s.e., and the cross-seed ARI of the DEC labels. β = 0 rows are the pre-trained models (mode "pre").

    Parameters
    ----------
    tuned : mapping (mode, beta, seed) → fine-tuned model, mode in {"joint", "dec_only", ...}
    """
    rows = []
    pre_labels = []
    for p in parents:
        corr, feve = mean_test_corr(p, ds)
        lab = kmeans_labels(p.embeddings(), k)
        pre_labels.append(lab)
        rows.append(dict(mode="pre", beta=0.0, seed=int(p.random_state), corr=corr, feve=feve,
                         **score_labels(lab, truth, reliable), labels=lab))
    for (mode, beta, seed), m in tuned.items():
        corr, feve = mean_test_corr(m, ds)
        rows.append(dict(mode=mode, beta=float(beta), seed=int(seed), corr=corr, feve=feve,
                         **score_labels(np.asarray(m.labels_), truth, reliable), labels=np.asarray(m.labels_)))
    per_seed = pd.DataFrame(rows)
    out = []
    for (mode, beta), g in per_seed.groupby(["mode", "beta"], sort=False):
        cs, cs_sd = cross_seed(list(g["labels"]))
        out.append(dict(mode=mode, beta=beta, n_seeds=len(g), corr=g["corr"].mean(), corr_se=_se(g["corr"]),
                        feve=g["feve"].mean(), ari=g["ari"].mean(), ari_se=_se(g["ari"]),
                        ari_reliable=g["ari_reliable"].mean(), cross_seed_ari=cs, cross_seed_ari_sd=cs_sd))
    return pd.DataFrame(out)


def beta_max_within(table: pd.DataFrame, mode: str = "joint", tolerance: float = CORR_TOLERANCE) -> float:
    """Largest β of ``mode`` whose mean test correlation is at most ``tolerance`` below the pre-trained
    models' (and every smaller β's too: the first β past the tolerance ends the search); NaN if none."""
    pre = float(table.loc[table["mode"] == "pre", "corr"].iloc[0])
    rows = table[table["mode"] == mode].sort_values("beta")
    best = np.nan
    for beta, corr in zip(rows["beta"], rows["corr"]):
        if pre - corr > tolerance:
            break
        best = float(beta)
    return best


def beta_max_text(beta_max: float, grid: Sequence[float]) -> str:
    """The answer "largest β within the tolerance" in words: a bound when it is the largest β tried.

    ``"none of the grid"`` (NaN), ``"≥ 10 (the largest β tried: the limit lies above it)"`` when
    ``beta_max`` is the grid's maximum, else the value itself (``"0.1"``).
    """
    if not np.isfinite(beta_max):
        return "none of the grid"
    if np.isclose(beta_max, max(float(b) for b in grid)):
        return f"≥ {beta_max:g} (the largest β tried: the limit lies above it)"
    return f"{beta_max:g}"


def label_agreement(tuned: Mapping[tuple[str, float, int], object], mode: str = "joint") -> pd.DataFrame:
    """How many neurons keep their DEC cluster as β grows: per β of ``mode``, the fraction of neurons
    whose label equals their label at the smallest β of the grid, mean and minimum over seeds.

    The fine-tunes of one seed start from the same parent and the same initial partition (the
    head's cluster *j* is the same initial centre at every β), so their labels compare directly,
    without matching. A fraction near 1 at the largest β means the partition was settled at the
    start and the clustering loss only tightened each cluster around its own centre: pulling an
    embedding towards its nearest centre never changes which centre is nearest.

    Parameters
    ----------
    tuned : mapping (mode, beta, seed) → fine-tuned model with ``labels_``
    mode : str

    Returns
    -------
    DataFrame (beta, agreement, agreement_min, n_seeds), sorted by β; empty without fits of ``mode``.
    """
    by_seed: dict[int, dict[float, np.ndarray]] = {}
    for (m, beta, seed), model in tuned.items():
        if m == mode:
            by_seed.setdefault(int(seed), {})[float(beta)] = np.asarray(model.labels_)
    rows = []
    for beta in sorted({b for labels in by_seed.values() for b in labels}):
        same = [float(np.mean(labels[beta] == labels[min(labels)])) for labels in by_seed.values() if beta in labels]
        rows.append(dict(beta=beta, agreement=float(np.mean(same)), agreement_min=float(np.min(same)),
                         n_seeds=len(same)))
    return pd.DataFrame(rows, columns=["beta", "agreement", "agreement_min", "n_seeds"])


#: Share of neurons that must keep their cluster from the smallest to the largest β for
#: :func:`agreement_text` to call the partition settled.
SETTLED_AGREEMENT = 0.95


#: relative prediction difference below which two DEC-only fine-tunes count as the same model
SAME_PREDICTION = 1e-3


def beta_invariance_text(reference: np.ndarray, other: np.ndarray, corr_reference: float, corr_other: float,
                         tolerance: float = SAME_PREDICTION) -> str:
    """Does DEC-only depend on β? One sentence from two fine-tunes that differ only in β.

    With Adam a constant factor on the loss leaves the steps unchanged wherever the gradients dwarf
    Adam's ε; the rule calls the two fits the same when their predictions differ on average by at
    most ``tolerance`` of the mean predicted rate (mean absolute difference over test trials and
    neurons; the largest single difference is quoted beside it).

    Parameters
    ----------
    reference, other : arrays (trial, neuron)
        Test predictions of the fine-tune at the reference β and at the other β.
    corr_reference, corr_other : float
        Their mean test correlations.
    """
    diff = np.abs(np.asarray(other, dtype=float) - np.asarray(reference, dtype=float))
    scale = max(float(np.mean(np.abs(reference))), 1e-12)
    mean_rel, max_rel = float(diff.mean()) / scale, float(diff.max()) / scale
    if mean_rel <= tolerance:
        return (f"their predictions differ on average by {mean_rel:.1e} of the mean predicted rate (at most "
                f"{max_rel:.1e}): with Adam, β does not matter for DEC-only")
    return (f"their predictions differ on average by {mean_rel:.1%} of the mean predicted rate (up to "
            f"{max_rel:.1f} times it for single trials and neurons; mean test correlation {corr_other:.3f} against "
            f"{corr_reference:.3f}): Adam's steps ignore a constant factor on the loss only where the gradients "
            "dwarf its ε, and not every embedding's do, so β still changes DEC-only somewhat")


def agreement_text(agreement: pd.DataFrame) -> str:
    """What :func:`label_agreement` says, by a stated rule: the partition is *settled* when at least
    :data:`SETTLED_AGREEMENT` of the neurons (mean over seeds) keep their cluster at the largest β."""
    if agreement.empty or len(agreement) < 2:
        return "only one β was fitted, so nothing is compared"
    first, last = agreement.iloc[0], agreement.iloc[-1]
    share = f"{100 * last['agreement']:.1f} % of the neurons keep their cluster from β = {first['beta']:g} to β = {last['beta']:g}"
    if last["agreement"] >= SETTLED_AGREEMENT:
        return (f"{share}: the partition is settled by the smallest β, and a larger β only tightens each cluster "
                "around its centre (at a price in prediction) without moving neurons to other clusters")
    return f"{share}: a larger β does move neurons to other clusters"


def _nearest_beta(table: pd.DataFrame, mode: str, beta: float) -> pd.Series | None:
    """The row of ``mode`` whose β is nearest ``beta`` (None without rows of ``mode``)."""
    rows = table[table["mode"] == mode]
    return None if rows.empty else rows.iloc[int(np.argmin(np.abs(rows["beta"].to_numpy() - beta)))]


def tradeoff_verdict(table: pd.DataFrame, beta_ref: float, tolerance: float = CORR_TOLERANCE) -> dict:
    """Does DEC ruin performance, and does the joint loss keep it? Computed answer of dec_tradeoff.

    Rule (at the reference β): DEC-only "ruins" the model when its mean test correlation drops by
    more than ``tolerance``; the joint loss "keeps" it when its drop is within ``tolerance``; the joint
    loss "pays off" when, in addition, its cross-seed ARI exceeds the pre-trained k-means' by more
    than :data:`MIN_GAIN` and the larger of the two s.d.s over seed pairs, the rule of
    :func:`improves_verdict`. A margin is needed: with three seeds (three pairs), refits that differ
    only in float rounding moved the joint loss's cross-seed ARI from 0.68 to 0.52 and k-means' from
    0.64 to 0.61 on the default twin.
    """
    pre = table[table["mode"] == "pre"].iloc[0]
    joint, dec_only = _nearest_beta(table, "joint", beta_ref), _nearest_beta(table, "dec_only", beta_ref)
    drop_joint = float(pre["corr"] - joint["corr"]) if joint is not None else np.nan
    drop_dec = float(pre["corr"] - dec_only["corr"]) if dec_only is not None else np.nan
    keeps = bool(drop_joint <= tolerance)
    gain = float(joint["cross_seed_ari"] - pre["cross_seed_ari"]) if joint is not None else np.nan
    counts, sd = (cross_seed_gain_counts(gain, joint["cross_seed_ari_sd"], pre["cross_seed_ari_sd"])
                  if joint is not None else (False, np.nan))
    pays = keeps and counts
    ruins = bool(drop_dec > tolerance)
    spread = (f"s.d. over seed pairs up to {sd:.3f}" if np.isfinite(sd)
              else f"one pair of seeds, so no s.d.: the margin is {MIN_GAIN}")
    return dict(drop_joint=drop_joint, drop_dec_only=drop_dec, joint_keeps=keeps, joint_pays_off=pays,
                gain_cross_seed=gain, cross_seed_sd=sd, gain_cross_seed_text=f"{gain:+.3f} ({spread})",
                dec_only_ruins=ruins,
                verdict=("the joint loss keeps the performance" + (" and raises cross-seed consistency" if pays
                                                                    else " but does not raise cross-seed consistency")
                         if keeps else "the joint loss costs more than 0.01 of test correlation")
                + ("; DEC-only ruins it" if ruins else "; DEC-only does not ruin it either"))


def saturation(table: pd.DataFrame, beta_ref: float, tolerance: float = CORR_TOLERANCE) -> dict:
    """Does a larger β cost more? The joint loss at the grid's largest β against the reference β and DEC-only.

    Adam moves each weight by about its learning rate per step whatever the loss's scale (the step is
    the gradient's running mean over the root of its running second moment). A β large enough that the
    clustering term's gradient dwarfs the prediction term's therefore does not move the embeddings
    further than the clustering term alone does: the joint loss's cost tends to DEC-only's (the same
    steps of the embeddings), and should not exceed it, since the core still follows the prediction loss
    (the clustering term does not reach it). So where DEC-only costs less than ``tolerance``, no β is
    expected to cost more than the tolerance within the same schedule.

    Returns
    -------
    dict
        ``beta_max`` (largest β of the grid), ``corr_ref``, ``corr_max``, ``corr_dec_only``,
        ``fraction`` (how far the joint loss at ``beta_max`` has moved from the reference β's
        correlation towards DEC-only's: 0 none, 1 all the way; NaN when the two are within 1e-4),
        ``bounded`` (DEC-only's drop within ``tolerance``) and ``text``, one sentence.
    """
    pre = float(table.loc[table["mode"] == "pre", "corr"].iloc[0])
    ref, dec_only = _nearest_beta(table, "joint", beta_ref), _nearest_beta(table, "dec_only", beta_ref)
    if ref is None or dec_only is None:
        return dict(beta_max=np.nan, corr_ref=np.nan, corr_max=np.nan, corr_dec_only=np.nan, fraction=np.nan,
                    bounded=False, text="the grid has no joint or no DEC-only fine-tune to compare")
    top = table[table["mode"] == "joint"].sort_values("beta").iloc[-1]
    r, t, d = float(ref["corr"]), float(top["corr"]), float(dec_only["corr"])
    fraction = (r - t) / (r - d) if abs(r - d) > 1e-4 else np.nan
    drop = pre - d
    bounded = bool(drop <= tolerance)
    if not np.isfinite(fraction) or r < d:  # DEC-only no worse than the reference β: nothing to move towards
        moved = f"against {r:.3f} at the reference β and {d:.3f} for DEC-only, which costs no more here"
    elif fraction < 0:
        moved = f"no closer to DEC-only's ({d:.3f}) than the reference β's ({r:.3f})"
    else:
        moved = f"{100 * fraction:.0f} % of the way from the reference β's ({r:.3f}) towards DEC-only's ({d:.3f})"
    text = f"at the largest β, {float(top['beta']):g}, the joint loss's mean test correlation is {t:.3f}: {moved}"
    lost = f"loses {drop:.3f}" if drop > 0 else "loses nothing"
    if bounded:
        text += (f". DEC-only, the limit a growing β approaches under Adam, {lost} against the pre-trained models "
                 f"(within {tolerance:g}), so by that bound no β costs more than {tolerance:g} in this schedule")
    else:
        text += (f". DEC-only, the limit a growing β approaches under Adam, {lost} (more than {tolerance:g}), so a "
                 f"large enough β does cost more than {tolerance:g}")
    return dict(beta_max=float(top["beta"]), corr_ref=r, corr_max=t, corr_dec_only=d, fraction=float(fraction),
                bounded=bounded, text=text)


# ------------------------------------------------------------------------------ dec_rotation
def orientation_spread(labels: np.ndarray, orientation: np.ndarray) -> float:
    """Size-weighted mean over clusters of 1 − |mean exp(2iθ)| (0: one orientation per cluster, 1: uniform).

    Neurons without a preferred orientation (NaN: the twin's untuned centre-surround types) are left out;
    NaN when none has one.
    """
    labels, theta = np.asarray(labels), np.asarray(orientation, dtype=float)
    tuned = np.isfinite(theta)
    labels, theta = labels[tuned], theta[tuned]
    if not len(theta):
        return np.nan
    total = 0.0
    for j in np.unique(labels):
        t = theta[labels == j]
        total += len(t) * (1.0 - abs(np.mean(np.exp(2j * t))))
    return float(total / len(labels))


def circular_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Jammalamadaka–SenGupta circular correlation of two samples of angles (radians); NaN if undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    sa = np.sin(a - np.angle(np.mean(np.exp(1j * a))))
    sb = np.sin(b - np.angle(np.mean(np.exp(1j * b))))
    den = np.sqrt((sa ** 2).sum() * (sb ** 2).sum())
    return float((sa * sb).sum() / den) if den > 1e-12 else np.nan


def shift_orientation_correlation(labels: np.ndarray, shifts: np.ndarray, n_rotations: int,
                                  orientation: np.ndarray, min_size: int = 5) -> float:
    """Size-weighted mean over clusters (≥ ``min_size`` neurons) of |ρ| between the doubled true
    orientation 2θ and the doubled orientation change of the recovered shift 4πr/R."""
    labels, shifts, theta = np.asarray(labels), np.asarray(shifts), np.asarray(orientation, float)
    tuned = np.isfinite(theta)  # untuned neurons (NaN orientation) are left out
    labels, shifts, theta = labels[tuned], shifts[tuned], theta[tuned]
    total, weight = 0.0, 0
    for j in np.unique(labels):
        idx = labels == j
        if idx.sum() < min_size:
            continue
        rho = circular_correlation(2 * theta[idx], 4 * np.pi * shifts[idx] / n_rotations)
        if np.isfinite(rho):
            total += idx.sum() * abs(rho)
            weight += idx.sum()
    return float(total / weight) if weight else np.nan


def rotation_verdict(ari: Mapping[str, float], spread: Mapping[str, float], spread_all: float) -> dict:
    """Which way of handling rotation clusters best, and are its clusters orientation-invariant?

    Rule: the best mode is the one with the highest mean ARI to truth (NaN without truth); its
    clusters are "orientation-invariant" when the orientation spread within its clusters is at
    least 0.8 of the spread over all neurons (clusters mix orientations nearly as much as the whole
    population), "orientation-tuned" when below 0.5 of it, "partly" in between.
    """
    finite = {k: v for k, v in ari.items() if np.isfinite(v)}
    best = max(finite, key=finite.get) if finite else ""
    ratio = (spread.get(best, np.nan) / spread_all) if best and spread_all > 0 else np.nan
    kind = ("orientation-invariant" if ratio >= 0.8 else "orientation-tuned" if ratio < 0.5 else "partly invariant"
            ) if np.isfinite(ratio) else "unknown (no true orientation)"
    return dict(best=best, spread_ratio=float(ratio) if np.isfinite(ratio) else np.nan, clusters=kind)


# ------------------------------------------------------------------------------ chapter helpers
#: fine-tune epochs of the "auto" setting per training budget (v1nb.models.budgets). Five on the
#: standard budget: on the default twin the β-weighted DEC loss levels off by epoch 4-5, and the DEC
#: labels after 5 epochs equal those after 10 (every ARI of dec_improves and dec_tradeoff the same to
#: the last digit; mean test correlation 0.454 vs 0.455), at half the fine-tunes' cost (Zen 3,
#: 2026-12-06). DEC-only drifts further with more epochs (drop 0.0045 at 5, 0.0083 at 10).
FINETUNE_EPOCHS = {"quick": 3, "standard": 5, "full": 20}


def finetune_epochs(epochs: int, budget: str, data: str) -> int:
    """Epochs of a fine-tune: ``epochs`` if > 0, else the budget's (:data:`FINETUNE_EPOCHS`)."""
    from v1nb.models.budgets import resolve_budget

    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"parameter epochs={epochs!r} must be an int >= 0 (0: the budget's default)")
    return int(epochs) if epochs > 0 else FINETUNE_EPOCHS[resolve_budget(budget, data)]


def parse_floats(text, name: str) -> list[float]:
    """A chapter parameter like ``"0.01,0.1,1"`` as a sorted list of distinct non-negative floats."""
    try:
        out = sorted({float(t) for t in str(text).replace(" ", "").split(",") if t != ""})
    except ValueError:
        raise ValueError(f"parameter {name}={text!r} must be comma-separated numbers, e.g. '0.01,0.1,1'") from None
    if not out or min(out) < 0 or not all(np.isfinite(out)):
        raise ValueError(f"parameter {name}={text!r} must list at least one finite number >= 0")
    return out


def nanmean(x) -> float:
    """Mean of the finite entries (NaN when there are none, without a warning)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else np.nan

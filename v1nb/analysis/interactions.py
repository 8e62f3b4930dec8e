"""Part V analyses: what the interaction stages gain, what they learn, and for which neurons.

Entry points
------------
compare_stages(ds, baselines, stages)         mean test single-trial correlation and FEVE per seed and stage
stage_gains(table)                             gains over the baseline, seed-to-seed spread
attention_verdict / normalisation_verdict ...  the chapters' answers (rules stated in the returned text)
ground_truth(ds)                               the twin's pool P and coupling C (rebuilt from its provenance)
attention_pairs(model, ds)                     per neighbour pair: learned weights, distances, true P and C
coupling_size(model, ds)                       size of the coupling term in the twin and of the attention update
TwinRoom(ds)                                   the twin's responses with and without each image-level interaction:
                                               .headroom(), .tracking(predictions), .oracle_normalisation(predictions)
headroom_verdict(...)                          why a stage gains what it gains (rules stated in the text)
mantel(x, y, ...), partial_mantel(x, y, z)     permutation tests of matrix association
kernel_time_constant(kernel)                   τ of an exponential fitted to a temporal kernel
per_neuron_gain(ds, baselines, stages)         gain of each neuron (mean over seeds)
gain_vs_snr(gain, snr), gain_by_type(...)      Spearman test and Kruskal–Wallis test

Formulas (the chapters repeat them): Mantel statistic ``r = Spearman(x_ij, y_ij)`` over pairs
``(i, j)`` of a fixed set; its p-value ``(1 + #{r_π ≥ r}) / (1 + n_perm)`` with ``y`` relabelled by
random permutations π of the neurons (rows and columns together). Partial Mantel: the same on the
residuals of the ranks of ``x`` and ``y`` after a linear regression on the ranks of ``z``
(Legendre & Legendre), permuting ``y`` only.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, stats

STAGES = ("attention", "normalisation", "temporal")


# ----------------------------------------------------------------------- performance
def model_scores(model: Any, ds: xr.Dataset, tier: str = "test") -> dict[str, float]:
    """Mean single-trial correlation and mean FEVE (reliable neurons) of a fitted model on ``tier``."""
    from v1nb.metrics import mean_feve

    ev = model.evaluate(ds, tier)
    return {"correlation": float(np.nanmean(ev["single_trial_correlation"].values)), "feve": mean_feve(ev)}


def compare_stages(ds: xr.Dataset, baselines: Sequence[Any], stages: Mapping[str, Sequence[Any]],
                   twin_name: str = "interacting") -> pd.DataFrame:
    """One row per (stage, seed): mean test correlation and FEVE.

    Parameters
    ----------
    ds : xarray.Dataset
    baselines : list of ResponseModel, one per seed
    stages : mapping stage name → list of ResponseModel (same seeds, same order)
    twin_name : str
        Value of the ``twin`` column.
    """
    rows = []
    for name, models in {"baseline": baselines, **stages}.items():
        if len(models) != len(baselines):
            raise ValueError(f"stage {name!r} has {len(models)} models for {len(baselines)} baseline seeds")
        for model in models:
            rows.append({"twin": twin_name, "stage": name, "seed": int(model.random_state),
                         **model_scores(model, ds)})
    return pd.DataFrame(rows)


def stage_gains(table: pd.DataFrame, metric: str = "correlation") -> pd.DataFrame:
    """Per twin and stage: mean and s.d. over seeds of the metric, and the paired gain over the baseline.

    Returns
    -------
    DataFrame indexed by (twin, stage): ``mean``, ``sd`` (over seeds, ddof 1), ``gain`` (mean over
    seeds of stage − baseline of the same seed), ``gain_sd``, ``n_seeds``.
    """
    out = []
    for (twin, stage), grp in table.groupby(["twin", "stage"], sort=False):
        base = table[(table.twin == twin) & (table.stage == "baseline")].set_index("seed")[metric]
        diff = grp.set_index("seed")[metric] - base.reindex(grp["seed"]).values
        out.append({"twin": twin, "stage": stage, "mean": grp[metric].mean(),
                    "sd": grp[metric].std(ddof=1) if len(grp) > 1 else float("nan"),
                    "gain": diff.mean(), "gain_sd": diff.std(ddof=1) if len(diff) > 1 else float("nan"),
                    "n_seeds": len(grp)})
    return pd.DataFrame(out).set_index(["twin", "stage"])


def attention_verdict(gains: pd.DataFrame, control_tolerance: float = 0.005) -> dict[str, Any]:
    """The answer of the attention chapter.

    Rules: a stage *helps* when its mean gain on the interacting twin exceeds the seed-to-seed
    spread (s.d. over seeds of the baseline's mean correlation) **and** it loses no more than
    ``control_tolerance`` on the control twin (interactions off), where there is nothing to model.
    Its gain is *specific* to the twin's interactions when it exceeds the stage's gain on the control
    twin by more than the spread too: a gain made on both twins alike comes from the stage's extra
    flexibility (e.g. a per-neuron exponent), not from modelling an interaction.

    Returns
    -------
    dict: ``helps`` (stage → bool), ``specific`` (stage → bool; False without a control twin),
    ``beyond_control`` (stage → gain minus the control twin's gain; NaN without one), ``spread``, ``text``.
    """
    spread = float(gains.loc[("interacting", "baseline"), "sd"])
    helps, specific, beyond, parts = {}, {}, {}, []
    for stage in [s for s in STAGES if ("interacting", s) in gains.index]:
        gain = float(gains.loc[("interacting", stage), "gain"])
        control = float(gains.loc[("control", stage), "gain"]) if ("control", stage) in gains.index else float("nan")
        ok = bool(gain > spread and not control < -control_tolerance)
        helps[stage] = ok
        beyond[stage] = gain - control  # NaN without a control twin
        specific[stage] = bool(np.isfinite(control) and gain - control > spread)
        parts.append(f"{stage}: gain {gain:+.4f} on the interacting twin (spread {spread:.4f}), "
                     f"{control:+.4f} on the control twin → {'helps' if ok else 'does not pass'}"
                     + (f", {gain - control:+.4f} beyond its control gain → "
                        f"{'specific to the interactions' if specific[stage] else 'not specific'}"
                        if np.isfinite(control) else ""))
    n = sum(helps.values())
    head = (f"{n} of {len(helps)} interaction stages improve the test single-trial correlation by more than the "
            f"seed-to-seed spread without losing more than {control_tolerance} on the control twin")
    text = head + ". " + "; ".join(parts) + "."
    unspecific = [s for s in helps if helps[s] and not specific[s] and ("control", s) in gains.index]
    if unspecific:
        text += (f" The gain of {' and '.join(unspecific)} is made on the control twin too, where there is no "
                 "interaction to model: it comes from the stage's extra flexibility, not from modelling the "
                 "interaction (a gain is specific when it exceeds the control twin's by more than the spread).")
    if ("interacting", "none") in gains.index:  # the same fine-tune without a stage: extra training alone
        reference = float(gains.loc[("interacting", "none"), "gain"])
        text += (f" The same fine-tune without any stage gains {reference:+.4f}: what a fine-tuned stage gains "
                 "beyond it is the stage's own contribution.")
    return {"helps": helps, "specific": specific, "beyond_control": beyond, "spread": spread, "text": text}


# ---------------------------------------------------------------------- ground truth
def ground_truth(ds: xr.Dataset) -> dict[str, Any]:
    """The twin's normalisation pool P and lateral coupling C, rebuilt from the dataset's provenance.

    Uses the twin's own functions (:func:`v1nb.data.digital_twin.interactions.normalization_pool`,
    :func:`~v1nb.data.digital_twin.interactions.coupling_matrix`) on the stored cortical positions,
    orientations and types, with the radii of the twin's configuration.

    Returns
    -------
    dict: ``pool``, ``coupling`` (sparse (neuron, neuron)), ``positions`` (N, 3) µm,
    ``rf`` (N, 2) pixels, ``config`` (dict), ``tau`` (adaptation time constant, trials),
    ``adaptation`` (strength; 0 when off).
    """
    from v1nb.data import provenance_of
    from v1nb.data.digital_twin import interactions as twin_int

    prov = provenance_of(ds)
    if prov.get("generator") != "v1nb.data.digital_twin":
        raise ValueError(f"dataset {ds.attrs.get('source')!r} is not a twin: no ground truth of interactions")
    cfg = prov["config"]
    pos = np.column_stack([ds[c].values.astype(float) for c in ("cortical_x", "cortical_y", "cortical_z")])
    orientation = ds["true_orientation"].values.astype(float)
    cell_type = ds["true_type"].values.astype(str)
    on = bool(cfg.get("interactions", True))
    return {"pool": twin_int.normalization_pool(pos, float(cfg["normalization_radius_um"])),
            "coupling": twin_int.coupling_matrix(pos, orientation, cell_type, float(cfg["coupling_radius_um"])),
            "positions": pos, "rf": np.column_stack([ds["true_rf_x"].values, ds["true_rf_y"].values]).astype(float),
            "config": cfg, "tau": float(cfg["adaptation_tau"]),
            "adaptation": float(cfg["adaptation"]) if on else 0.0,
            "coupling_radius_um": float(cfg["coupling_radius_um"])}


def _tier_images(ds: xr.Dataset, tier: str, max_images: int) -> np.ndarray:
    """The first ``max_images`` distinct image ids shown in ``tier`` (sorted; blanks, id < 0, left out)."""
    ids = np.unique(ds["image_id"].values[ds["tier"].values.astype(str) == tier])
    return ids[ids >= 0][:max_images]


def _stage_drives(model: Any, ds: xr.Dataset, tier: str = "test", max_images: int = 200) -> tuple[Any, Any]:
    """The network's drives ``(images, N)`` on the tier's distinct images, and the embedding."""
    import torch

    from v1nb.models.training import evaluation_mode

    ids = _tier_images(ds, tier, max_images)
    x = model._standardised_images(ds["images"].values[ids])
    net = model.network_
    with evaluation_mode(net), torch.no_grad():  # the model's own train/eval modes come back afterwards
        drive = torch.cat([net.drive(x[i:i + 128]) for i in range(0, len(x), 128)])
        embedding = net.embedding()
    return drive, embedding


def attention_maps(model: Any, ds: xr.Dataset, tier: str = "test", max_images: int = 200) -> xr.Dataset:
    """Attention of a fitted ``interaction="attention"`` model, per stimulus and averaged.

    Returns
    -------
    Dataset with ``weights`` (image, head, neuron, neighbour) — softmax weights per stimulus —,
    ``mean_weights`` (head, neuron, neighbour), ``effective`` (neuron, neighbour): the signed weight
    ``α_n Σ_h β_h a^h`` of each neighbour's drive averaged over stimuli, and ``neighbour_index``
    (neuron, neighbour).
    """
    import torch

    stage = model.network_.interaction
    if stage is None or not hasattr(stage, "attention"):
        raise ValueError(f"model {model!r} has no attention stage (fit it with interaction='attention')")
    drive, emb = _stage_drives(model, ds, tier, max_images)
    with torch.no_grad():
        w = stage.attention(drive, emb)
        eff = stage.effective_weights(drive, emb).mean(0)
    return xr.Dataset({"weights": (("image", "head", "neuron", "neighbour"), w.numpy()),
                       "mean_weights": (("head", "neuron", "neighbour"), w.mean(0).numpy()),
                       "effective": (("neuron", "neighbour"), eff.numpy()),
                       "neighbour_index": (("neuron", "neighbour"), stage.neighbours.numpy())})


def attention_pairs(model: Any, ds: xr.Dataset, truth: Mapping[str, Any] | None = None,
                    max_images: int = 200) -> pd.DataFrame:
    """One row per (neuron, neighbour) pair of the attention stage.

    Columns: ``i``, ``j``, ``attention`` (mean softmax weight over heads and test stimuli),
    ``effective`` (signed weight, see :func:`attention_maps`), ``cortical_um``, ``rf_px`` (distance
    of the true RF centres), ``coupling`` (true ``C_ij``), ``pool`` (true ``P_ij``), and
    ``within_radius`` (cortical distance ≤ 2.5 × the coupling radius: the coupling's support).
    """
    truth = truth or ground_truth(ds)
    maps = attention_maps(model, ds, max_images=max_images)
    nbr = maps["neighbour_index"].values
    n, k = nbr.shape
    i = np.repeat(np.arange(n), k)
    j = nbr.ravel()
    pos, rf = truth["positions"], truth["rf"]
    cort = np.linalg.norm(pos[i] - pos[j], axis=1)
    frame = pd.DataFrame({
        "i": i, "j": j, "attention": maps["mean_weights"].values.mean(0).ravel(),
        "effective": maps["effective"].values.ravel(), "cortical_um": cort,
        "rf_px": np.linalg.norm(rf[i] - rf[j], axis=1),
        "coupling": np.asarray(truth["coupling"][i, j]).ravel(), "pool": np.asarray(truth["pool"][i, j]).ravel(),
    })
    frame["within_radius"] = frame["cortical_um"] <= 2.5 * truth["coupling_radius_um"]
    return frame


def coupling_size(model: Any, ds: xr.Dataset, truth: Mapping[str, Any] | None = None,
                  tier: str = "test", max_images: int = 200) -> dict[str, float]:
    """How large the lateral interaction is, in the twin and in a fitted attention stage.

    Twin: per neuron, ``sd_b(β Σ_m C_nm r_bm) / sd_b(r_bn)`` over the tier's images, with ``r`` the
    noise-free rates averaged over each image's presentations and β the coupling strength: the
    size of the coupling term relative to the response. Model: ``sd_b(α_n Σ_m w_bnm d_bm) /
    sd_b(d_bn)``, the attention update relative to the drive it is added to. Both are medians over
    neurons. A model update much smaller than the twin's term means the plain model had already
    absorbed the coupling (an image-level interaction is itself a function of the image), so the
    stage's weights are not pinned to it.

    Returns
    -------
    dict: ``twin`` and ``model`` (medians), ``strength`` (β).
    """
    import torch

    from v1nb.models.context import Context

    truth = truth or ground_truth(ds)
    cfg = truth["config"]
    beta = float(cfg.get("coupling", 0.0)) if bool(cfg.get("interactions", True)) else 0.0
    # the images _stage_drives shows the model, each image's rates averaged over its presentations
    in_tier = ds["tier"].values.astype(str) == tier
    frame = pd.DataFrame(ds["rates"].transpose("trial", "neuron").values[in_tier].astype(float))
    frame["image"] = ds["image_id"].values[in_tier]
    rates = frame.groupby("image").mean().loc[_tier_images(ds, tier, max_images)].to_numpy()  # (image, neuron)
    term = beta * (truth["coupling"] @ rates.T).T
    twin = np.median(term.std(0) / np.maximum(rates.std(0), 1e-12))
    stage = model.network_.interaction
    if stage is None or not hasattr(stage, "effective_weights"):
        raise ValueError(f"model {model!r} has no attention stage (fit it with interaction='attention')")
    drive, emb = _stage_drives(model, ds, tier, max_images)
    with torch.no_grad():
        # the stage's output is drive + α_n Σ_m w_bnm d_bm: its own forward gives the update
        update = stage(drive, Context(embedding=emb)) - drive  # (B, N)
    ratio = update.std(0) / drive.std(0).clamp_min(1e-12)
    return {"twin": float(twin), "model": float(ratio.median()), "strength": beta}


#: headroom below which an interaction leaves a stage almost nothing to fit (share of the response variance)
SMALL_HEADROOM = 0.01


def coupling_size_verdict(twin: float, update: float, update_control: float,
                          headroom: float | None = None) -> str:
    """What the sizes of :func:`coupling_size` say, by a stated rule.

    Rule: a coupling headroom (:meth:`TwinRoom.headroom`, median over neurons) below
    :data:`SMALL_HEADROOM` is said first: the coupling then changes the responses beyond a per-neuron
    rescaling too little for any weights to be fitted to it. Then: an update at least half as large on
    the control twin (no coupling) as on the interacting twin is mostly *not* the coupling; otherwise
    an update under a quarter of the twin's coupling term means the plain model had absorbed the
    coupling; otherwise the update is specific to the interacting twin and of the coupling's size.
    """
    lead = ""
    if headroom is not None and np.isfinite(headroom) and headroom < SMALL_HEADROOM:
        lead = (f"lateral coupling changes the twin's noise-free responses by only {100 * headroom:.2f} % of their "
                f"variance beyond what a per-neuron gain and offset reproduce — its term is {twin:.3f} of the "
                "response's spread, but like-tuned neighbours respond alike, so it mostly rescales each neuron's own "
                "response — which leaves attention weights almost nothing to be fitted to; and ")
    if np.isfinite(update_control) and update_control >= 0.5 * update:
        return lead + (f"the update is about as large on the control twin ({update_control:.3f} against {update:.3f}), "
                       "where there is no coupling: it is mostly not the coupling but the neighbours' drives used as "
                       "extra features of the image")
    if update < 0.25 * twin:
        return lead + (f"the update ({update:.3f}) is far smaller than the twin's coupling term ({twin:.3f}): the "
                       "plain model had already absorbed the coupling, so nothing pins the weights to it")
    return lead + (f"the update ({update:.3f}) is specific to the interacting twin and of the size of its coupling "
                   f"term ({twin:.3f})")


#: the twin's image-level responses with each interaction left out (normalisation acts first, then coupling,
#: as in :class:`v1nb.data.digital_twin.simulate.TwinPopulation`)
IMAGE_LEVEL_VARIANTS = ("full", "no_normalisation", "no_coupling", "independent")


def _columnwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` (NaN for a constant column).

    Not :func:`v1nb.metrics.correlation`: its Sensorium form adds ε = 1e-8 to each s.d., which makes a
    correlation depend on the columns' scale (corr(x, x) = 1 − 2·10⁻⁷ for the twin's small drives), so a
    switched-off interaction would show a headroom above 0 and the oracle would "gain" from a rescaling.
    """
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(0) / np.where(denom > 0, denom, 1.0), np.nan)


class TwinRoom:
    """How much room a twin's image-level interactions leave a stage: its noise-free responses on a tier's
    images with and without each interaction, computed once from the twin's ground truth.

    Parameters
    ----------
    ds : xarray.Dataset
        A digital-twin dataset (its population is rebuilt from the provenance).
    tier : str
    max_images : int
        The tier's first ``max_images`` distinct images (those the other Part V analyses show a model).

    Attributes
    ----------
    population : TwinPopulation
    image_ids : array (image,)
    images : array (image, y, x)
        Pass these to ``model.predict_images`` for :meth:`tracking` and :meth:`oracle_normalisation`.
    drives : dict variant → array (image, neuron)
        Keys :data:`IMAGE_LEVEL_VARIANTS`: ``"full"`` (divisive normalisation, then lateral coupling: the
        responses the twin draws its trials from, up to each neuron's gain and baseline),
        ``"no_normalisation"``, ``"no_coupling"`` and ``"independent"`` (neither). An interaction the twin
        has switched off leaves its variant equal to ``"full"``.
    """

    def __init__(self, ds: xr.Dataset, tier: str = "test", max_images: int = 200):
        from v1nb.data.digital_twin import interactions as twin_int
        from v1nb.data.digital_twin import population_of

        pop = self.population = population_of(ds)
        self.image_ids = _tier_images(ds, tier, max_images)
        self.images = ds["images"].values[self.image_ids]
        d0 = pop.drive(self.images, interactions=False)
        self._normalise = (lambda d: d) if pop.pool is None else (
            lambda d: twin_int.divisive_normalization(d, pop.pool, pop.norm_strength))
        couple = (lambda d: d) if pop.coupling is None else (
            lambda d: twin_int.lateral_coupling(d, pop.coupling, pop.config.strength("coupling")))
        self.drives = {"full": couple(self._normalise(d0)), "no_normalisation": couple(d0),
                       "no_coupling": self._normalise(d0), "independent": d0}

    def headroom(self) -> pd.DataFrame:
        """How much each interaction changes each neuron's responses beyond a rescaling.

        For interaction X: ``1 − corr²(full, without X)`` over the images, per neuron — the share of the
        variance of the twin's noise-free responses that X adds and that no per-neuron gain and offset
        applied to the responses without X could reproduce. It bounds what a stage modelling X can add to
        a model that predicts the responses without X perfectly (rates are affine in the drive, so drives
        serve).

        Returns
        -------
        DataFrame, one row per neuron: ``normalisation``, ``coupling``, ``both`` (NaN where a response
        does not vary over the images).
        """
        d = self.drives
        return pd.DataFrame({name: 1 - _columnwise_correlation(d["full"], d[variant]) ** 2
                             for name, variant in (("normalisation", "no_normalisation"), ("coupling", "no_coupling"),
                                                   ("both", "independent"))})

    def _check(self, predictions: np.ndarray) -> np.ndarray:
        predictions = np.asarray(predictions, dtype=float)
        if predictions.shape != self.drives["full"].shape:
            raise ValueError(f"predictions must have shape (image, neuron) = {self.drives['full'].shape} (responses "
                             f"to TwinRoom.images), got {predictions.shape}")
        return predictions

    def tracking(self, predictions: np.ndarray) -> pd.Series:
        """Mean over neurons of the correlation of ``predictions`` (image, neuron) — a model's responses to
        :attr:`images` — with each variant of the twin's responses.

        Returns
        -------
        Series indexed by :data:`IMAGE_LEVEL_VARIANTS`. A model that has learned an interaction correlates
        more with ``"full"`` than with the variant without it.
        """
        predictions = self._check(predictions)
        return pd.Series({v: float(np.nanmean(_columnwise_correlation(predictions, self.drives[v])))
                          for v in IMAGE_LEVEL_VARIANTS})

    def oracle_normalisation(self, predictions: np.ndarray) -> dict[str, float]:
        """What the twin's *own* divisive normalisation, put on top of a model, would give.

        The model's predicted rates (responses to :attr:`images`) are mapped to the twin's drive units with
        the twin's per-neuron gain and baseline (``d̂ = max((r̂ − baseline) / gain, 0)``, the inverse of
        ``rate = baseline + gain × drive``) and normalised by the true pool and strengths
        (:func:`v1nb.data.digital_twin.interactions.divisive_normalization`): a normalisation stage that
        had learned the twin's exact pool.

        Returns
        -------
        dict: ``model`` and ``oracle`` — mean over neurons of the correlation with the twin's noise-free
        responses (``drives["full"]``) of the predictions and of the oracle-normalised predictions;
        ``oracle_gain`` (their difference). Equal values when the twin has no normalisation.
        """
        predictions = self._check(predictions)
        pop, full = self.population, self.drives["full"]
        normalised = self._normalise(np.clip((predictions - pop.baseline) / pop.gain, 0.0, None))
        model = float(np.nanmean(_columnwise_correlation(predictions, full)))
        oracle = float(np.nanmean(_columnwise_correlation(normalised, full)))
        return {"model": model, "oracle": oracle, "oracle_gain": oracle - model}


def headroom_verdict(headroom: pd.DataFrame, baseline: pd.Series, stage: pd.Series | None = None,
                     oracle: Mapping[str, float] | None = None, follow_fraction: float = 0.5) -> dict[str, Any]:
    """Why an image-level stage gains what it gains, from the twin's ground truth, by stated rules.

    Parameters
    ----------
    headroom : DataFrame
        :meth:`TwinRoom.headroom` (per neuron).
    baseline, stage : Series
        :meth:`TwinRoom.tracking` of the baselines and of the normalisation-stage models (means over seeds).
    oracle : mapping, optional
        :meth:`TwinRoom.oracle_normalisation` of the baselines (means over seeds).
    follow_fraction : float
        Rule: a model *follows* the normalisation when its correlation with the twin's responses exceeds
        its correlation with the same responses without normalisation by at least ``follow_fraction`` of
        that gap for the twin's responses themselves (``1 − corr(full, without)``).

    Returns
    -------
    dict: ``headroom_normalisation``, ``headroom_coupling`` (medians over neurons), ``gap_perfect``,
    ``gap_baseline``, ``gap_stage``, ``baseline_error`` (``1 − corr²`` of the baseline with the twin's
    responses), ``baseline_follows``, ``stage_follows``, ``oracle_gain``, ``oracle_helps`` (the oracle
    gains at least a quarter of ``gap_perfect``), ``text``.
    """
    hn, hc = float(headroom["normalisation"].median()), float(headroom["coupling"].median())
    gap_perfect = float(1.0 - np.nanmean(np.sqrt(np.clip(1.0 - headroom["normalisation"].to_numpy(), 0.0, 1.0))))
    gap_base = float(baseline["full"] - baseline["no_normalisation"])
    error = float(1.0 - baseline["full"] ** 2)
    follows = bool(gap_perfect > 0 and gap_base >= follow_fraction * gap_perfect)
    text = (f"Divisive normalisation changes the twin's noise-free responses by {100 * hn:.1f} % of their variance "
            f"over images beyond what a per-neuron gain and offset reproduce (median over neurons), lateral coupling "
            f"by {100 * hc:.2f} %. The baselines' predictions correlate {baseline['full']:.3f} with those responses "
            f"and {baseline['no_normalisation']:.3f} with the same responses without normalisation (gap "
            f"{gap_base:+.4f}; for the twin's responses themselves {gap_perfect:.4f}): they "
            f"{'follow' if follows else 'do not follow'} the normalisation, and their own error "
            f"({100 * error:.0f} % of the variance) is {error / hn if hn > 0 else float('inf'):.0f} times what it adds.")
    out: dict[str, Any] = {"headroom_normalisation": hn, "headroom_coupling": hc, "gap_perfect": gap_perfect,
                           "gap_baseline": gap_base, "baseline_error": error, "baseline_follows": follows}
    if stage is not None:
        gap_stage = float(stage["full"] - stage["no_normalisation"])
        out.update(gap_stage=gap_stage, stage_follows=bool(gap_perfect > 0 and gap_stage >= follow_fraction * gap_perfect))
        text += (f" With the normalisation stage: {stage['full']:.3f} and {stage['no_normalisation']:.3f} (gap "
                 f"{gap_stage:+.4f}) — the stage {'moves' if gap_stage - gap_base > 0.25 * gap_perfect else 'does not move'} "
                 "the predictions towards the normalised responses.")
    if oracle is not None:
        gain = float(oracle["oracle_gain"])
        helps = bool(gap_perfect > 0 and gain >= 0.25 * gap_perfect)
        out.update(oracle_gain=gain, oracle_helps=helps)
        text += (f" The twin's own pool and strengths, put on top of the baselines' predictions, change their "
                 f"correlation with the twin's responses by {gain:+.4f} ({oracle['model']:.4f} → {oracle['oracle']:.4f}): "
                 + ("a stage that learned the twin's pool exactly would gain that much; the learned one falls short of it."
                    if helps else "on top of the baselines even an exact normalisation has nothing to add: their drive is "
                    "not the drive the twin divides, so a normalisation stage can gain only where the core learns "
                    "that drive with it (trained jointly, not fine-tuned from a baseline)."))
    out["text"] = text
    return out


def pool_amplitude(models: Sequence[Any]) -> float:
    """Mean over models and neurons of the total weight of a normalisation stage's pool, ``Σ_m W_nm``.

    With the distance pool this is the learned ``|a|`` (its rows are normalised); 0 is an empty pool,
    where the stage only applies its per-neuron exponent and gain.
    """
    import torch

    totals = []
    for m in models:
        stage = m.network_.interaction
        if not hasattr(stage, "weights") or not hasattr(stage, "log_sigma"):
            raise ValueError(f"{type(stage).__name__} is not a divisive-normalisation stage")
        with torch.no_grad():
            totals.append(float(stage.weights(None).sum(1).mean()))
    return float(np.mean(totals))


def pool_spearman(pairs: pd.DataFrame) -> float:
    """Spearman correlation of a normalisation stage's learned pool ``W`` with the twin's pool ``P``
    over the pairs within the coupling radius (``pairs``: :func:`normalisation_pairs`)."""
    inside = pairs[pairs.within_radius]
    return float(stats.spearmanr(inside["weight"], inside["pool"]).statistic)


def normalisation_pairs(model: Any, ds: xr.Dataset, truth: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per (neuron, neighbour) pair of a normalisation stage: learned ``W_ij`` against the true pool."""
    import torch

    truth = truth or ground_truth(ds)
    stage = model.network_.interaction
    if stage is None or not hasattr(stage, "weights"):
        raise ValueError(f"model {model!r} has no normalisation stage")
    with torch.no_grad():
        w = stage.weights(model.network_.embedding()).numpy()
    nbr = stage.neighbours.numpy()
    n, k = nbr.shape
    i, j = np.repeat(np.arange(n), k), nbr.ravel()
    cort = np.linalg.norm(truth["positions"][i] - truth["positions"][j], axis=1)
    return pd.DataFrame({"i": i, "j": j, "weight": w.ravel(), "cortical_um": cort,
                         "pool": np.asarray(truth["pool"][i, j]).ravel(),
                         "within_radius": cort <= 2.5 * float(truth["config"]["normalization_radius_um"])})


# ------------------------------------------------------------------------ Mantel tests
def _pair_values(matrix: np.ndarray | Any, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    if hasattr(matrix, "tocsr"):
        return np.asarray(matrix.tocsr()[i, j]).ravel().astype(float)
    return np.asarray(matrix)[i, j].astype(float)


def _residual_ranks(values: np.ndarray, control: np.ndarray | None) -> np.ndarray:
    r = stats.rankdata(values)
    r = r - r.mean()
    if control is None:
        return r
    c = control - control.mean()
    return r - c * (c @ r) / max(c @ c, 1e-300)


def mantel(x: Any, y: Any, pairs: tuple[np.ndarray, np.ndarray] | None = None, n_permutations: int = 999,
           seed: int = 0, control: Any = None) -> dict[str, float]:
    """(Partial) Mantel test of the association of two neuron × neuron matrices (Spearman).

    Parameters
    ----------
    x, y : array or sparse (N, N)
        ``y`` is the matrix whose neuron labels are permuted.
    pairs : (i, j) index arrays, optional
        The pairs compared (default: all i < j).
    n_permutations : int
    seed : int
    control : array or sparse (N, N), optional
        Partial Mantel: ``x`` and ``y`` ranks are residualised on the ranks of ``control`` first.

    Returns
    -------
    dict: ``statistic`` (Spearman or partial Spearman), ``p`` (one-sided, ≥), ``n_pairs``,
    ``n_permutations``.
    """
    n = (x.shape[0])
    if pairs is None:
        i, j = np.triu_indices(n, 1)
    else:
        i, j = (np.asarray(p, dtype=np.int64) for p in pairs)
    if len(i) < 3:
        raise ValueError(f"a Mantel test needs at least 3 pairs, got {len(i)}")
    c = None if control is None else stats.rankdata(_pair_values(control, i, j))
    rx = _residual_ranks(_pair_values(x, i, j), c)
    y_dense = y.toarray() if hasattr(y, "toarray") else np.asarray(y, dtype=float)

    def stat(perm: np.ndarray) -> float:
        ry = _residual_ranks(y_dense[perm[i], perm[j]], c)
        denom = np.sqrt((rx @ rx) * (ry @ ry))
        return float(rx @ ry / denom) if denom > 0 else 0.0

    observed = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    null = np.array([stat(rng.permutation(n)) for _ in range(int(n_permutations))])
    return {"statistic": observed, "p": float((1 + np.sum(null >= observed)) / (1 + len(null))),
            "n_pairs": int(len(i)), "n_permutations": int(n_permutations)}


def partial_mantel(x: Any, y: Any, control: Any, **kwargs: Any) -> dict[str, float]:
    """:func:`mantel` of ``x`` and ``y`` with ``control`` partialled out."""
    return mantel(x, y, control=control, **kwargs)


def pair_matrix(frame: pd.DataFrame, column: str, n: int, symmetric: bool = True) -> np.ndarray:
    """A pair table's column as a dense (N, N) matrix (0 for pairs not in the table; averaged with its transpose)."""
    m = np.zeros((n, n))
    m[frame["i"].values, frame["j"].values] = frame[column].values
    return (m + m.T) / 2 if symmetric else m


# ----------------------------------------------------------------------- temporal kernel
def exponential_kernel(tau: float, lags: int) -> np.ndarray:
    """The twin's adaptation kernel ``∝ ρ^{k−1}``, ``ρ = e^{−1/τ}``, over lags 1..L, normalised to sum 1."""
    rho = np.exp(-1.0 / tau)
    w = rho ** np.arange(lags)
    return w / w.sum()


def kernel_time_constant(kernel: np.ndarray) -> dict[str, float]:
    """τ of the normalised exponential that best fits a temporal kernel (least squares).

    Parameters
    ----------
    kernel : (L,) non-negative weights of lags 1..L

    Returns
    -------
    dict: ``tau`` (trials), ``rmse`` of the fit, ``r2`` (of the kernel's variance explained).
    """
    w = np.asarray(kernel, dtype=float)
    if w.ndim != 1 or len(w) < 2 or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"kernel must be a 1-D non-negative array of ≥ 2 lags with a positive sum, got {w!r}")
    w = w / w.sum()
    lags = len(w)

    def loss(log_tau: float) -> float:
        return float(np.sum((exponential_kernel(np.exp(log_tau), lags) - w) ** 2))

    res = optimize.minimize_scalar(loss, bounds=(np.log(0.05), np.log(1e3)), method="bounded")
    tau = float(np.exp(res.x))
    resid = exponential_kernel(tau, lags) - w
    total = np.sum((w - w.mean()) ** 2)
    return {"tau": tau, "rmse": float(np.sqrt(np.mean(resid ** 2))),
            "r2": float(1 - np.sum(resid ** 2) / total) if total > 0 else float("nan")}


def temporal_summary(models: Sequence[Any], reference_rate: float | np.ndarray | None = None) -> dict[str, Any]:
    """Kernels, τ and strengths of fitted ``interaction="temporal"`` models (one per seed).

    Returns
    -------
    dict: ``kernels`` (seed, lag), ``tau`` per seed, ``tau_mean_kernel`` (τ fitted to the mean
    kernel), ``strength`` (median over neurons of γ_n per seed).
    """
    kernels, taus, strengths = [], [], []
    for m in models:
        stage = m.network_.interaction
        if stage is None or not hasattr(stage, "kernel"):
            raise ValueError(f"model {m!r} has no temporal stage")
        k = stage.kernel().detach().numpy().astype(float)
        kernels.append(k)
        taus.append(kernel_time_constant(k)["tau"])
        strengths.append(float(np.median(stage.strength().detach().numpy())))
    kernels = np.array(kernels)
    return {"kernels": kernels, "tau": np.array(taus), "tau_mean_kernel": kernel_time_constant(kernels.mean(0))["tau"],
            "strength": np.array(strengths)}


def temporal_verdict(tau_true: float, tau_recovered: float, gain: float, spread: float,
                     tolerance: float = 0.3) -> dict[str, Any]:
    """Answer of the temporal chapter. Rule: recovered when ``|τ̂ − τ| ≤ tolerance · τ``; helps when gain > spread."""
    rel = abs(tau_recovered - tau_true) / tau_true
    recovered, helps = bool(rel <= tolerance), bool(gain > spread)
    text = (f"The learned kernel's time constant is {tau_recovered:.2f} trials against the twin's {tau_true:.2f} "
            f"({100 * rel:.0f} % off: {'within' if recovered else 'outside'} ±{100 * tolerance:.0f} %), and the "
            f"stage {'improves' if helps else 'does not improve'} the test correlation by more than the seed spread "
            f"(gain {gain:+.4f}, spread {spread:.4f}).")
    return {"recovered": recovered, "helps": helps, "relative_error": rel, "text": text}


def maps_verdict(coupling_spearman: float, p_distance: float, p_coupling_partial: float,
                 threshold: float = 0.5, alpha: float = 0.05, pool_spearman: float | None = None,
                 why: str | None = None, attention_pool_spearman: float | None = None) -> dict[str, Any]:
    """Answer of the attention-maps chapter.

    Rule: the maps *relate to cortical position* when the Mantel test against cortical distance has
    p < ``alpha``; they *recover the coupling* when the Spearman correlation with the true coupling
    over pairs within the coupling radius is ≥ ``threshold`` and the partial Mantel test (distance
    partialled out) has p < ``alpha``. A missed coupling is followed by ``why`` (the measured reason,
    e.g. :func:`coupling_size_verdict`). With ``pool_spearman`` (the normalisation stage's learned pool
    against the true pool, pairs within the pool's radius) the pool is *recovered* when it is ≥ ``threshold``;
    with ``attention_pool_spearman`` (the attention weights against the true pool) the attention maps
    *follow the pool* when it is ≥ ``threshold``.
    """
    position = bool(p_distance < alpha)
    coupling = bool(coupling_spearman >= threshold and p_coupling_partial < alpha)
    text = (f"Attention {'depends' if position else 'does not depend detectably'} on cortical distance "
            f"(Mantel p = {p_distance:.3g}); its weights {'recover' if coupling else 'do not recover'} the "
            f"twin's lateral coupling (Spearman {coupling_spearman:.2f} over pairs within the coupling radius, "
            f"target ≥ {threshold}; partial Mantel given distance p = {p_coupling_partial:.3g}).")
    if why and not coupling:
        text += f" Why: {why}."
    out: dict[str, Any] = {"position": position, "coupling": coupling}
    if pool_spearman is not None and np.isfinite(pool_spearman):
        out["pool"] = pool = bool(pool_spearman >= threshold)
        text += (f" The normalisation stage's learned pool {'recovers' if pool else 'does not recover'} the twin's "
                 f"normalisation pool (Spearman {pool_spearman:.3f}, target ≥ {threshold}).")
    if attention_pool_spearman is not None and np.isfinite(attention_pool_spearman):
        out["attention_pool"] = follows = bool(attention_pool_spearman >= threshold)
        text += (f" The attention weights {'follow' if follows else 'do not follow'} the twin's normalisation pool "
                 f"(Spearman {attention_pool_spearman:.2f}, target ≥ {threshold}).")
    out["text"] = text
    return out


# ----------------------------------------------------------------------- who gains
def per_neuron_gain(ds: xr.Dataset, baselines: Sequence[Any], stages: Sequence[Any], tier: str = "test") -> xr.DataArray:
    """Per-neuron gain in test single-trial correlation (stage − baseline), averaged over seeds, (neuron,)."""
    if len(baselines) != len(stages):
        raise ValueError(f"{len(stages)} stage models for {len(baselines)} baselines")
    diffs = [(s.evaluate(ds, tier)["single_trial_correlation"] - b.evaluate(ds, tier)["single_trial_correlation"])
             for b, s in zip(baselines, stages)]
    out = sum(diffs[1:], diffs[0]) / len(diffs)
    return out.rename("gain")


def gain_vs_snr(gain: np.ndarray, snr: np.ndarray) -> dict[str, float]:
    """Spearman correlation of per-neuron gain with SNR, with its two-sided p-value (NaNs dropped)."""
    g, s = np.asarray(gain, float), np.asarray(snr, float)
    keep = np.isfinite(g) & np.isfinite(s)
    if keep.sum() < 3:
        raise ValueError("gain_vs_snr needs at least 3 neurons with finite gain and SNR")
    res = stats.spearmanr(g[keep], s[keep])
    return {"spearman": float(res.statistic), "p": float(res.pvalue), "n": int(keep.sum())}


def gain_by_type(gain: np.ndarray, types: np.ndarray) -> dict[str, Any]:
    """Kruskal–Wallis test of per-neuron gain across true types, with the median gain per type."""
    g, t = np.asarray(gain, float), np.asarray(types).astype(str)
    keep = np.isfinite(g)
    groups = {name: g[keep & (t == name)] for name in np.unique(t[keep])}
    groups = {k: v for k, v in groups.items() if len(v) > 0}
    if len(groups) < 2:
        return {"H": float("nan"), "p": float("nan"), "median": {k: float(np.median(v)) for k, v in groups.items()}}
    res = stats.kruskal(*groups.values())
    return {"H": float(res.statistic), "p": float(res.pvalue), "median": {k: float(np.median(v)) for k, v in groups.items()}}


def who_gains_verdict(snr_test: Mapping[str, float], type_test: Mapping[str, Any], alpha: float = 0.05) -> dict[str, Any]:
    """Answer of the who-gains chapter. Rule: gain depends on SNR (type) when the test has p < ``alpha``."""
    by_snr = bool(snr_test["p"] < alpha)
    by_type = bool(np.isfinite(type_test["p"]) and type_test["p"] < alpha)
    direction = "grows" if snr_test["spearman"] > 0 else "shrinks"
    text = (f"The per-neuron gain {direction + ' with' if by_snr else 'does not depend detectably on'} the neuron's "
            f"SNR (Spearman {snr_test['spearman']:.2f}, p = {snr_test['p']:.3g}, {snr_test['n']} neurons) and "
            f"{'differs' if by_type else 'does not differ detectably'} between true types "
            f"(Kruskal–Wallis p = {type_test['p']:.3g}).")
    return {"by_snr": by_snr, "by_type": by_type, "text": text}


# --------------------------------------------------------------------------- fitting
#: How every Part V chapter fine-tunes a stage from the cached baseline (one cache entry per
#: stage, seed and twin, shared by the four chapters): learning rate and a fixed epoch cap, with
#: early stopping on the validation correlation (the parent's own weights, epoch 0, are a
#: candidate, so a stage that does not help on validation gives back the baseline), and which
#: parameters train (:data:`v1nb.models.config.TRAINABLE`).
FINETUNE: dict[str, Any] = {"lr": 0.005, "max_epochs": 10, "trainable": "no_core"}

#: Stages trained **jointly** with core and readout from the start (the baseline's own schedule and
#: seed, no parent) instead of fine-tuned from the baseline. Divisive normalisation needs it: fine-tuned
#: from a baseline whose readout already fits the responses, its pool stays almost empty (amplitude
#: 0.01 against the twin's 0.5, also with the core training: ``bench/normalisation_training.py``);
#: trained jointly the core learns a drive to be normalised and the pool fills (total weight 0.65 on
#: the default twin). Its gain there is not specific to normalisation, though: it gains as much on the
#: control twin, with a smaller pool (0.25) — :func:`attention_verdict` says so in the chapter.
JOINT: tuple[str, ...] = ("normalisation",)

#: Settings of the jointly trained stages: the normalisation pool over the stage's default 96 cortical
#: neighbours, stated here so that the choice is visible and a chapter can override it. With up to
#: :data:`~v1nb.models.interactions.normalisation.DENSE_MAX_NEURONS` neurons the stage scatters its pool into a dense ``N × N`` matrix and
#: multiplies, so 96 neighbours cost about as little as 32 (9.5 against 8.8 ms a step; gathering
#: ``B × N × K`` neighbour activities took 111 ms with 96). Measured on the default twin, 3 seeds
#: (``bench/normalisation_training.py``): a joint fit takes 1.26× a baseline's CPU time with 96 (1.22×
#: with 32), gains +0.0037 (+0.0040 with 32), and its pool follows the twin's (Spearman 0.55 against
#: 0.28 with 32: within only 32 close neighbours the pool ranks them by embedding dissimilarity).
JOINT_SETTINGS: dict[str, Any] = {"norm_neighbours": 96}


def joint_stages(text: str) -> tuple[str, ...]:
    """The chapters' ``joint_stages`` parameter (comma-separated stage names; ``""``: none) as a tuple.

    Raises
    ------
    ValueError
        Naming the parameter and the valid stages, for a name that is not one of :data:`STAGES`.
    """
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"joint_stages={text!r}: {unknown} not a stage; expected a comma-separated subset of "
                         f"{list(STAGES)} or \"\" (every stage fine-tuned)")
    return names


def open_twins(data: str, seed: int) -> tuple[xr.Dataset, xr.Dataset | None]:
    """The interacting dataset and its control twin (``interactions=False``; None for recorded data)."""
    from v1nb.data import open_dataset

    if str(data).startswith("twin"):
        return open_dataset(data, seed=seed), open_dataset(data, seed=seed, interactions=False)
    return open_dataset(data), None


def fit_interaction_models(ds: xr.Dataset, seeds: Sequence[int], training: Mapping[str, Any],
                           stages: Sequence[str] = STAGES, lr: float = FINETUNE["lr"],
                           max_epochs: int = FINETUNE["max_epochs"], n_jobs: int | None = None,
                           trainable: str = FINETUNE["trainable"], joint: Sequence[str] = (),
                           **stage_settings: Any) -> tuple[list[Any], dict[str, list[Any]]]:
    """Baselines (shared with the other chapters) and each stage fine-tuned from them (or trained jointly), on one twin.

    Parameters
    ----------
    ds : xarray.Dataset
    seeds : list of int
    training : dict
        The budget's settings (:func:`v1nb.models.budgets.budget_settings`), for baselines and
        fine-tunes alike.
    stages : names of interaction stages (``"none"``: the fine-tune without a stage, a reference)
    lr, max_epochs : float, int
        The fine-tune's schedule (:data:`FINETUNE`).
    trainable : str
        The parameters a fine-tune trains: ``"all"``, or ``"no_core"`` (the baseline's core frozen:
        no backward pass through it, so each epoch costs less; the stage cannot lean on the core).
    joint : list of str
        Stages trained jointly with a fresh core and readout from the start, with the baseline's
        ``training`` settings and seed (no parent; ``lr``, ``max_epochs`` and ``trainable`` do not
        apply to them), instead of fine-tuned (:data:`JOINT` is the book's choice). Their gain over
        the baseline is then that of the same network with and without the stage.
        :data:`JOINT_SETTINGS` apply to them unless ``stage_settings`` say otherwise.
    n_jobs : int, optional
        Worker processes (default: one per CPU core).
    **stage_settings
        Extra settings of the stages (e.g. ``attention_neighbours``), passed to the stages that declare them.

    Returns
    -------
    baselines : list of ResponseModel (one per seed)
    stage_models : dict stage → list of ResponseModel (same seeds)
    """
    return fit_interaction_models_on({"twin": (ds, stages)}, seeds, training, lr=lr, max_epochs=max_epochs,
                                     n_jobs=n_jobs, trainable=trainable, joint=joint, **stage_settings)["twin"]


def fit_interaction_models_on(twins: Mapping[str, tuple[xr.Dataset, Sequence[str]]], seeds: Sequence[int],
                              training: Mapping[str, Any], lr: float = FINETUNE["lr"],
                              max_epochs: int = FINETUNE["max_epochs"], n_jobs: int | None = None,
                              trainable: str = FINETUNE["trainable"], joint: Sequence[str] = (),
                              **stage_settings: Any) -> dict[str, tuple[list[Any], dict[str, list[Any]]]]:
    """:func:`fit_interaction_models` on several datasets at once (e.g. the interacting and the control twin).

    All baselines and jointly trained stages are fitted in one :func:`v1nb.models.fit_many` call
    (the joint fits first: they are the longest) and all fine-tunes in a second one (the fine-tunes'
    parents must be in the cache first): two starts of the worker pool instead of two per dataset,
    and the workers stay busy across datasets.

    Parameters
    ----------
    twins : dict name → (dataset, stages)
    seeds, training, lr, max_epochs, n_jobs, trainable, joint, **stage_settings
        As :func:`fit_interaction_models`.

    Returns
    -------
    dict name → (baselines, stage_models), as :func:`fit_interaction_models` returns for each.
    """
    from v1nb.models import fit_many
    from v1nb.models.registry import INTERACTIONS, load_components

    load_components()
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} must be distinct and not empty")
    joint = tuple(joint)
    stage_names = sorted(n for n in INTERACTIONS.names() if n != "none")
    unknown = [s for s in joint if s not in stage_names]
    if unknown:
        raise ValueError(f"joint={list(joint)}: {unknown} not an interaction stage; expected some of "
                         f"{stage_names} (\"none\" has nothing to train jointly)")
    names = list(twins)
    first = twins[names[0]][0]
    # fit_many sends `first` to every worker once; only the other datasets travel with their jobs
    own = {name: {} if name == names[0] else {"dataset": twins[name][0]} for name in names}

    def extra_of(stage: str, jointly: bool = False) -> dict[str, Any]:
        declared = INTERACTIONS[stage].extra_settings if stage != "none" else {}
        given = {**JOINT_SETTINGS, **stage_settings} if jointly else stage_settings
        return {k: v for k, v in given.items() if k in declared}

    together = [(name, stage) for name in names for stage in twins[name][1] if stage in joint]
    joint_jobs = [{"core": "cnn", "readout": "gaussian", "seed": s, "interaction": stage, **own[name], **training,
                   **extra_of(stage, jointly=True)} for name, stage in together for s in seeds]
    base_jobs = [{"core": "cnn", "readout": "gaussian", "seed": s, **own[name], **training}
                 for name in names for s in seeds]
    fitted = iter(fit_many(first, joint_jobs + base_jobs, n_jobs=n_jobs))
    jointly = {key: [next(fitted) for _ in seeds] for key in together}
    baselines = {name: [next(fitted) for _ in seeds] for name in names}
    jobs, where = [], []
    for name in names:
        stages = [s for s in twins[name][1] if s not in joint]
        for stage in stages:  # "none": the same fine-tune without a stage (what extra training alone gives)
            extra = extra_of(stage)
            for base in baselines[name]:
                jobs.append({"core": "cnn", "readout": "gaussian", "seed": base.random_state, "interaction": stage,
                             "parent": base, **own[name], **training, "lr": lr, "max_epochs": max_epochs,
                             "trainable": trainable, **extra})  # "all" is the default: not in the cache key
                where.append((name, stage))
    models = fit_many(first, jobs, n_jobs=n_jobs) if jobs else []
    out: dict[str, tuple[list[Any], dict[str, list[Any]]]] = {
        name: (baselines[name], {stage: [] for stage in twins[name][1]}) for name in names}
    for (name, stage), model in zip(where, models):
        out[name][1][stage].append(model)
    for (name, stage), fits in jointly.items():
        out[name][1][stage] = fits
    return out


def training_costs(baselines: Sequence[Any], stages: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Process CPU seconds of each fit (from its training history) and each fine-tune's ratio to its baseline."""
    rows = []
    for stage, models in {"baseline": baselines, **stages}.items():
        for base, m in zip(baselines, models):
            cpu = float(m.history_.get("cpu_seconds", np.nan))
            rows.append({"stage": stage, "seed": int(m.random_state), "cpu_seconds": cpu,
                         "epochs": len(m.history_["epochs"]) - 1,
                         "ratio": cpu / float(base.history_.get("cpu_seconds", np.nan))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ adaptation strength
def twin_adaptation_division(ds: xr.Dataset) -> np.ndarray:
    """Per neuron, the twin's mean adaptation term ``γ · mean_t(a_t) / r̄_n`` over the sequence, ``(N,)``.

    ``a_t = (1 − ρ) Σ_k ρ^{k−1} r_{t−k}`` is computed from the dataset's noise-free ``rates`` in
    presentation order, ``r̄_n`` is the twin's reference rate (rebuilt from the provenance with
    :func:`v1nb.data.digital_twin.population_of`). Zeros when adaptation is off.
    """
    from v1nb.data.digital_twin import population_of

    truth = ground_truth(ds)
    if truth["adaptation"] == 0 or "rates" not in ds:
        return np.zeros(ds.sizes["neuron"])
    order = np.argsort(ds["order"].values) if "order" in ds.coords or "order" in ds else np.arange(ds.sizes["trial"])
    rates = ds["rates"].transpose("trial", "neuron").values[order].astype(float)
    rho = np.exp(-1.0 / truth["tau"])
    a = np.zeros(rates.shape[1])
    total = np.zeros(rates.shape[1])
    for t in range(len(rates)):
        total += a
        a = rho * a + (1 - rho) * rates[t]
    reference = population_of(ds).reference_rate
    return truth["adaptation"] * (total / len(rates)) / reference


def model_adaptation_division(model: Any, ds: xr.Dataset) -> np.ndarray:
    """Per neuron, a temporal stage's mean division term ``γ_n Σ_k v_k · mean(h_n)``, ``(N,)``.

    ``mean(h_n)`` is the model's mean feed-forward prediction (scaled units) over the training
    images: the stage's counterpart of :func:`twin_adaptation_division`.
    """
    stage = model.network_.interaction
    if stage is None or not hasattr(stage, "kernel"):
        raise ValueError(f"model {model!r} has no temporal stage")
    ids = np.unique(ds["image_id"].values[ds["tier"].values.astype(str) == "train"])
    ids = ids[ids >= 0]
    h = model.predict_images(ds["images"].values[ids]) / model.response_scale_.numpy()[None]
    return stage.strength().detach().numpy() * h.mean(0)

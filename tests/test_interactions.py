"""Interaction stages (v1nb.models.interactions) and the Part V analyses (v1nb.analysis.interactions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from v1nb.data.digital_twin import interactions as twin_int
from v1nb.models.context import Context
from v1nb.models.interactions import DivisiveNormalisation, NeighbourAttention, TemporalNormalisation
from v1nb.models.interactions.neighbours import neighbour_index
from v1nb.models.registry import INTERACTIONS


def _positions(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g)


def test_stages_are_registered_with_their_settings():
    for name in ("attention", "normalisation", "temporal"):
        assert name in INTERACTIONS
    assert INTERACTIONS["temporal"].extra_settings["temporal_lags"] == 8
    assert INTERACTIONS["attention"].extra_settings["attention_neighbours"] == 48


def test_neighbours_are_the_nearest_others_on_the_surface():
    pos = _positions(50)
    idx = neighbour_index(pos, 50, 5)
    assert idx.shape == (50, 5)
    assert not (idx == torch.arange(50)[:, None]).any()
    d = torch.cdist(pos[:, :2], pos[:, :2])
    d.fill_diagonal_(float("inf"))
    np.testing.assert_array_equal(np.sort(idx.numpy(), 1), np.sort(d.topk(5, largest=False).indices.numpy(), 1))
    assert neighbour_index(pos, 50, 500).shape == (50, 49)  # clipped to N - 1
    with pytest.raises(ValueError, match="neighbours=0"):
        neighbour_index(pos, 50, 0)


@pytest.mark.parametrize("stage", [
    lambda n, pos: DivisiveNormalisation(n, pos, pool="distance", neighbours=10),
    lambda n, pos: DivisiveNormalisation(n, pos, pool="free", neighbours=10),
    lambda n, pos: TemporalNormalisation(n, lags=4),
    lambda n, pos: NeighbourAttention(n, 6, pos, neighbours=10),
])
def test_each_stage_starts_close_to_the_plain_model(stage):
    n = 40
    module = stage(n, _positions(n))
    drive = torch.randn(7, n)
    ctx = Context(history=torch.rand(7, getattr(module, "history_lags", 0) or 1, n),
                  embedding=torch.randn(n, 6), positions=_positions(n))
    out = module(drive, ctx)
    plain = F.elu(drive) + 1 if getattr(module, "outputs_rates", False) else drive
    # exactly the plain model for attention (α = 0), within 1 % for the near-empty pools
    np.testing.assert_allclose(out.detach().numpy(), plain.numpy(), rtol=0.01, atol=1e-6)


def test_normalisation_rejects_an_unknown_pool():
    with pytest.raises(ValueError, match="norm_pool='dense'"):
        DivisiveNormalisation(10, _positions(10), pool="dense")


@pytest.mark.parametrize("pool", ["distance", "free"])
def test_dense_and_gathered_normalisation_pools_agree_with_the_same_gradients(pool, monkeypatch):
    from v1nb.models.interactions import normalisation as norm_module

    n = 30
    pos = _positions(n)
    torch.manual_seed(0)
    dense = DivisiveNormalisation(n, pos, pool=pool, neighbours=8)
    monkeypatch.setattr(norm_module, "DENSE_MAX_NEURONS", n - 1)  # too many neurons: gathers
    gathered = DivisiveNormalisation(n, pos, pool=pool, neighbours=8)
    assert dense.dense and not gathered.dense
    with torch.no_grad():  # a full pool, not the near-empty start, so that the pool matters
        for p in dense.parameters():
            p.add_(0.5 * torch.randn_like(p)).abs_() if p.ndim == 2 else p.add_(0.3 * torch.randn_like(p))
    gathered.load_state_dict(dense.state_dict())
    drive, emb = torch.randn(5, n), torch.randn(n, 6)
    outs = []
    for stage in (dense, gathered):
        out = stage(drive, Context(embedding=emb, positions=pos))
        out.square().sum().backward()
        outs.append((out.detach(), [p.grad.clone() for p in stage.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    for g_dense, g_gathered in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(g_dense, g_gathered, rtol=1e-4, atol=1e-6)
    # a pool that matters: the output differs from the stage's own numerator
    assert (outs[0][0] - (F.elu(drive) + 1) ** dense.log_exponent.exp()).abs().max() > 1e-2


def test_a_dense_pool_loaded_into_a_stage_built_elsewhere_uses_the_saved_neighbours():
    # a model from the cache is rebuilt, then its state loaded: the pool must follow the saved
    # neighbour index, not the one the rebuilt stage started with (here: other positions)
    n = 30
    trained = DivisiveNormalisation(n, _positions(n, seed=0), neighbours=8)
    with torch.no_grad():
        trained.amplitude.fill_(0.8)
    rebuilt = DivisiveNormalisation(n, _positions(n, seed=1), neighbours=8)
    assert trained.dense and not torch.equal(rebuilt.neighbours, trained.neighbours)
    rebuilt.load_state_dict(trained.state_dict())
    drive, ctx = torch.randn(4, n), Context(embedding=torch.randn(n, 5))
    torch.testing.assert_close(rebuilt(drive, ctx), trained(drive, ctx), rtol=0, atol=0)


def test_chunked_attention_equals_unchunked_with_the_same_gradients():
    n = 30
    pos = _positions(n)
    torch.manual_seed(0)
    a = NeighbourAttention(n, 4, pos, neighbours=8)
    with torch.no_grad():
        a.alpha.normal_()
    b = NeighbourAttention(n, 4, pos, neighbours=8, chunk=7)
    b.load_state_dict(a.state_dict())
    drive = torch.randn(5, n)
    emb = torch.randn(n, 4)
    outs = []
    for m in (a, b):
        out = m(drive, Context(embedding=emb))
        out.pow(2).sum().backward()
        outs.append((out.detach(), m.query.weight.grad.clone(), m.alpha.grad.clone()))
    for x, y in zip(outs[0], outs[1]):
        torch.testing.assert_close(x, y)
    w = a.attention(drive, emb)
    assert w.shape == (5, 1, n, 8)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 1, n))


@pytest.mark.parametrize("heads", [1, 2])
def test_effective_weights_are_the_weights_of_the_neighbours_drives_in_the_output(heads):
    """What attention_maps and coupling_size read: output − drive = Σ_m effective_nm · d_m, per stimulus."""
    n = 25
    torch.manual_seed(1)
    stage = NeighbourAttention(n, 4, _positions(n), neighbours=6, heads=heads)
    with torch.no_grad():
        stage.alpha.normal_()
        stage.mix.normal_()
    drive, emb = torch.randn(3, n), torch.randn(n, 4)
    with torch.no_grad():
        update = stage(drive, Context(embedding=emb)) - drive
        effective = stage.effective_weights(drive, emb)  # (B, N, K)
    torch.testing.assert_close(update, (effective * drive[:, stage.neighbours]).sum(-1))
    assert update.abs().max() > 0.01  # a non-trivial update: the identity is not 0 = 0


def test_attention_memory_is_linear_in_neurons():
    """The logits are B × H × N × K: doubling N doubles the largest tensor, never N²."""
    for n in (200, 400):
        m = NeighbourAttention(n, 4, _positions(n), neighbours=16)
        assert m._logits(torch.randn(3, n), *m._static(torch.randn(n, 4)), slice(None)).shape == (3, 1, n, 16)


def test_normalisation_recovers_a_twin_pool():
    """Fit the stage alone to the twin's normalisation of random drives: learned W ~ true pool."""
    rng = np.random.default_rng(0)
    n = 80
    pos_um = np.column_stack([rng.uniform(0, 400, n), rng.uniform(0, 400, n), rng.choice([0.0, 50.0], n)])
    pool = twin_int.normalization_pool(pos_um, 60.0)
    d = rng.gamma(2.0, 0.5, size=(256, n)) + 0.05
    # the twin's d (1 + α) / (1 + α P d) without its constant gain 1 + α (a readout scale absorbs it)
    target = twin_int.divisive_normalization(d, pool, np.full(n, 1.0)) / 2.0
    pos = torch.from_numpy(pos_um).float()
    pos = (pos - pos.mean(0)) / pos.std(0)
    stage = DivisiveNormalisation(n, pos, pool="distance", neighbours=30)
    dt = torch.from_numpy(d).float()
    drive = torch.where(dt > 1, dt - 1, torch.log(dt))  # so that ELU(drive) + 1 = d
    y = torch.from_numpy(target).float()
    opt = torch.optim.Adam(stage.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = ((stage(drive, Context()) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.01 * float(y.var())
    w = stage.weights().detach().numpy()
    true = pool.toarray()[np.arange(n)[:, None], stage.neighbours.numpy()]
    from scipy.stats import spearmanr

    keep = true > 0
    assert spearmanr(w[keep], true[keep])[0] > 0.5


def test_temporal_stage_recovers_the_twin_adaptation_time_constant():
    from v1nb.analysis.interactions import kernel_time_constant
    from v1nb.models.context import History

    rng = np.random.default_rng(1)
    t, n, tau = 3000, 20, 2.0
    u = rng.gamma(2.0, 0.5, size=(t, n)) + 0.2
    r = twin_int.adapt(u, 0.5, tau, u.mean(0))
    stage = TemporalNormalisation(n, lags=8)
    drive = torch.from_numpy(u).float() - 1  # d = ELU(drive) + 1 = u where u > 1
    drive = torch.where(drive > 0, drive, torch.log(torch.from_numpy(u).float()))
    # the model's "own predictions": here the unadapted rates (what a feed-forward model predicts)
    hist = History(torch.from_numpy(u).float()).lagged(torch.arange(t), 8)
    y = torch.from_numpy(r).float()
    opt = torch.optim.Adam(stage.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = ((stage(drive, Context(history=hist)) - y) ** 2).mean()
        loss.backward()
        opt.step()
    fit = kernel_time_constant(stage.kernel().detach().numpy())
    assert abs(fit["tau"] - tau) / tau < 0.3


def test_temporal_stage_reads_only_the_past():
    from v1nb.models.context import History

    preds = torch.rand(10, 3)
    stage = TemporalNormalisation(3, lags=2)
    with torch.no_grad():
        stage.raw_strength.fill_(1.0)
    drive = torch.zeros(1, 3)
    before = stage(drive, Context(history=History(preds).lagged(torch.tensor([5]), 2)))
    preds[5:] = 100.0  # the current and later trials change: trial 5 must not see it
    after = stage(drive, Context(history=History(preds).lagged(torch.tensor([5]), 2)))
    torch.testing.assert_close(before, after)
    preds[4] = 100.0
    assert not torch.allclose(before, stage(drive, Context(history=History(preds).lagged(torch.tensor([5]), 2))))


# ------------------------------------------------------------------------- analyses
def test_mantel_detects_association_and_not_its_absence():
    from v1nb.analysis.interactions import mantel, partial_mantel

    rng = np.random.default_rng(0)
    n = 40
    pts = rng.uniform(size=(n, 2))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    related = dist + 0.05 * rng.standard_normal((n, n))
    unrelated = rng.uniform(size=(n, n))
    assert mantel(related, dist, n_permutations=199)["p"] <= 0.01
    assert mantel(unrelated, dist, n_permutations=199)["p"] > 0.01
    # related only through the control: the partial test finds nothing beyond it
    other = dist + 0.05 * rng.standard_normal((n, n))
    assert partial_mantel(related, other, dist, n_permutations=199)["statistic"] < \
        mantel(related, other, n_permutations=19)["statistic"]
    with pytest.raises(ValueError, match="at least 3 pairs"):
        mantel(dist, dist, pairs=(np.array([0]), np.array([1])))


def test_kernel_time_constant_of_an_exact_exponential():
    from v1nb.analysis.interactions import exponential_kernel, kernel_time_constant

    for tau in (0.7, 2.0, 5.0):
        assert kernel_time_constant(exponential_kernel(tau, 8))["tau"] == pytest.approx(tau, rel=1e-3)
    with pytest.raises(ValueError, match="non-negative"):
        kernel_time_constant(np.array([1.0, -0.5]))


def test_gain_tests_and_verdicts():
    from v1nb.analysis.interactions import gain_by_type, gain_vs_snr, who_gains_verdict

    rng = np.random.default_rng(0)
    snr = rng.uniform(0.1, 2, 200)
    gain = 0.01 * snr + 0.002 * rng.standard_normal(200)
    res = gain_vs_snr(gain, snr)
    assert res["spearman"] > 0.8 and res["p"] < 1e-6
    types = np.array(["a", "b"] * 100)
    by_type = gain_by_type(gain, types)
    assert by_type["p"] > 0.01 and set(by_type["median"]) == {"a", "b"}
    verdict = who_gains_verdict(res, by_type)
    assert verdict["by_snr"] and not verdict["by_type"] and "grows with" in verdict["text"]


def test_maps_verdict_rules():
    from v1nb.analysis.interactions import maps_verdict

    missed = maps_verdict(0.07, 0.001, 0.03, why="a reason", pool_spearman=0.58)
    assert missed["position"] and not missed["coupling"] and missed["pool"] and "do not recover" in missed["text"]
    assert missed["text"].index("Why: a reason.") < missed["text"].index("learned pool recovers")
    assert "pool" not in maps_verdict(0.07, 0.001, 0.03) and "Why" not in maps_verdict(0.6, 0.001, 0.001, why="x")["text"]
    both = maps_verdict(0.6, 0.001, 0.001, pool_spearman=0.58)
    assert both["coupling"] and both["pool"] and "learned pool recovers" in both["text"]
    assert not maps_verdict(0.6, 0.2, 0.2, pool_spearman=0.3)["pool"]  # a partial Mantel p ≥ α fails coupling too
    assert not maps_verdict(0.6, 0.2, 0.2)["coupling"]


@pytest.fixture(scope="module")
def quick_fits(tmp_path_factory):
    from v1nb.analysis.interactions import fit_interaction_models
    from v1nb.data import twin

    ds = twin("quick", seed=0)
    cache = tmp_path_factory.mktemp("cache")
    import os

    old = os.environ.get("V1NB_CACHE")
    os.environ["V1NB_CACHE"] = str(cache)
    try:
        base, stages = fit_interaction_models(ds, [0], {"batch_size": 16, "max_epochs": 3}, max_epochs=2, n_jobs=1)
    finally:
        if old is None:
            os.environ.pop("V1NB_CACHE")
        else:
            os.environ["V1NB_CACHE"] = old
    return ds, base, stages


def test_stages_fine_tune_from_the_baseline_and_are_analysed(quick_fits):
    from v1nb.analysis import interactions as inter

    ds, base, stages = quick_fits
    assert set(stages) == set(inter.STAGES)
    table = inter.compare_stages(ds, base, stages)
    assert len(table) == 4 and table["correlation"].notna().all()
    gains = inter.stage_gains(table)
    assert gains.loc[("interacting", "baseline"), "gain"] == 0
    pairs = inter.attention_pairs(stages["attention"][0], ds)
    n = ds.sizes["neuron"]
    assert len(pairs) == n * min(48, n - 1)
    assert np.isfinite(pairs[["attention", "effective", "cortical_um", "coupling", "pool"]].values).all()
    # rows of the mean maps sum to 1 over neighbours
    np.testing.assert_allclose(pairs.groupby("i")["attention"].sum().values, 1.0, rtol=1e-4)
    summary = inter.temporal_summary(stages["temporal"])
    assert summary["kernels"].shape == (1, 8) and np.isfinite(summary["tau"]).all()
    norm = inter.normalisation_pairs(stages["normalisation"][0], ds)
    assert (norm["weight"] >= 0).all()
    assert -1 <= inter.pool_spearman(norm) <= 1
    costs = inter.training_costs(base, stages)
    assert (costs["cpu_seconds"] > 0).all()


def test_ground_truth_matches_the_twin_population():
    from v1nb.analysis.interactions import ground_truth
    from v1nb.data import twin
    from v1nb.data.digital_twin import population_of

    ds = twin("quick", seed=1)
    truth, pop = ground_truth(ds), population_of(ds)
    np.testing.assert_allclose(truth["pool"].toarray(), pop.pool.toarray(), atol=1e-12)
    np.testing.assert_allclose(truth["coupling"].toarray(), pop.coupling.toarray(), atol=1e-12)


def test_several_datasets_fit_together_as_each_would_alone(tmp_path, monkeypatch):
    """fit_interaction_models_on: one pool for all baselines, one for all fine-tunes, same cache entries."""
    from test_models import FAST, toy_dataset

    from v1nb.analysis.interactions import fit_interaction_models, fit_interaction_models_on

    monkeypatch.setenv("V1NB_CACHE", str(tmp_path))
    a, b = toy_dataset(seed=0), toy_dataset(seed=1)
    both = fit_interaction_models_on({"a": (a, ("temporal", "none")), "b": (b, ("temporal",))}, [0, 1], FAST,
                                     max_epochs=1, n_jobs=1)
    assert set(both) == {"a", "b"} and set(both["a"][1]) == {"temporal", "none"} and set(both["b"][1]) == {"temporal"}
    assert [m.random_state for m in both["b"][1]["temporal"]] == [0, 1]
    assert both["a"][1]["temporal"][0].cache_key_ != both["b"][1]["temporal"][0].cache_key_  # each on its own data
    base, stages = fit_interaction_models(b, [0, 1], FAST, stages=("temporal",), max_epochs=1, n_jobs=1)
    for alone, together in zip([*base, *stages["temporal"]], [*both["b"][0], *both["b"][1]["temporal"]]):
        assert alone.history_["cached"] and alone.cache_key_ == together.cache_key_
    with pytest.raises(ValueError, match="seeds"):
        fit_interaction_models_on({"a": (a, ("temporal",))}, [0, 0], FAST)


def test_frozen_core_fine_tune_keeps_the_core_and_trains_the_stage(tmp_path, monkeypatch):
    """trainable="no_core" (the Part V default): the core's weights are the parent's, bit for bit;
    the stage trains; "all" is a different cache entry that moves the core too."""
    import torch
    from test_models import FAST, toy_dataset

    from v1nb.analysis.interactions import FINETUNE, fit_interaction_models

    assert FINETUNE["trainable"] == "no_core"
    monkeypatch.setenv("V1NB_CACHE", str(tmp_path))
    ds = toy_dataset(seed=2)
    settings = {**FAST, "early_stopping": False}  # the last epoch is kept: the parent's state cannot win
    (base,), frozen = fit_interaction_models(ds, [0], settings, stages=("temporal",), max_epochs=2, n_jobs=1)
    _, full = fit_interaction_models(ds, [0], settings, stages=("temporal",), max_epochs=2, n_jobs=1,
                                     trainable="all")
    frozen, full = frozen["temporal"][0], full["temporal"][0]
    assert frozen.settings["trainable"] == "no_core" and full.settings.get("trainable", "all") == "all"
    assert frozen.cache_key_ != full.cache_key_
    core = lambda m: torch.cat([p.detach().flatten() for p in m.network_.core.parameters()])  # noqa: E731
    assert torch.equal(core(frozen), core(base))
    assert not torch.equal(core(full), core(base))
    readout = lambda m: torch.cat([p.detach().flatten() for p in m.network_.readout.parameters()])  # noqa: E731
    assert not torch.equal(readout(frozen), readout(base))  # what is not frozen did train


def test_coupling_size_measures_the_twin_term_and_the_update(quick_fits):
    """The twin's coupling term is β·C r: positive with coupling on; the update is the stage's α-weighted sum,
    so a stage whose α is zeroed adds nothing."""
    import copy

    import torch

    from v1nb.analysis import interactions as inter

    ds, _, stages = quick_fits
    model = stages["attention"][0]
    size = inter.coupling_size(model, ds)
    assert size["strength"] > 0 and size["twin"] > 0 and np.isfinite(size["model"])
    silent = copy.deepcopy(model)
    with torch.no_grad():
        silent.network_.interaction.alpha.zero_()
    assert inter.coupling_size(silent, ds)["model"] == 0.0
    with pytest.raises(ValueError, match="no attention stage"):
        inter.coupling_size(stages["temporal"][0], ds)


def test_coupling_size_verdict_rules():
    from v1nb.analysis.interactions import coupling_size_verdict

    assert "not the coupling" in coupling_size_verdict(0.1, 0.04, 0.03)  # as large without any coupling
    assert "absorbed" in coupling_size_verdict(0.1, 0.02, 0.001)
    assert "specific to the interacting twin" in coupling_size_verdict(0.1, 0.08, 0.01)
    assert "absorbed" in coupling_size_verdict(0.1, 0.02, float("nan"))  # recorded data: no control twin
    small = coupling_size_verdict(0.1, 0.04, 0.03, headroom=0.0006)  # the headroom is said first, then the sizes
    assert small.startswith("lateral coupling changes") and "0.06 %" in small and "not the coupling" in small
    assert not coupling_size_verdict(0.1, 0.04, 0.03, headroom=0.05).startswith("lateral coupling")


def test_twin_room_headroom_is_zero_without_interactions_and_measures_each_one():
    """Known answers: the "full" variant is the twin's own image-level drive; a switched-off twin has no
    headroom; each interaction's headroom is 1 − corr²(full, without it), and tracking the full drive
    itself gives correlation 1 with it."""
    from v1nb.analysis import interactions as inter
    from v1nb.data import twin
    from v1nb.data.digital_twin import population_of

    ds = twin("quick", seed=0)
    room = inter.TwinRoom(ds)
    drives = room.drives
    assert set(drives) == set(inter.IMAGE_LEVEL_VARIANTS) and len(room.images) == len(room.image_ids)
    np.testing.assert_allclose(drives["full"], population_of(ds).drive(room.images), rtol=1e-12)
    head = room.headroom()
    assert list(head.columns) == ["normalisation", "coupling", "both"] and len(head) == ds.sizes["neuron"]
    assert (head.fillna(0).values >= -1e-12).all() and head["normalisation"].median() > 1e-3
    full, without = drives["full"][:, 0], drives["no_normalisation"][:, 0]
    assert head["normalisation"].iloc[0] == pytest.approx(1 - np.corrcoef(full, without)[0, 1] ** 2)
    track = room.tracking(drives["full"])
    assert track["full"] == pytest.approx(1.0) and track["no_normalisation"] < 1.0
    with pytest.raises(ValueError, match=r"predictions must have shape \(image, neuron\)"):
        room.tracking(drives["full"][:, :3])

    off = twin("quick", seed=0, interactions=False)
    assert np.nanmax(inter.TwinRoom(off).headroom().values) == pytest.approx(0.0, abs=1e-12)


def test_oracle_normalisation_restores_exactly_what_a_model_lacks():
    """A 'model' that predicts the twin's responses without its normalisation gains from the twin's own
    normalisation put on top (up to the coupling applied after it); one that already has it does not; a
    twin without normalisation leaves the predictions as they are."""
    from v1nb.analysis import interactions as inter
    from v1nb.data import twin

    room = inter.TwinRoom(twin("quick", seed=0))
    pop, drives = room.population, room.drives
    lacking = room.oracle_normalisation(pop.baseline + pop.gain * drives["independent"])
    assert lacking["oracle"] == pytest.approx(room.tracking(drives["no_coupling"])["full"], abs=1e-9)
    assert lacking["oracle_gain"] > 0.01
    complete = room.oracle_normalisation(pop.baseline + pop.gain * drives["full"])
    assert complete["model"] == pytest.approx(1.0) and complete["oracle_gain"] < 0
    off = inter.TwinRoom(twin("quick", seed=0, interactions=False))
    same = off.oracle_normalisation(off.population.baseline + off.population.gain * off.drives["full"])
    assert same["oracle_gain"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="predictions must have shape"):
        room.oracle_normalisation(np.zeros((2, 2)))


def test_headroom_verdict_rules():
    import pandas as pd

    from v1nb.analysis.interactions import headroom_verdict

    head = pd.DataFrame({"normalisation": [0.19, 0.19], "coupling": [0.001, 0.001], "both": [0.2, 0.2]})
    # corr(full, without) = 0.9 for both neurons, so a perfect model's gap is 0.1
    follows = headroom_verdict(head, pd.Series({"full": 0.8, "no_normalisation": 0.74}))
    assert follows["gap_perfect"] == pytest.approx(0.1) and follows["baseline_follows"]
    lost = headroom_verdict(head, pd.Series({"full": 0.8, "no_normalisation": 0.79}),
                            stage=pd.Series({"full": 0.81, "no_normalisation": 0.8}),
                            oracle={"model": 0.8, "oracle": 0.79, "oracle_gain": -0.01})
    assert not lost["baseline_follows"] and not lost["stage_follows"] and not lost["oracle_helps"]
    assert "do not follow" in lost["text"] and "does not move" in lost["text"] and "nothing to add" in lost["text"]
    assert headroom_verdict(head, pd.Series({"full": 0.8, "no_normalisation": 0.79}),
                            oracle={"model": 0.8, "oracle": 0.83, "oracle_gain": 0.03})["oracle_helps"]


def test_joint_stages_train_from_scratch_beside_the_baselines(tmp_path, monkeypatch):
    """joint=: such a stage is a fresh network with the baseline's schedule and seed (no parent,
    JOINT_SETTINGS applied); the other stages stay fine-tunes of the baseline."""
    from test_models import FAST, toy_dataset

    from v1nb.analysis.interactions import JOINT_SETTINGS, fit_interaction_models

    monkeypatch.setenv("V1NB_CACHE", str(tmp_path))
    ds = toy_dataset(seed=3)
    base, stages = fit_interaction_models(ds, [0, 1], FAST, stages=("normalisation", "temporal"),
                                          joint=("normalisation",), max_epochs=1, n_jobs=1)
    for b, joint, tuned in zip(base, stages["normalisation"], stages["temporal"]):
        assert joint.random_state == b.random_state
        assert not joint.history_.get("parent") and tuned.history_["parent"] == b.cache_key_
        assert joint.settings["norm_neighbours"] == JOINT_SETTINGS["norm_neighbours"]
        assert joint.settings["max_epochs"] == FAST["max_epochs"] and tuned.settings["max_epochs"] == 1
    # a caller's own stage setting wins over JOINT_SETTINGS
    _, own = fit_interaction_models(ds, [0], FAST, stages=("normalisation",), joint=("normalisation",),
                                    n_jobs=1, norm_neighbours=4)
    assert own["normalisation"][0].settings["norm_neighbours"] == 4
    assert own["normalisation"][0].network_.interaction.neighbours.shape == (ds.sizes["neuron"], 4)
    with pytest.raises(ValueError, match="joint=.*none"):
        fit_interaction_models(ds, [0], FAST, joint=("none",))


def test_joint_stages_parameter_is_checked():
    from v1nb.analysis.interactions import joint_stages

    assert joint_stages("normalisation") == ("normalisation",)
    assert joint_stages(" attention , normalisation") == ("attention", "normalisation")
    assert joint_stages("") == ()
    with pytest.raises(ValueError, match="joint_stages='attention,bogus'.*bogus"):
        joint_stages("attention,bogus")


def test_attention_verdict_rules():
    """helps: gain > spread and control ≥ −tolerance; specific: gain − control gain > spread too."""
    import pandas as pd

    from v1nb.analysis.interactions import attention_verdict

    rows = {("interacting", "baseline"): (0.002, 0.0), ("interacting", "attention"): (0.0, 0.005),
            ("interacting", "normalisation"): (0.0, 0.0045), ("interacting", "temporal"): (0.0, 0.001),
            ("control", "attention"): (0.0, 0.001), ("control", "normalisation"): (0.0, 0.0044),
            ("control", "temporal"): (0.0, -0.006)}
    gains = pd.DataFrame([{"twin": t, "stage": s, "sd": sd, "gain": g} for (t, s), (sd, g) in rows.items()])
    v = attention_verdict(gains.set_index(["twin", "stage"]))
    assert v["spread"] == 0.002
    assert v["helps"] == {"attention": True, "normalisation": True, "temporal": False}
    assert v["specific"] == {"attention": True, "normalisation": False, "temporal": True}
    assert v["beyond_control"] == pytest.approx({"attention": 0.004, "normalisation": 0.0001, "temporal": 0.007})
    assert v["text"].startswith("2 of 3") and "normalisation is made on the control twin too" in v["text"]
    # without a control twin nothing can be called specific, and the text says nothing about it
    alone = attention_verdict(gains[gains.twin == "interacting"].set_index(["twin", "stage"]))
    assert not any(alone["specific"].values()) and "control gain" not in alone["text"]


@pytest.mark.parametrize("chapter", ["attention", "attention_maps", "who_gains"])
def test_chapters_train_the_package_joint_stages_by_default(chapter):
    """The chapters' joint_stages default is the package's JOINT (they share cache entries)."""
    from pathlib import Path

    import nbformat

    from v1nb.analysis.interactions import JOINT, joint_stages
    from v1nb.book.chapters import read_parameters

    path = Path(__file__).parents[1] / "book" / "interactions" / f"{chapter}.ipynb"
    default = read_parameters(nbformat.read(path, as_version=4), path)["joint_stages"].default
    assert joint_stages(default) == JOINT


def test_maps_verdict_judges_attention_against_the_pool():
    from v1nb.analysis.interactions import maps_verdict

    v = maps_verdict(0.02, 0.001, 0.001, pool_spearman=0.29, attention_pool_spearman=0.58)
    assert not v["pool"] and v["attention_pool"] and "attention weights follow" in v["text"]
    assert not maps_verdict(0.02, 0.001, 0.001, attention_pool_spearman=0.4)["attention_pool"]
    assert "attention_pool" not in maps_verdict(0.02, 0.001, 0.001, attention_pool_spearman=float("nan"))

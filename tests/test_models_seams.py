"""The seams of v1nb.models that fine-tuning and interaction stages build on (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from v1nb.models import (CORES, INTERACTIONS, READOUTS, CacheWarning, ResponseModel, Term, apply_split,
                         cross_seed_ari, fit, fit_many, fit_seeds, make_config, stack_embeddings)
from v1nb.models import cache as model_cache
from v1nb.models.context import Context, History
from v1nb.models.registry import Registry

from test_models import FAST, toy_dataset


@pytest.fixture(scope="module")
def ds():
    return toy_dataset()


# ------------------------------------------------------------------------------ registry
def test_registry_lists_components_and_rejects_unknown():
    assert {"cnn", "rotation", "ln"} <= set(CORES) and {"gaussian", "factorized"} <= set(READOUTS)
    assert "none" in INTERACTIONS
    with pytest.raises(ValueError, match="core='resnet' is not one of"):
        CORES.check("resnet")
    reg = Registry("thing")
    reg.register("a")(lambda config: None)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(lambda config: None)


def test_a_new_core_needs_one_registration_only(ds, tmp_path):
    """A core registered in a test file is usable by name, with its own extra setting."""
    from v1nb.models.cores import Stacked2dCore

    name = "tiny_test_core"
    if name not in CORES:
        @CORES.register(name, extra_settings={"tiny_channels": 4})
        def _build(config):
            return Stacked2dCore(1, config.get("tiny_channels"), 5, 3, padding=True)
    model = fit(ds, name, "gaussian", seed=0, use_cache=False, tiny_channels=3, **FAST)
    assert model.embeddings().sizes["feature"] == 3
    with pytest.raises(TypeError, match="tiny_channels"):
        fit(ds, "cnn", "gaussian", tiny_channels=3, use_cache=False)  # not a setting of the cnn core


# ---------------------------------------------------------------------- sklearn contract
def test_response_model_follows_the_sklearn_contract(ds):
    from sklearn.base import clone

    model = ResponseModel("cnn", "gaussian", random_state=3, lr=0.01, batch_size=32)
    params = model.get_params()
    assert params["random_state"] == 3 and params["lr"] == 0.01 and params["batch_size"] == 32
    twin = clone(model)
    assert twin.get_params() == params and twin is not model
    model.set_params(random_state=4, lr=0.02)
    assert model.random_state == 4 and model.settings["lr"] == 0.02
    bad = ResponseModel("cnn", "gaussian", 0, lr="fast")  # stored as given ...
    with pytest.raises(TypeError, match="lr='fast' must be float"):
        bad.fit(ds)  # ... and checked in fit


def test_save_and_load_on_the_model(ds, tmp_path):
    model = ResponseModel("rotation", "gaussian", 0, **FAST).fit(ds)
    path = model.save(tmp_path / "m.pt")
    again = ResponseModel.load(path, ds)
    np.testing.assert_array_equal(again.predict(ds).values, model.predict(ds).values)
    assert again.embeddings().dims == ("neuron", "rotation", "feature")  # the rotation core's layout


# ---------------------------------------------------------------------- objective terms
class EmbeddingNorm(Term):
    """A toy extra term: pulls the embeddings towards unit norm (enough to change the fit)."""

    name = "norm"

    def __init__(self, weight: float = 1.0):
        self.weight = weight
        self.calls = {"fit": 0, "epoch": 0, "step": 0}

    def loss(self, batch, trainer):
        return self.weight * (trainer.embeddings().norm(dim=1) - 1).pow(2).sum()

    def on_fit_start(self, trainer):
        self.calls["fit"] += 1

    def on_epoch_start(self, trainer):
        self.calls["epoch"] += 1

    def on_step_end(self, trainer):
        self.calls["step"] += 1


def test_terms_are_summed_logged_and_hooked(ds):
    term = EmbeddingNorm(10.0)
    model = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds, terms=None)
    from v1nb.models.objectives import PredictionLoss, Regularisation

    tuned = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds, terms=[PredictionLoss(), Regularisation(), term])
    epoch = tuned.history_["epochs"][1]
    assert {"loss_prediction", "loss_regularisation", "loss_norm"} <= set(epoch)
    assert epoch["loss"] == pytest.approx(epoch["loss_prediction"] + epoch["loss_regularisation"] + epoch["loss_norm"],
                                          rel=1e-5)
    n_epochs = len(tuned.history_["epochs"]) - 1
    assert term.calls["fit"] == 1 and term.calls["epoch"] == n_epochs and term.calls["step"] > n_epochs
    norms = tuned.embeddings().values
    assert abs(np.linalg.norm(norms, axis=1).mean() - 1) < abs(np.linalg.norm(model.embeddings().values, axis=1).mean() - 1)
    with pytest.raises(ValueError, match="share the name"):
        ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds, terms=[PredictionLoss(), PredictionLoss()])


def test_default_terms_reproduce_the_plain_objective(ds):
    from v1nb.models.objectives import default_terms

    plain = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds)
    explicit = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds, terms=default_terms("poisson"))
    np.testing.assert_array_equal(plain.predict(ds).values, explicit.predict(ds).values)


@pytest.mark.parametrize("trainable, changed, fixed", [
    ("readout", ("readout",), ("core",)),
    ("no_core", ("readout",), ("core",)),
    ("all", ("readout", "core"), ()),
])
def test_trainable_chooses_the_parameters_that_train(ds, trainable, changed, fixed):
    parent = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds)
    child = ResponseModel("cnn", "gaussian", 1, trainable=trainable, **FAST).fit(ds, parent=parent)
    for part in changed:
        a = dict(getattr(parent.network_, part).state_dict())
        b = dict(getattr(child.network_, part).state_dict())
        assert any(not torch.equal(a[k], b[k]) for k in a), part
    for part in fixed:  # a frozen core keeps its weights *and* its batch-norm statistics
        a = getattr(parent.network_, part).state_dict()
        b = getattr(child.network_, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    assert child.n_parameters() == parent.n_parameters()  # requires_grad restored after training
    assert child.history_["parent"]


def test_finetune_with_a_head_is_served_from_the_cache(ds, tmp_path):
    """The clustering head is part of the state: saved, restored, reloaded (target shape included)."""

    class Target(Term):
        name = "target"

        def loss(self, batch, trainer):
            return 0.0 * trainer.network.head.centres.sum()

        def on_fit_start(self, trainer):
            head = trainer.network.head
            head.init_centres(trainer.embeddings().detach(), n_init=2, random_state=0)
            head.update_target(trainer.embeddings().detach())

    from v1nb.models.objectives import default_terms

    parent = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    terms = default_terms("poisson") + [Target()]
    child = fit(ds, "cnn", "gaussian", seed=0, head="dec", n_clusters=2, parent=parent, terms=terms,
                trainable="readout+head", cache_dir=tmp_path, **FAST)
    assert child.history_["cached"] is False and child.network_.head.target.shape == (ds.sizes["neuron"], 2)
    again = fit(ds, "cnn", "gaussian", seed=0, head="dec", n_clusters=2, parent=parent, terms=terms,
                trainable="readout+head", cache_dir=tmp_path, **FAST)
    assert again.history_["cached"] is True
    torch.testing.assert_close(again.network_.head.target, child.network_.head.target)
    np.testing.assert_array_equal(again.predict(ds).values, child.predict(ds).values)
    # another parent, another key
    other_parent = fit(ds, "cnn", "gaussian", seed=1, cache_dir=tmp_path, **FAST)
    other = fit(ds, "cnn", "gaussian", seed=0, head="dec", n_clusters=2, parent=other_parent, terms=terms,
                trainable="readout+head", cache_dir=tmp_path, **FAST)
    assert other.history_["cached"] is False


# ---------------------------------------------------------------------- context and order
class LastTrial(nn.Module):
    """A toy temporal stage: drive minus w · (prediction of the previous trial)."""

    history_lags = 1

    def __init__(self, n_neurons):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_neurons))
        self.seen: list[Context] = []

    def forward(self, drive, context):
        self.seen.append(context)
        if context.history is None:
            return drive
        return drive - self.w * context.history[:, 0]

    def regularizer(self):
        return self.w.sum() * 0


if "last_trial_test" not in INTERACTIONS:
    INTERACTIONS.register("last_trial_test")(lambda config, n, dim, positions: LastTrial(n))


def test_history_holds_own_earlier_predictions_only():
    preds = torch.arange(12.0).reshape(4, 3)  # trial t predicts t*3 + neuron
    lagged = History(preds).lagged(torch.tensor([0, 2, 3]), 2)
    assert lagged.shape == (3, 2, 3)
    np.testing.assert_array_equal(lagged[0].numpy(), 0)  # nothing before the first trial
    np.testing.assert_array_equal(lagged[1, 0].numpy(), preds[1].numpy())
    np.testing.assert_array_equal(lagged[2, 1].numpy(), preds[1].numpy())


def test_a_temporal_stage_sees_trial_positions_history_and_positions(ds):
    model = ResponseModel("cnn", "gaussian", 0, interaction="last_trial_test", **FAST).fit(ds)
    stage = model.network_.interaction
    seen = [c for c in stage.seen if c.trial is not None]
    assert seen and all(c.history is not None and c.history.shape[1] == 1 for c in seen)
    assert all(c.positions is not None and c.positions.shape == (ds.sizes["neuron"], 3) for c in seen)
    assert all(c.embedding is not None for c in seen)
    stage.seen.clear()
    pred = model.predict(ds, "test")
    assert pred.sizes["trial"] == int((ds["tier"] == "test").sum())
    trials = torch.cat([c.trial for c in stage.seen if c.trial is not None])
    assert sorted(trials.tolist()) == sorted(np.flatnonzero(ds["tier"].values == "test").tolist())


# ----------------------------------------------------------------------------- split
def test_split_by_images_keeps_images_whole(ds):
    all_test = ds.assign_coords(tier=("trial", np.array(["test"] * ds.sizes["trial"], dtype=object)))
    with pytest.raises(ValueError, match="no 'train' trials"):
        ResponseModel("cnn", "gaussian", 0, **FAST).fit(all_test)
    split = apply_split(all_test, "images:0.8,0.1,0.1", seed=0)
    tiers = split["tier"].values
    for image in np.unique(split["image_id"].values):
        assert len(set(tiers[split["image_id"].values == image])) == 1  # never both sides
    assert {"train", "validation", "test"} == set(tiers) and split.attrs["split"] == "images:0.8,0.1,0.1"
    model = ResponseModel("cnn", "gaussian", 0, split="images:0.8,0.1,0.1", **FAST).fit(all_test)
    assert model.predict(split, "test").sizes["trial"] == int((tiers == "test").sum())
    for bad in ("images:0.8,0.3", "images:a,b,c", "random", "images:0.9,0.1,0"):
        with pytest.raises(ValueError, match="split must be"):
            make_config(split=bad)


# ------------------------------------------------------------------------------- cache
def test_cache_key_ignores_defaults_and_ground_truth_coordinates(ds, tmp_path):
    components = {"core": "cnn", "readout": "gaussian"}
    base = model_cache.cache_key(ds, components, 0, make_config().non_default(), "cpu")
    assert make_config(lr=0.015).non_default() == {}  # a default given explicitly is no difference
    assert model_cache.cache_key(ds, components, 0, make_config(lr=0.015).non_default(), "cpu") == base
    assert model_cache.cache_key(ds, components, 0, make_config(lr=0.01).non_default(), "cpu") != base
    wobbly = ds.assign_coords(true_rf_x=ds["true_rf_x"] + 1e-12)  # last bits of a ground-truth coordinate
    assert model_cache.cache_key(wobbly, components, 0, {}, "cpu") == base
    moved = ds.copy(deep=True)
    moved["responses"].values[0, 0] += 1
    assert model_cache.cache_key(moved, components, 0, {}, "cpu") != base
    assert model_cache.cache_key(ds, components, 0, {}, "cpu", parent="abc") != base


def test_a_fit_under_one_thread_is_found_under_two(tmp_path):
    """Subprocesses with OMP_NUM_THREADS=1 and 2 share one cache entry of the same twin fit."""
    script = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from v1nb.data import twin
        from v1nb.models import fit
        m = fit(twin("quick", seed=0), "cnn", "gaussian", seed=0, cache_dir={str(tmp_path)!r}, max_epochs=1,
                layers=1, hidden_channels=4, num_threads=0)
        print("CACHED", m.history_["cached"])
    """)
    out = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        out.append(run.stdout.strip().splitlines()[-1])
    assert out == ["CACHED False", "CACHED True"]


def test_unusable_cache_folder_is_reported_before_fitting(ds, tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    monkeypatch.setenv("V1NB_CACHE", str(a_file))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="V1NB_CACHE .* is a file, not a folder"):
        fit(ds, "cnn", "gaussian", **FAST)
    assert time.perf_counter() - start < 5  # before any training
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    if os.access(read_only, os.W_OK):  # root ignores permissions: make the write itself fail instead
        read_only.chmod(0o700)
        monkeypatch.setattr(model_cache.tempfile, "NamedTemporaryFile",
                            lambda **kw: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    monkeypatch.setenv("V1NB_CACHE", str(read_only))
    with pytest.raises(PermissionError, match="not writable"):
        fit(ds, "cnn", "gaussian", **FAST)


def test_a_failed_cache_write_does_not_lose_the_fit(ds, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_cache, "save", broken_save)
    with pytest.warns(CacheWarning, match="could not write"):
        model = fit(ds, "cnn", "gaussian", cache_dir=tmp_path, **FAST)
    assert model.predict(ds).sizes["neuron"] == ds.sizes["neuron"]


def test_a_killed_fit_leaves_no_entry_and_the_next_call_retrains(tmp_path):
    script = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from v1nb.data import twin
        from v1nb.models import fit
        print("START", flush=True)
        fit(twin("quick", seed=0), "cnn", "gaussian", seed=0, cache_dir={str(tmp_path)!r}, max_epochs=50,
            patience=50, batch_size=8)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "START"
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not list(tmp_path.glob("*.pt"))  # nothing that looks like an entry
    (tmp_path / ".cnn-gaussian-stale.pt.tmp1").write_text("half-written")
    from v1nb.data import twin

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(twin("quick", seed=0), "cnn", "gaussian", seed=0, cache_dir=tmp_path, max_epochs=1,
                    layers=1, hidden_channels=4)
    assert model.history_["cached"] is False and len(list(tmp_path.glob("*.pt"))) == 1


# ---------------------------------------------------------------------------- parallel
def test_fit_seeds_in_workers_matches_in_process_fits(ds, tmp_path):
    models = fit_seeds(ds, "cnn", "gaussian", seeds=[0, 1], n_jobs=2, cache_dir=tmp_path, **FAST)
    assert [m.random_state for m in models] == [0, 1]
    alone = fit(ds, "cnn", "gaussian", seed=1, use_cache=False, **FAST)
    np.testing.assert_array_equal(models[1].predict(ds).values, alone.predict(ds).values)  # same seed, same numbers
    stacked = stack_embeddings(models)
    assert stacked.dims == ("seed", "neuron", "feature") and list(stacked["seed"].values) == [0, 1]
    ari = cross_seed_ari(models, n_clusters=2)
    assert ari.sizes["pair"] == 1 and -1 <= ari.attrs["mean"] <= 1
    with pytest.raises(ValueError, match="distinct"):
        fit_seeds(ds, seeds=[0, 0])


def test_fit_workers_fork_from_a_preloaded_server_that_follows_the_cache_folder(ds, tmp_path, monkeypatch):
    import multiprocessing

    from v1nb.models import parallel

    context = parallel._worker_context()
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert context.get_start_method() == "forkserver"
        assert "torch._dynamo" in parallel._PRELOAD and "v1nb.models.fit" in parallel._PRELOAD
    # the server keeps the environment it started with: a later V1NB_CACHE must still be where
    # the workers write (the parent resolves the folder and hands it to them)
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("V1NB_CACHE", str(first))
    fit_seeds(ds, "cnn", "gaussian", seeds=[0, 1], n_jobs=2, **FAST)
    monkeypatch.setenv("V1NB_CACHE", str(second))
    models = fit_seeds(ds, "cnn", "gaussian", seeds=[2, 3], n_jobs=2, **FAST)
    assert len(list(first.glob("*.pt"))) == 2 and len(list(second.glob("*.pt"))) == 2
    assert all(m.history_["cached"] for m in models)  # trained in workers, loaded from the second folder


def test_fit_core_seeds_starts_the_long_core_first_and_returns_each_core_in_seed_order(ds, tmp_path, monkeypatch):
    from v1nb.cluster import embedding_clustering as EC
    import v1nb.models

    fitted = EC.fit_core_seeds(ds, {"cnn": [1, 0], "rotation": [0]}, n_jobs=1, cache_dir=tmp_path, **FAST)
    assert [m.random_state for m in fitted["cnn"]] == [1, 0] and fitted["rotation"][0].random_state == 0
    assert fitted["rotation"][0].core == "rotation"
    alone = fit(ds, "cnn", "gaussian", seed=1, use_cache=False, **FAST)
    np.testing.assert_array_equal(fitted["cnn"][0].predict(ds).values, alone.predict(ds).values)
    seen = []
    monkeypatch.setattr(v1nb.models, "fit_many", lambda ds, jobs, **kw: seen.extend(jobs) or list(range(len(jobs))))
    out = EC.fit_core_seeds(ds, {"cnn": [0, 1], "rotation": [2]})
    assert [(j["core"], j["seed"]) for j in seen] == [("rotation", 2), ("cnn", 0), ("cnn", 1)]
    assert out == {"cnn": [1, 2], "rotation": [0]}
    with pytest.raises(ValueError, match="rotation.*distinct"):
        EC.fit_core_seeds(ds, {"cnn": [0], "rotation": [1, 1]})


def test_fit_many_validates_every_job_first(ds, tmp_path):
    with pytest.raises(ValueError, match="core='nope'"):
        fit_many(ds, [{"core": "cnn", **FAST}, {"core": "nope"}], n_jobs=2, cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.pt"))


def test_parallel_finetunes_take_their_parent_from_the_cache(ds, tmp_path):
    from v1nb.models.objectives import default_terms

    parent = fit(ds, "cnn", "gaussian", seed=0, cache_dir=tmp_path, **FAST)
    jobs = [{"core": "cnn", "seed": s, "parent": parent, "terms": default_terms("poisson") + [EmbeddingNorm(w)],
             "trainable": "readout", **FAST} for s, w in ((0, 1.0), (0, 5.0))]
    models = fit_many(ds, jobs, n_jobs=2, cache_dir=tmp_path)
    assert all(m.history_["parent"] == parent.cache_key_ for m in models)
    alone = fit(ds, cache_dir=tmp_path, **jobs[1])
    assert alone.history_["cached"] is True  # the worker's entry, found by this process
    with pytest.raises(ValueError, match="must come from the model cache"):
        outside = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds)  # not from the cache
        fresh = [dict(job, parent=outside, terms=default_terms("poisson") + [EmbeddingNorm(w)])
                 for job, w in zip(jobs, (7.0, 9.0))]  # two fits to train: they would go to workers
        fit_many(ds, fresh, n_jobs=2, cache_dir=tmp_path)


def test_without_early_stopping_the_last_weights_are_kept(ds):
    model = ResponseModel("cnn", "gaussian", 0, early_stopping=False, **dict(FAST, max_epochs=3)).fit(ds)
    assert len(model.history_["epochs"]) == 4 and model.history_["best_epoch"] == 3


def test_fit_many_jobs_may_carry_their_own_dataset(ds, tmp_path):
    from v1nb.models import ModelWarning
    from v1nb.models.curves import subsample_train

    small = subsample_train(ds, 100, seed=0)
    # without a validation tier the worker's fit warns: the warning must reach this process, where
    # the caller's filters apply, not the worker's stderr
    small = small.assign_coords(tier=small["tier"].where(small["tier"] != "validation", "train"))
    with pytest.warns(ModelWarning, match="has no validation tier"):
        models = fit_many(ds, [{"core": "cnn", **FAST}, {"core": "cnn", "dataset": small, **FAST}], n_jobs=2,
                          cache_dir=tmp_path)
    assert models[1].history_["n_train"] < models[0].history_["n_train"]
    again = fit(small, "cnn", cache_dir=tmp_path, **FAST)
    assert again.history_["cached"] is True


@pytest.mark.slow
def test_models_chapter_runs_on_all_repeated_images_with_an_image_split(tmp_path):
    """Issue 14.5: a recording whose images are all repeated (all 'test' by the schema) fits with split=images:..."""
    import json

    from v1nb.data import to_netcdf, twin

    ds = twin("quick", seed=0)
    known = ds["image_id"].values >= 0
    tiers = np.where(known, "test", ds["tier"].values.astype(str)).astype(object)
    path = to_netcdf(ds.assign_coords(tier=("trial", tiers)), tmp_path / "all_test.nc")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "v1nb.book.cli", "run", "models", "-p", "data", str(path), "-p", "split",
           "images:0.8,0.1,0.1", "-p", "compare", "False", "-p", "budget", "quick", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=Path(__file__).parents[1])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    values = results.get("values", results)
    assert values["split"] == "images:0.8,0.1,0.1" and np.isfinite(values["corr_avg"])


def test_two_processes_asking_for_one_fit_fit_it_once(tmp_path):
    """The per-key lock: the second process waits for the first and reuses its entry (issue 15.2)."""
    script = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from v1nb.data import twin
        from v1nb.models import fit
        m = fit(twin("quick", seed=0), "cnn", "gaussian", seed=0, cache_dir={str(tmp_path)!r}, max_epochs=3,
                layers=1, hidden_channels=4)
        print("CACHED", m.history_["cached"])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert sorted(out.strip().splitlines()[-1] for out, _ in outs) == ["CACHED False", "CACHED True"]
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_fit_many_loads_cached_fits_without_starting_workers(ds, tmp_path, monkeypatch):
    from v1nb.models import parallel

    jobs = [{"core": "cnn", "seed": s, **FAST} for s in (0, 1)]
    first = fit_many(ds, jobs, n_jobs=2, cache_dir=tmp_path)

    def no_workers(*args, **kwargs):
        raise AssertionError("workers started although every fit is cached")

    monkeypatch.setattr(parallel, "_fit_in_workers", no_workers)
    again = fit_many(ds, jobs, n_jobs=2, cache_dir=tmp_path)
    assert all(m.history_["cached"] for m in again)
    np.testing.assert_array_equal(again[1].predict(ds).values, first[1].predict(ds).values)


@pytest.mark.parametrize("trainable, interaction", [("no_core", "none"), ("readout", "none"), ("no_core", "temporal")])
def test_a_frozen_core_s_stored_output_trains_as_the_core_itself(ds, monkeypatch, trainable, interaction):
    """With the core frozen its output is computed once per image (``ImageSource.freeze``); running the
    frozen core on every batch instead (no room to store it) gives the same fine-tune up to rounding."""
    from v1nb.models import training

    parent = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds)
    settings = dict(FAST, trainable=trainable, max_epochs=2, early_stopping=False)
    stored = ResponseModel("cnn", "gaussian", 1, interaction=interaction, **settings).fit(ds, parent=parent)
    monkeypatch.setattr(training, "FEATURE_CACHE_BYTES", 0)  # too little room: the core runs per batch
    per_batch = ResponseModel("cnn", "gaussian", 1, interaction=interaction, **settings).fit(ds, parent=parent)
    assert stored.history_["core_output_stored"] and not per_batch.history_["core_output_stored"]
    a, b = stored.network_.state_dict(), per_batch.network_.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-4, rtol=1e-4), key
    core = parent.network_.core.state_dict()  # the core is the parent's, bit for bit
    assert all(torch.equal(core[k], stored.network_.core.state_dict()[k]) for k in core)
    np.testing.assert_allclose([e["val_corr"] for e in stored.history_["epochs"]],
                               [e["val_corr"] for e in per_batch.history_["epochs"]], atol=1e-4)


def test_a_training_core_is_never_served_stored_output(ds):
    """trainable="all": the core trains, so its output must be recomputed every batch."""
    parent = ResponseModel("cnn", "gaussian", 0, **FAST).fit(ds)
    child = ResponseModel("cnn", "gaussian", 1, **dict(FAST, max_epochs=1)).fit(ds, parent=parent)
    assert child.history_["core_output_stored"] is False


@pytest.mark.slow
def test_the_prepared_gpu_check_runs_on_the_cpu(tmp_path):
    """bench/cuda.py is run on a lent GPU machine in one go: keep it runnable where there is none."""
    import importlib.util
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bench" / "cuda.py"
    out = tmp_path / "cuda.json"
    subprocess.run([sys.executable, str(script), "--device", "cpu", "--profiles", "quick", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    record = json.loads(out.read_text())
    failed = {name: check.get("error") for name, check in record["checks"].items() if not check["ok"]}
    assert record["all_ok"] and not failed, failed
    assert record["checks"]["frozen_core"]["same_fit"]
    assert record["checks"]["fit_seeds"]["loaded_the_same_fits"]
    assert record["checks"]["portable"]["max_prediction_difference"] < 1e-5
    spec = importlib.util.spec_from_file_location("bench_cuda", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    broken = module.run_checks({"broken": lambda: 1 / 0, "fine": lambda: {"x": 1}})
    assert not broken["broken"]["ok"] and "ZeroDivisionError" in broken["broken"]["error"] and broken["fine"]["ok"]


# ------------------------------------------------------------------ readouts on a given core
def test_readouts_on_a_given_core_keep_it_and_fit_the_other_neurons(ds, tmp_path):
    """fit(core_from=...) / fit_readouts: the source's core, bit for bit, under a new readout fitted to
    other neurons (another count, other tuning); the source is part of the cache key."""
    from v1nb.models import fit_readouts

    other = toy_dataset(n_neurons=8, seed=5)
    sources = fit_seeds(ds, "cnn", "gaussian", [0, 1], n_jobs=1, cache_dir=tmp_path, **FAST)
    readouts = fit_readouts(other, sources, n_jobs=2, cache_dir=tmp_path, **FAST)  # in worker processes
    core = lambda m: m.network_.core.state_dict()  # noqa: E731
    for source, model in zip(sources, readouts):
        assert model.random_state == source.random_state and model.settings["trainable"] == "readout"
        assert model.n_neurons_ == 8 and model.history_["core_from"] == source.cache_key_
        assert all(torch.equal(core(source)[k], core(model)[k]) for k in core(source))
        assert model.history_["core_output_stored"]  # a frozen core: its output is computed once
        assert model.history_["best_epoch"] > 0  # the readout trained (epoch 0 is the initialisation)
    alone = fit(other, "cnn", "gaussian", seed=1, core_from=sources[1], cache_dir=tmp_path,
                **{**FAST, "trainable": "readout"})
    assert alone.history_["cached"] is True  # the worker's entry, found by this process
    np.testing.assert_array_equal(alone.predict(other).values, readouts[1].predict(other).values)
    # another source core is another fit, and so is a fit of the same settings from scratch
    swapped = fit(other, "cnn", "gaussian", seed=1, core_from=sources[0], cache_dir=tmp_path,
                  **{**FAST, "trainable": "readout", "max_epochs": 1})
    scratch = fit(other, "cnn", "gaussian", seed=1, cache_dir=tmp_path, **{**FAST, "max_epochs": 1})
    assert len({swapped.cache_key_, scratch.cache_key_, alone.cache_key_}) == 3


def test_a_core_from_another_model_is_checked(ds):
    source = ResponseModel("cnn", "gaussian", 0, **{**FAST, "max_epochs": 1}).fit(ds)
    with pytest.raises(ValueError, match="core_from .* has core 'cnn'; this fit's core is 'ln'"):
        ResponseModel("ln", "gaussian", 0, **FAST).fit(ds, core_from=source)
    with pytest.raises(ValueError, match="does not match this fit's core settings"):
        ResponseModel("cnn", "gaussian", 0, **{**FAST, "hidden_channels": 4}).fit(ds, core_from=source)
    with pytest.raises(ValueError, match="parent .* or core_from .*, not both"):
        fit(ds, "cnn", "gaussian", parent=source, core_from=source, use_cache=False, **FAST)
    with pytest.raises(ValueError, match="trains the readout only: trainable='all'"):
        from v1nb.models import fit_readouts

        fit_readouts(ds, [source], trainable="all", **FAST)
    with pytest.raises(ValueError, match="at least one fitted model"):
        from v1nb.models import fit_readouts

        fit_readouts(ds, [])

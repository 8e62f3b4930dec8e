"""Side experiment: does the normalisation stage gain on a twin with stronger normalisation?

Usage: ``PYTHONPATH=. python3 bench/strong_normalisation.py STRENGTH`` (the default twin has 0.5).
Fits two baselines and their normalisation / plain fine-tunes on ``twin:default`` with
``normalization=STRENGTH`` (cache: ``$V1NB_CACHE``, default /tmp/strongcache), then the attention
chapter's room analysis (``TwinRoom``, ``headroom_verdict``). Writes
``bench/results/strong_normalisation_<STRENGTH>.json``.
"""
import os, json, time, sys
os.environ.setdefault("V1NB_CACHE", "/tmp/strongcache")
import numpy as np
from v1nb.analysis import interactions as inter
from v1nb.data import open_dataset
from v1nb.models.budgets import budget_settings

if __name__ == "__main__":
    strength = float(sys.argv[1])
    seeds = [0, 1]
    ds = open_dataset("twin:default", seed=0, normalization=strength)
    t = time.time()
    base, stages = inter.fit_interaction_models(ds, seeds, budget_settings("auto", "twin:default"),
                                                stages=("normalisation", "none"))
    table = inter.compare_stages(ds, base, stages)
    gains = inter.stage_gains(table, "correlation")
    room = inter.TwinRoom(ds)
    import pandas as pd
    tb = pd.DataFrame([room.tracking(m.predict_images(room.images)) for m in base]).mean()
    ts = pd.DataFrame([room.tracking(m.predict_images(room.images)) for m in stages["normalisation"]]).mean()
    orc = pd.DataFrame([room.oracle_normalisation(m.predict_images(room.images)) for m in base]).mean()
    v = inter.headroom_verdict(room.headroom(), tb, ts, orc)
    amp = [float(m.network_.interaction.amplitude.abs()) for m in stages["normalisation"]]
    out = {"normalization": strength, "seeds": seeds, "seconds": time.time() - t,
           "gain_normalisation": float(gains.loc[("interacting", "normalisation"), "gain"]),
           "gain_none": float(gains.loc[("interacting", "none"), "gain"]),
           "gains": gains.reset_index().to_dict("records"), "pool_amplitude": amp,
           **{k: x for k, x in v.items() if k != "text"}, "text": v["text"]}
    print(json.dumps(out, indent=1, default=float))
    from v1nb.io import write_json

    write_json(f"bench/results/strong_normalisation_{strength:g}.json", out)  # atomic

"""Replicates of a trial (`budget.replicates: R`): R seeds of one configuration, whose mean
objective is what the trial reports, so that ASHA and Optuna act on a value less noisy than one
seed's. Here: the replicates' seeds and how their eval metrics combine into one Tune result; the
trial itself trains them in lockstep (tuning/trial_run.py)."""
from __future__ import annotations

import statistics

import numpy as np

from smart.config import RunConfig

REPLICATE_DIR = "replicate-{}"  # replicate r's trainer state inside a trial checkpoint (R > 1)


def replicate_seed(seed: int, index: int) -> int:
    """Replicate `index` of a trial seeded `seed`: replicate 0 keeps the trial's seed (so R = 1
    trains exactly what it trained before replicates existed), the others get well-spread seeds
    derived from both."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def replicate_configs(cfg: RunConfig, replicates: int) -> list[RunConfig]:
    """One run config per replicate: `cfg` with its replicate seed."""
    return [cfg.with_overrides({"seed": replicate_seed(cfg.seed, r)}) for r in range(replicates)]


def std_key(metric: str) -> str:
    return f"{metric}_std"


def seeds_key(metric: str) -> str:
    return f"{metric}_seeds"


def combine(results: list[dict], metric: str) -> dict:
    """One result from the replicates' eval metrics at the same kimg: every number averaged
    (the objective under its own name, so the scheduler and the searcher act on the mean), plus
    the objective's sample std (`<metric>_std`, 0 for one replicate) and each replicate's value
    (`<metric>_seeds`, in replicate order)."""
    keys = [k for k in results[0] if all(isinstance(r.get(k), (int, float)) for r in results)]
    out = {k: statistics.fmean(r[k] for r in results) for k in keys}
    values = [float(r[metric]) for r in results]
    out[std_key(metric)] = statistics.stdev(values) if len(values) > 1 else 0.0
    out[seeds_key(metric)] = values
    if "kimg" in out:
        out["kimg"] = round(out["kimg"], 3)
    return out

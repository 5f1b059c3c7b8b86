"""The confirmation stage (study section `confirm: {top_k, seeds, baseline}`): after the search, the
K best configurations it found and the λ = 0 baseline are trained again with S fresh seeds (the
same S for every configuration; never a seed any search trial or replicate used), each to the full
training.kimg, as ordinary Tune trials of a second experiment, `<study dir>/confirm`, so they run
in parallel, checkpoint, resume with --resume and get MLflow child runs tagged `stage=confirm`.
Their per-seed objectives then go through tuning/confirm_stats.py.
"""
from __future__ import annotations

import json
import math

import numpy as np

from smart.config import RunConfig, active_overrides
from tuning.confirm_stats import LAMBDA, compare
from tuning.replicates import replicate_seed
from tuning.status import SCORED, TrialStatus, trial_status

CONFIRM_DIR = "confirm"        # the confirmation experiment, inside the study's directory
_CONFIRM_STREAM = 0x5EED_C0F1  # keeps confirmation seeds apart from the search's trial seeds


def params_of(config: dict) -> dict:
    """A trial's configuration without its seed."""
    return {k: v for k, v in config.items() if k != "seed"}


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def is_baseline(params: dict, base: RunConfig) -> bool:
    return params.get(LAMBDA, base.regularizer.weight) == 0


def pick(summary: dict, base: RunConfig, top_k: int, baseline: bool) -> tuple[list[dict], dict | None]:
    """The K best distinct λ > 0 configurations of the search, in the summary's ranking, and the
    baseline's configuration: the best λ = 0 trial's (so any other searched keys stay those the
    plain GAN did best with), else the best configuration with λ = 0."""
    configs, seen, plain = [], set(), None
    for t in summary["trials"]:
        if t["status"] not in SCORED or t["metrics"].get(summary["metric"]) is None:
            continue
        params = params_of(t["config"])
        if is_baseline(params, base):
            plain = plain or params
        elif _key(params) not in seen and len(configs) < top_k:
            seen.add(_key(params))
            configs.append(params)
    if not baseline:
        return configs, None
    return configs, plain or {**(configs[0] if configs else {}), LAMBDA: 0.0}


def search_seeds(summary: dict, replicates: int) -> set[int]:
    """Every seed a search trial trained (each replicate's too)."""
    return {replicate_seed(t["config"]["seed"], r) for t in summary["trials"] if "seed" in (t["config"] or {})
            for r in range(replicates)}


def fresh_seeds(study_seed: int, n: int, used: set[int]) -> list[int]:
    """`n` seeds derived from the study seed on a stream of their own, skipping any in `used`."""
    seeds, i = [], 0
    while len(seeds) < n:
        s = int(np.random.SeedSequence([study_seed, _CONFIRM_STREAM, i]).generate_state(1)[0] & 0x7FFFFFFF)
        if s not in used and s not in seeds:
            seeds.append(s)
        i += 1
    return seeds


def points(study, summary: dict, base: RunConfig) -> list[dict]:
    """The confirmation trials: the baseline's and each picked configuration's, one per fresh seed,
    all with the same keys (a key one configuration leaves out takes the trial base's value)."""
    spec = study.spec.confirm
    configs, plain = pick(summary, base, spec.top_k, spec.baseline)
    seeds = fresh_seeds(study.spec.sampler.seed, spec.seeds, search_seeds(summary, study.spec.budget.replicates))
    chosen = ([plain] if plain else []) + configs
    keys = list(dict.fromkeys(k for params in chosen for k in params))
    flat = base.flat()
    return [{**{k: params.get(k, flat[k]) for k in keys}, "seed": s} for params in chosen for s in seeds]


def param_space(todo: list[dict]) -> dict:
    """A Tune search space holding every value of `todo` (BasicVariantGenerator's points must lie
    in one); with num_samples = len(todo), the trials are exactly the points."""
    from ray import tune

    return {k: tune.choice(list({json.dumps(p[k]): p[k] for p in todo}.values())) for k in todo[0]}


def confirmation(runs: list[dict], mode: str) -> list[dict]:
    """Confirmation entries from its runs, each {"params", "seed", "value" (None when it did not
    finish: diverged, error), "baseline"}: grouped per configuration (`values` and their `seeds`,
    `failed`: runs without a value), the baseline first, then the others best mean first, each
    compared with the baseline (confirm_stats.compare)."""
    groups: dict[str, dict] = {}
    for run in runs:
        g = groups.setdefault(_key(run["params"]), {"params": run["params"], "values": [], "seeds": [],
                                                      "failed": 0, "baseline": run["baseline"]})
        if run["value"] is None:
            g["failed"] += 1
        else:
            g["values"].append(run["value"])
            g["seeds"].append(run["seed"])
    plain = next((g for g in groups.values() if g["baseline"]), None)
    sign = 1 if mode == "min" else -1
    others = sorted((g for g in groups.values() if not g["baseline"]),
                    key=lambda g: sign * float(np.mean(g["values"])) if g["values"] else math.inf)
    strip = lambda g: {k: v for k, v in g.items() if k != "baseline"}  # noqa: E731
    return compare([strip(g) for g in others], strip(plain) if plain else None, mode)


def runs_of(result_grid, base: RunConfig, metric: str) -> list[dict]:
    """The confirmation experiment's trials as `confirmation` reads them, in creation order (a
    restored experiment lists them in another)."""
    from tuning.results import trial_number  # Ray's: the report reads confirmations without it

    runs, flat = [], base.flat()
    for r in sorted(result_grid, key=lambda r: trial_number(r.path)):
        config, last = r.config or {}, r.metrics or {}
        status = trial_status(last, base.with_overrides(config).training.kimg, metric, error=r.error is not None)
        value = last.get(metric) if status == TrialStatus.FINISHED else None
        params = params_of(config)
        runs.append({"params": active_overrides(params, flat), "seed": config.get("seed"),
                     "value": float(value) if value is not None and math.isfinite(value) else None,
                     "baseline": is_baseline(params, base)})
    return runs

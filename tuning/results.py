"""A finished (or partly finished) study as data: the trial directories' names and summary.json."""
from __future__ import annotations

import math
import os

from ray.tune.result import AUTO_RESULT_KEYS, DEFAULT_EXPERIMENT_INFO_KEYS, TRIAL_ID

from smart.config import RunConfig
from tuning.replicates import seeds_key
from tuning.status import SCORED, trial_status

NOT_METRICS = set(AUTO_RESULT_KEYS) | set(DEFAULT_EXPERIMENT_INFO_KEYS) | {"done", "should_checkpoint"}
TRIAL_DIR_PREFIX = "trial_"


def trainer_metrics(result: dict) -> dict:
    """The numbers the trainer reported, without Tune's bookkeeping."""
    return {k: v for k, v in result.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def trial_dirname(trial) -> str:
    """`TuneConfig(trial_dirname_creator=...)`: trial_<creation number>_<trial id>, e.g.
    trial_0003_63e9f015 (Tune's experiment tag starts with the trial's 1-based creation number)."""
    return f"{TRIAL_DIR_PREFIX}{int(trial.experiment_tag.split('_', 1)[0]):04d}_{trial.trial_id}"


def trial_number(path: str) -> int:
    """The creation number in a trial directory named by `trial_dirname`."""
    return int(os.path.basename(path).removeprefix(TRIAL_DIR_PREFIX).split("_", 1)[0])


def _finite(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None


def kept_checkpoint(result, objective):
    """The Ray Checkpoint of a trial's ranked snapshot: its best eval's (objective.reduce: best;
    Tune keeps it beside the latest) or its latest; None when it saved none (a multi-worker
    trial's checkpoints stay in Ray Train's storage)."""
    if objective.reduce == "best" and result.best_checkpoints:
        return result.get_best_checkpoint(objective.metric, objective.mode)
    return result.checkpoint


def build_summary(result_grid, study, trial_base: RunConfig) -> dict:
    """summary.json: every trial (best first, then the unscored ones by creation; a replicated
    trial's `replicates` are its seeds' last objective values) and the best trial's searched values
    and full run config (`trial_base` with them applied). Trials rank by objective.result_key()
    (`fid_best` or `fid`)."""
    objective = study.spec.objective
    metric, mode, key = objective.metric, objective.mode, objective.result_key()
    trials = []
    for r in result_grid:
        last = r.metrics or {}
        config = r.config or {}
        status = trial_status(last, trial_base.with_overrides(config).training.kimg, metric, error=r.error is not None)
        trials.append({"trial_id": last[TRIAL_ID], "number": trial_number(r.path), "status": str(status),
                       "config": r.config, "metrics": {k: _finite(v) for k, v in trainer_metrics(last).items()},
                       "checkpoint": getattr(kept_checkpoint(r, objective), "path", None),
                       **({"replicates": last[seeds_key(metric)]} if seeds_key(metric) in last else {}),
                       **({"error": str(r.error).strip().splitlines()[-1]} if r.error is not None else {})})
    scored = [t for t in trials if t["status"] in SCORED and t["metrics"].get(key) is not None]
    sign = 1 if mode == "min" else -1
    scored.sort(key=lambda t: sign * t["metrics"][key])
    rest = sorted((t for t in trials if t not in scored), key=lambda t: t["number"])
    best = None
    if scored:
        top = scored[0]
        best = {"trial_id": top["trial_id"], "params": top["config"],
                "config": trial_base.with_overrides(top["config"]).to_dict(), "metrics": top["metrics"],
                "checkpoint": top["checkpoint"]}
    return {"study": study.spec.name, "metric": metric, "mode": mode, "reduce": objective.reduce, "objective": key,
            "num_samples": study.num_samples, "best": best, "trials": scored + rest}

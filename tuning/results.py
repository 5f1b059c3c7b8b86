"""A finished (or partly finished) study as data: summary.json and the printed table of trials."""
from __future__ import annotations

import math
import os
import re

from ray.tune.result import AUTO_RESULT_KEYS, DEFAULT_EXPERIMENT_INFO_KEYS

from smart.config import RunConfig

NOT_METRICS = set(AUTO_RESULT_KEYS) | set(DEFAULT_EXPERIMENT_INFO_KEYS) | {"done", "should_checkpoint"}


def trainer_metrics(result: dict) -> dict:
    """The numbers the trainer reported, without Tune's bookkeeping."""
    return {k: v for k, v in result.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def stopped_early(last_result: dict, base: dict, config: dict) -> bool:
    """True when the scheduler ended the trial before its training.kimg."""
    return last_result.get("kimg", 0) < RunConfig.from_dict(base, config).training.kimg


def trial_status(last_result: dict, base: dict, config: dict) -> str:
    """`diverged`, `stopped early` or `finished` for a trial that ended without an error."""
    if last_result.get("diverged"):
        return "diverged"
    return "stopped early" if stopped_early(last_result, base, config) else "finished"


def _finite(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None


_TRIAL_DIR = re.compile(r"_([0-9a-f]{8})_(\d+)_")  # <trainable>_<trial id>_<creation number>_<params>


def _trial_id_and_number(result) -> tuple[str, int]:
    """Tune's trial directory names carry the trial id and its 1-based creation number."""
    match = _TRIAL_DIR.search(os.path.basename(result.path))
    if match is None:
        return (result.metrics or {}).get("trial_id", os.path.basename(result.path)), -1
    return match.group(1), int(match.group(2))


def build_summary(result_grid, study) -> dict:
    base = study.base.to_dict()
    metric, mode = study.spec.objective.metric, study.spec.objective.mode
    trials = []
    for r in result_grid:
        last = r.metrics or {}
        trial_id, number = _trial_id_and_number(r)
        if r.error is not None:
            status = "error"
        elif metric not in last:
            status = "no result"
        else:
            status = trial_status(last, base, r.config)
        trials.append({"trial_id": trial_id, "number": number, "status": status,
                       "config": r.config, "metrics": {k: _finite(v) for k, v in trainer_metrics(last).items()},
                       **({"error": str(r.error).strip().splitlines()[-1]} if r.error is not None else {})})
    scored = [t for t in trials if t["status"] not in ("error", "diverged") and t["metrics"].get(metric) is not None]
    sign = 1 if mode == "min" else -1
    scored.sort(key=lambda t: sign * t["metrics"][metric])
    rest = sorted((t for t in trials if t not in scored), key=lambda t: t["number"])
    best = None
    if scored:
        top = scored[0]
        best = {"trial_id": top["trial_id"], "params": top["config"],
                "config": study.base.with_overrides(top["config"]).to_dict(), "metrics": top["metrics"]}
    return {"study": study.spec.name, "metric": metric, "mode": mode, "num_samples": study.num_samples,
            "best": best, "trials": scored + rest}


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def format_table(summary: dict, keys: list[str]) -> str:
    """Trials sorted by the metric: id, status, kimg, metric and the searched values."""
    metric = summary["metric"]
    header = ["trial", "status", "kimg", metric, *keys]
    rows = [[t["trial_id"], t["status"], t["metrics"].get("kimg"), t["metrics"].get(metric),
             *((t["config"] or {}).get(k) for k in keys)] for t in summary["trials"]]
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

"""A study as MLflow recorded it: the parent run, one record per search trial (status, searched
values, run-config params, last metrics, objective history) and the confirmation's runs (child
runs tagged stage=confirm), read with MlflowClient alone, so that the
report can be rebuilt at any time without Ray or the study's storage."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from smart.config import active_overrides
from tuning.status import STAGE_TAG, TrialStatus
from tuning.tracking import step_kimg

LAMBDA, INTERVAL, T_MIN, T_MAX = ("regularizer.weight", "regularizer.interval", "regularizer.t_min",
                                  "regularizer.t_max")


@dataclass
class TrialRecord:
    run_id: str
    trial_id: str
    status: str
    searched: dict            # the values the searcher set (plus the trial's seed)
    params: dict              # the full flattened run config, as MLflow stores it (strings)
    metrics: dict             # last value of every metric
    history: list = field(default_factory=list)  # [(kimg, objective)]

    def number(self, key: str) -> float | None:
        """A numeric run-config value (searched or fixed)."""
        value = self.searched.get(key, self.params.get(key))
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @property
    def kimg(self) -> float | None:
        return self.metrics.get("kimg")


@dataclass
class StudyRecord:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    metric: str
    mode: str
    search: dict              # dotted key -> search entry (as logged on the parent)
    parent_params: dict
    parent_tags: dict
    trials: list              # TrialRecord of the search, best first; unscored ones last
    confirm: list = field(default_factory=list)  # the confirmation's runs, as tuning.confirm.confirmation reads them

    def objective(self, trial: TrialRecord) -> float | None:
        value = trial.metrics.get(self.metric)
        return value if value is not None and math.isfinite(value) else None

    @property
    def scored(self) -> list:
        return [t for t in self.trials if self.objective(t) is not None and t.status != TrialStatus.ERROR]

    @property
    def best(self) -> TrialRecord | None:
        return self.scored[0] if self.scored else None

    @property
    def baseline(self) -> TrialRecord | None:
        """The best λ = 0 trial (a plain GAN), if the study ran one."""
        return next((t for t in self.scored if t.number(LAMBDA) == 0.0), None)

    @property
    def best_smart(self) -> TrialRecord | None:
        """The best trial with the SMaRt term on (λ > 0)."""
        return next((t for t in self.scored if (t.number(LAMBDA) or 0.0) > 0), None)

    def search_keys(self) -> list[str]:
        keys = []
        for key, entry in self.search.items():
            keys += [key, entry["upper"]] if entry.get("type") == "range" else [key]
        return keys


def _all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, ViewType.ACTIVE_ONLY, max_results=1000,
                                  page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def find_parent(client: MlflowClient, name: str) -> tuple[str, str] | None:
    """(experiment id, latest parent run id) of the study called `name`, or None."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return None
    parents = [r for r in _all_runs(client, exp.experiment_id, "")
               if "mlflow.parentRunId" not in r.data.tags and "study" in r.data.tags]
    if not parents:
        return None
    return exp.experiment_id, max(parents, key=lambda r: r.info.start_time).info.run_id


def _confirm_run(run, metric: str) -> dict:
    """A confirmation trial's configuration, seed and final objective (None unless it finished)."""
    searched = json.loads(run.data.tags.get("searched", "{}"))
    finished = TrialStatus.recorded(run.data.tags, run.info.status) == TrialStatus.FINISHED
    value = run.data.metrics.get(metric) if finished else None
    weight = searched.get(LAMBDA, run.data.params.get(LAMBDA))
    params = {k: v for k, v in searched.items() if k != "seed"}
    return {"params": active_overrides(params, params), "seed": searched.get("seed"),
            "value": value if value is not None and math.isfinite(value) else None,
            "baseline": weight is not None and float(weight) == 0.0}


def load_study_record(tracking_uri: str, parent_run_id: str) -> StudyRecord:
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    params = parent.data.params
    # the result key that ranks trials (fid_best with objective.reduce: best); older studies: the metric
    metric, mode = params.get("study.objective", params.get("study.metric", "fid")), params.get("study.mode", "min")
    search = {k.removeprefix("search."): json.loads(v) for k, v in params.items() if k.startswith("search.")}
    children = _all_runs(client, parent.info.experiment_id, f"tags.mlflow.parentRunId = '{parent_run_id}'")
    trials, confirm = [], []
    for run in sorted(children, key=lambda r: r.info.start_time):
        tags = run.data.tags
        if tags.get(STAGE_TAG) == "confirm":
            confirm.append(_confirm_run(run, metric))
            continue
        history = [(step_kimg(m.step), m.value) for m in client.get_metric_history(run.info.run_id, metric)]
        trials.append(TrialRecord(
            run_id=run.info.run_id, trial_id=tags.get("trial_id", run.info.run_name),
            status=TrialStatus.recorded(tags, run.info.status),
            searched=json.loads(tags.get("searched", "{}")), params=dict(run.data.params),
            metrics=dict(run.data.metrics), history=sorted(history)))
    record = StudyRecord(name=parent.data.tags.get("study", ""), tracking_uri=tracking_uri,
                         experiment_id=parent.info.experiment_id, parent_run_id=parent_run_id, metric=metric,
                         mode=mode, search=search, parent_params=dict(params), parent_tags=dict(parent.data.tags),
                         trials=[], confirm=confirm)
    sign = 1 if mode == "min" else -1
    scored = sorted((t for t in trials if record.objective(t) is not None and t.status != TrialStatus.ERROR),
                    key=lambda t: sign * record.objective(t))
    record.trials = scored + sorted((t for t in trials if t not in scored), key=lambda t: t.trial_id)
    return record


def last_snapshot(client: MlflowClient, run_id: str, snapshot_dir: str) -> str | None:
    """Artifact path of the run's latest sample picture."""
    files = sorted(a.path for a in client.list_artifacts(run_id, snapshot_dir) if not a.is_dir)
    return files[-1] if files else None

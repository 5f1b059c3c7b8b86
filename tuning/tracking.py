"""MLflow tracking of a study: experiment = study name, one parent run per study, one nested child
run per trial (params = the trial's full flattened run config, metric histories with step = kimg).

One `log_batch` per Tune result (Ray's stock MLflow callback makes one call per metric and is
several times slower). The run ids live in `<experiment dir>/mlflow_runs.json`, so a resumed study
continues the same parent and child runs instead of creating new ones.
"""
from __future__ import annotations

import json
import os
import time

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune

from smart.config import RunConfig
from tuning.results import stopped_early, trainer_metrics

RUNS_FILE = "mlflow_runs.json"
_PARAMS_PER_CALL = 100  # MLflow's log_batch limit


def read_runs(exp_dir: str) -> dict | None:
    path = os.path.join(exp_dir, RUNS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _write_runs(exp_dir: str, runs: dict) -> None:
    path = os.path.join(exp_dir, RUNS_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(runs, fh, indent=2)
    os.replace(tmp, path)


def _local_artifact_root(uri: str, storage: str) -> str | None:
    """Database and file stores put artifacts beside the study (not in ./mlruns of the cwd);
    a tracking server decides for itself."""
    return None if uri.startswith(("http://", "https://")) else os.path.join(os.path.abspath(storage), "mlartifacts")


def start_parent(study, uri: str, storage: str, exp_dir: str, resume: bool) -> dict:
    """Create (or, on resume, reopen) the study's parent run; return the runs record."""
    client = MlflowClient(uri)
    runs = read_runs(exp_dir) if resume else None
    if runs is not None:
        client.update_run(runs["parent"], status="RUNNING")
        return runs
    name = study.spec.name
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        name, artifact_location=_local_artifact_root(uri, storage))
    parent = client.create_run(exp_id, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags={"study": name, "sampler": study.spec.sampler.kind,
                                     "mlflow.note.content": study.spec.description})
    pid = parent.info.run_id
    search = {f"search.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in study.spec.search.items()}
    client.log_batch(pid, params=[Param(k, str(v)) for k, v in {
        "study.num_samples": study.num_samples, "study.sampler": study.spec.sampler.kind,
        "study.seed": study.spec.sampler.seed, "study.scheduler": study.spec.scheduler.kind,
        "study.metric": study.spec.objective.metric, "study.mode": study.spec.objective.mode, **search}.items()])
    runs = {"tracking_uri": uri, "experiment_id": exp_id, "parent": pid, "trials": {}}
    os.makedirs(exp_dir, exist_ok=True)
    _write_runs(exp_dir, runs)
    return runs


def drop_lost_trials(exp_dir: str, kept: set[str]) -> int:
    """A hard interrupt can hit after a trial started (and got its run) but before Tune's next
    experiment snapshot; the resumed study never knew that trial and ran another in its place.
    Delete such runs so each trial of the study has exactly one run."""
    runs = read_runs(exp_dir)
    lost = {t: r for t, r in runs["trials"].items() if t not in kept}
    client = MlflowClient(runs["tracking_uri"])
    for trial_id, run_id in lost.items():
        client.delete_run(run_id)
        del runs["trials"][trial_id]
    if lost:
        _write_runs(exp_dir, runs)
    return len(lost)


def finish_parent(runs: dict, summary: dict, summary_path: str, metric: str, complete: bool) -> None:
    """Best trial's params and metric on the parent, summary.json as its artifact."""
    client = MlflowClient(runs["tracking_uri"])
    pid = runs["parent"]
    best = summary.get("best")
    if best:
        client.set_tag(pid, "best_trial", best["trial_id"])
        client.log_metric(pid, metric, best["metrics"][metric])
        params = RunConfig.from_dict(best["config"]).flat()
        try:
            _log_params(client, pid, params)
        except MlflowException:  # params are immutable: a resumed study found a different best
            print(f"note: the parent run keeps the params logged earlier; the best is now trial "
                  f"{best['trial_id']} (tag best_trial)")
    client.log_artifact(pid, summary_path)
    client.set_terminated(pid, status="FINISHED" if complete else "FAILED")


def _log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), _PARAMS_PER_CALL):
        client.log_batch(run_id, params=items[i:i + _PARAMS_PER_CALL])


def _metric_items(result: dict) -> list[Metric]:
    now = int(time.time() * 1000)
    step = int(round(result.get("kimg", result.get("training_iteration", 0))))
    return [Metric(k, float(v), now, step) for k, v in trainer_metrics(result).items()]


class MLflowCallback(tune.Callback):
    """Driver-side Tune callback: a child run per trial, one log_batch per result.

    It carries only the experiment directory (Ray pickles callbacks into the experiment state);
    everything else is read from the runs file when the experiment starts or resumes."""

    def __init__(self, exp_dir: str, base: dict):
        self.exp_dir = exp_dir
        self.base = base
        self._client = None
        self._runs: dict = {}

    def __getstate__(self):
        return {"exp_dir": self.exp_dir, "base": self.base, "_client": None, "_runs": {}}

    def setup(self, **info):
        self._runs = read_runs(self.exp_dir)
        self._client = MlflowClient(self._runs["tracking_uri"])

    def _run_id(self, trial) -> str:
        run_id = self._runs["trials"].get(trial.trial_id)
        if run_id is None:
            cfg = RunConfig.from_dict(self.base, trial.config)
            run = self._client.create_run(
                self._runs["experiment_id"], run_name=trial.trial_id,
                tags={"mlflow.parentRunId": self._runs["parent"], "trial_id": trial.trial_id,
                      "searched": json.dumps(trial.config)})
            run_id = run.info.run_id
            _log_params(self._client, run_id, cfg.flat())
            self._runs["trials"][trial.trial_id] = run_id
            _write_runs(self.exp_dir, self._runs)
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        known = trial.trial_id in self._runs["trials"]
        run_id = self._run_id(trial)
        if known:  # a resumed trial continues its run
            self._client.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._client.log_batch(self._run_id(trial), metrics=_metric_items(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        early = stopped_early(trial.last_result or {}, self.base, trial.config)
        self._client.log_batch(self._run_id(trial), tags=[RunTag("stopped_early", str(early).lower())])
        self._client.set_terminated(self._run_id(trial), status="FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._client.set_terminated(self._run_id(trial), status="FAILED")


"""The Tune side of MLflow tracking (conventions in tuning/tracking.py): a driver-side callback that
makes a child run per trial and sends one `log_batch` per Tune result (Ray's stock MLflow callback
makes one call per metric and is several times slower).

A result is logged only once Tune has registered its checkpoint: Tune hands a result to callbacks
before it fetches its checkpoint, and a node lost in between restarts the trial from the previous
checkpoint, which would log that step twice. The run ids live in the study's runs file
(tuning/runs_file.py), so a resumed study continues the same parent and child runs; a resumed trial
logs only the steps beyond its run's history (an interrupted driver may have logged a result whose
checkpoint its experiment state never recorded, and the trial redoes it); a trial whose run an
interrupted driver created but never recorded finds that run by its tag (tuning/runs_file.py), so
driver loss never duplicates a run. A diverged trial's run ends FAILED with the tag
`trial_status=diverged`.
"""
from __future__ import annotations

import json
import os
import time

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from smart.config import RunConfig
from tuning.results import trainer_metrics
from tuning.runs_file import RunsFile
from tuning.status import SCORED, SNAPSHOT_PREFIX, STATUS_TAG, STOPPED_EARLY_TAG, ResultKey, TrialStatus, trial_status
from tuning.storage import Storage
from tuning.timings import Timings
from tuning.tracking import (CONFIG_ARTIFACT, SNAPSHOT_DIR, find_trial_run, log_params, metric_step, run_name,
                             run_tags)


def _metric_items(result: dict) -> list[Metric]:
    now = int(time.time() * 1000)
    step = metric_step(result[ResultKey.KIMG])
    return [Metric(k, float(v), now, step) for k, v in trainer_metrics(result).items()]


class MLflowCallback(tune.Callback):
    """A child run per trial, one log_batch per result.

    It carries only the experiment directory, the metric and the trials' base run config (Ray
    pickles callbacks into the experiment state); the runs are read from the runs file when the
    experiment starts or resumes."""

    def __init__(self, exp: Storage, trial_base: RunConfig, metric: str, tags: dict | None = None):
        self.exp = exp
        self.trial_base = trial_base
        self.metric = metric
        self.tags = dict(tags or {})  # on every child run, e.g. {"stage": "confirm"}
        self._client = None
        self._runs: RunsFile | None = None
        self._configs: dict[str, RunConfig] = {}  # trial id -> its full run config
        self._pending: dict[str, list] = {}  # trial id -> results whose checkpoint is not registered yet
        self._logged: dict[str, int] = {}  # resumed trial id -> the last step its run holds
        self.timings = Timings()  # its MLflow calls

    def __getstate__(self):
        return {"exp": self.exp, "trial_base": self.trial_base, "metric": self.metric, "tags": self.tags,
                "_client": None, "_runs": None, "_configs": {}, "_pending": {}, "_logged": {},
                "timings": Timings()}

    def setup(self, **info):
        self._runs = RunsFile.read(self.exp)
        self._client = MlflowClient(self._runs.tracking_uri)

    def _config(self, trial) -> RunConfig:
        if trial.trial_id not in self._configs:
            self._configs[trial.trial_id] = self.trial_base.with_overrides(trial.config)
        return self._configs[trial.trial_id]

    def _run_id(self, trial) -> str:
        recorded = self._runs.trials
        run_id = recorded.get(trial.trial_id)
        if run_id is None:
            cfg = self._config(trial)
            if trial.trial_id in recorded:  # reserved by a driver killed before it recorded the run
                run_id = find_trial_run(self._client, self._runs, trial.trial_id)
            else:
                self._runs.reserve(trial.trial_id)
            if run_id is None:
                run_id = self._client.create_run(
                    self._runs.experiment_id, run_name=run_name(cfg),
                    tags=run_tags({**self.tags, "mlflow.parentRunId": self._runs.parent, "trial_id": trial.trial_id,
                                   "searched": json.dumps(trial.config), "seed": str(cfg.seed)})).info.run_id
            log_params(self._client, run_id, cfg.params())  # on a found run: the same values again
            self._client.log_text(run_id, cfg.to_yaml(), CONFIG_ARTIFACT)
            self._runs.add(trial.trial_id, run_id)
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        known = trial.trial_id in self._runs.trials
        with self.timings.phase("mlflow_create_run"):
            run_id = self._run_id(trial)
        if known:  # a resumed trial continues its run, after the steps it holds
            self._client.update_run(run_id, status="RUNNING")
            history = self._client.get_metric_history(run_id, ResultKey.KIMG.value)
            self._logged[trial.trial_id] = max((m.step for m in history), default=-1)

    def _flush(self, trial) -> None:
        logged = self._logged.get(trial.trial_id, -1)
        for result in self._pending.pop(trial.trial_id, []):
            if metric_step(result[ResultKey.KIMG]) > logged:
                with self.timings.phase("mlflow_log_batch"):
                    self._client.log_batch(self._run_id(trial), metrics=_metric_items(result))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._pending.setdefault(trial.trial_id, []).append(dict(result))
        if "checkpoint_path" in result:  # a multi-worker trial: Ray Train stored it before reporting
            self._flush(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._pending.pop(trial.trial_id, None)  # redone from the last registered checkpoint

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        """Log the results waiting for this checkpoint; the trial's sample picture travels in the
        checkpoint (the driver can read checkpoints on any cluster) and becomes the child run's
        artifact snapshots/<file>."""
        self._flush(trial)
        with checkpoint.as_directory() as ckpt_dir:
            for name in sorted(os.listdir(ckpt_dir)):
                if name.startswith(SNAPSHOT_PREFIX):
                    with self.timings.phase("mlflow_log_artifact"):
                        self._client.log_artifact(self._run_id(trial), os.path.join(ckpt_dir, name), SNAPSHOT_DIR)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._flush(trial)  # e.g. a diverged trial's last result, which has no checkpoint
        self._end(trial, trial_status(trial.last_result, self._config(trial).training.kimg, self.metric))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._flush(trial)
        self._end(trial, TrialStatus.ERROR)

    def _end(self, trial, status: TrialStatus) -> None:
        tags = [RunTag(STATUS_TAG, str(status))]
        if status != TrialStatus.ERROR:
            tags.append(RunTag(STOPPED_EARLY_TAG, str(status == TrialStatus.STOPPED_EARLY).lower()))
        if status == TrialStatus.DIVERGED:
            tags.append(RunTag(ResultKey.DIVERGED_REASON.value,
                               str(trial.last_result.get(ResultKey.DIVERGED_REASON, ""))[:500]))
        self._client.log_batch(self._run_id(trial), tags=tags)
        self._client.set_terminated(self._run_id(trial), status="FINISHED" if status in SCORED else "FAILED")

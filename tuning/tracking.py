"""MLflow tracking of a study: experiment = study name, one parent run per study, one nested child
run per trial (params = the trial's full flattened run config, metric histories with step = kimg).

One `log_batch` per Tune result (Ray's stock MLflow callback makes one call per metric and is
several times slower), sent once Tune has registered the result's checkpoint: Tune hands a result
to callbacks before it fetches its checkpoint, and a node lost in between restarts the trial from
the previous checkpoint, which would log that step twice. The run ids live in `<experiment dir>/mlflow_runs.json` (written
atomically), so a resumed study continues the same parent and child runs instead of creating new
ones. A diverged trial's run ends FAILED with the tag `trial_status=diverged`.

Only the study spec and each trial's run config are logged: never the environment, credentials or
the tracking URI itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from functools import lru_cache

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune

from smart.config import RunConfig
from tuning.results import trial_status, trainer_metrics
from tuning.storage import Storage
from tuning.trainable import SNAPSHOT_PREFIX

RUNS_FILE = "mlflow_runs.json"
_PARAMS_PER_CALL = 100  # MLflow's log_batch limit


SNAPSHOT_DIR = "snapshots"
CONFIG_ARTIFACT = "config.yaml"
STATUS_TAG = "trial_status"  # a trial's end: finished, stopped early, diverged, error


@lru_cache(maxsize=1)
def code_version_tags() -> dict:
    """The git commit of this tree (MLflow's own tag, shown in its UI), when it is a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, "code_dirty": str(bool(dirty)).lower()}


def read_runs(exp: Storage) -> dict | None:
    return exp.read_json(RUNS_FILE) if exp.exists(RUNS_FILE) else None


def _artifact_root(uri: str, storage: Storage) -> str | None:
    """Database and file stores put artifacts beside the study (not in ./mlruns of the cwd);
    a tracking server decides for itself."""
    if uri.startswith(("http://", "https://")):
        return None
    return storage.sub("mlartifacts").location


def start_parent(study, uri: str, storage: Storage, exp: Storage, resume: bool) -> dict:
    """Create (or, on resume, reopen) the study's parent run; return the runs record."""
    client = MlflowClient(uri)
    runs = read_runs(exp) if resume else None
    if runs is not None:
        client.update_run(runs["parent"], status="RUNNING")
        return runs
    name = study.spec.name
    experiment = client.get_experiment_by_name(name)
    exp_id = experiment.experiment_id if experiment else client.create_experiment(
        name, artifact_location=_artifact_root(uri, storage))
    parent = client.create_run(exp_id, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags={"study": name, "sampler": study.spec.sampler.kind,
                                     "mlflow.note.content": study.spec.description, **code_version_tags()})
    pid = parent.info.run_id
    search = {f"search.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in study.spec.search.items()}
    client.log_batch(pid, params=[Param(k, str(v)) for k, v in {
        "study.num_samples": study.num_samples, "study.sampler": study.spec.sampler.kind,
        "study.seed": study.spec.sampler.seed, "study.scheduler": study.spec.scheduler.kind,
        "study.metric": study.spec.objective.metric, "study.mode": study.spec.objective.mode,
        "study.resources.cpu": study.spec.resources.cpu, **search}.items()])
    runs = {"tracking_uri": uri, "experiment_id": exp_id, "parent": pid, "trials": {}}
    exp.write_json(RUNS_FILE, runs)
    return runs


def drop_lost_trials(exp: Storage, kept: set[str]) -> int:
    """A hard interrupt can hit after a trial started (and got its run) but before Tune's next
    experiment snapshot; the resumed study never knew that trial and ran another in its place.
    Delete such runs so each trial of the study has exactly one run."""
    runs = read_runs(exp)
    lost = {t: r for t, r in runs["trials"].items() if t not in kept}
    client = MlflowClient(runs["tracking_uri"])
    for trial_id, run_id in lost.items():
        client.delete_run(run_id)
        del runs["trials"][trial_id]
    if lost:
        exp.write_json(RUNS_FILE, runs)
    return len(lost)


def finish_parent(runs: dict, summary: dict, metric: str, complete: bool) -> None:
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
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "summary.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
        client.log_artifact(pid, path)
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

    def __init__(self, exp: Storage, base: dict):
        self.exp = exp
        self.base = base
        self._client = None
        self._runs: dict = {}
        self._pending: dict[str, list] = {}  # trial id -> results whose checkpoint is not registered yet

    def __getstate__(self):
        return {"exp": self.exp, "base": self.base, "_client": None, "_runs": {}, "_pending": {}}

    def setup(self, **info):
        self._runs = read_runs(self.exp)
        self._client = MlflowClient(self._runs["tracking_uri"])

    def _run_id(self, trial) -> str:
        run_id = self._runs["trials"].get(trial.trial_id)
        if run_id is None:
            cfg = RunConfig.from_dict(self.base, trial.config)
            run = self._client.create_run(
                self._runs["experiment_id"], run_name=trial.trial_id,
                tags={"mlflow.parentRunId": self._runs["parent"], "trial_id": trial.trial_id,
                      "searched": json.dumps(trial.config), "seed": str(cfg.seed), **code_version_tags()})
            run_id = run.info.run_id
            _log_params(self._client, run_id, cfg.flat())
            self._client.log_text(run_id, cfg.to_yaml(), CONFIG_ARTIFACT)
            self._runs["trials"][trial.trial_id] = run_id
            self.exp.write_json(RUNS_FILE, self._runs)
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        known = trial.trial_id in self._runs["trials"]
        run_id = self._run_id(trial)
        if known:  # a resumed trial continues its run
            self._client.update_run(run_id, status="RUNNING")

    def _flush(self, trial) -> None:
        for result in self._pending.pop(trial.trial_id, []):
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
                    self._client.log_artifact(self._run_id(trial), os.path.join(ckpt_dir, name), SNAPSHOT_DIR)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._flush(trial)  # e.g. a diverged trial's last result, which has no checkpoint
        last = trial.last_result or {}
        status = trial_status(last, self.base, trial.config)
        tags = [RunTag("stopped_early", str(status == "stopped early").lower()), RunTag(STATUS_TAG, status)]
        if status == "diverged":
            tags.append(RunTag("diverged_reason", str(last.get("diverged_reason", ""))[:500]))
        self._client.log_batch(self._run_id(trial), tags=tags)
        self._client.set_terminated(self._run_id(trial), status="FAILED" if status == "diverged" else "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._flush(trial)
        self._client.log_batch(self._run_id(trial), tags=[RunTag(STATUS_TAG, "error")])
        self._client.set_terminated(self._run_id(trial), status="FAILED")


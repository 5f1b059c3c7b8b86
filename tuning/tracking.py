"""MLflow conventions of a study: experiment = study name, one parent run per study, one nested
child run per trial, named for its SMaRt setting (`λ=0.01 k=8 t=25-35`, `λ=0 (baseline)`) and tagged
with its trial id; params = the trial's full flattened run config; metric histories with
step = images shown (round(kimg × 1000), so evals less than a kimg apart never collide); every run
tagged with the user, the source and the git commit (`mlflow.user`, `mlflow.source.*`).

Only the study spec and each trial's run config are logged: never the environment, credentials or
the tracking URI itself. MLflow alone (no Ray, no torch): the report reads these conventions too.
The Tune side (what is logged when) is tuning/tracking_callback.py.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from functools import lru_cache

from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from smart.config import RunConfig, flatten
from tuning.runs_file import RunsFile
from tuning.storage import Storage

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
CONFIG_ARTIFACT = "config.yaml"
_PARAMS_PER_CALL = 100  # MLflow's log_batch limit


def metric_step(kimg: float) -> int:
    """A metric's MLflow step: the images shown, so that evals less than one kimg apart keep
    distinct steps."""
    return int(round(kimg * 1000))


def step_kimg(step: int) -> float:
    return step / 1000


def run_name(cfg: RunConfig) -> str:
    """A child run's name: its SMaRt setting."""
    reg = cfg.regularizer
    if reg.weight == 0:
        return "λ=0 (baseline)"
    return f"λ={reg.weight:.3g} k={reg.interval} t={reg.t_min}-{reg.t_max}" + (" sds" if reg.mode == "sds" else "")


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


def run_tags(tags: dict) -> dict:
    """`tags` plus what MLflow's fluent API would add (mlflow.user, mlflow.source.name/type) and
    the git commit."""
    return resolve_tags({**code_version_tags(), **tags})


def _artifact_root(uri: str, storage: Storage) -> str | None:
    """Database and file stores put artifacts beside the study (not in ./mlruns of the cwd);
    a tracking server decides for itself."""
    if uri.startswith(("http://", "https://")):
        return None
    return storage.sub("mlartifacts").location


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), _PARAMS_PER_CALL):
        client.log_batch(run_id, params=items[i:i + _PARAMS_PER_CALL])


def start_parent(study, uri: str, storage: Storage, exp: Storage, resume: bool) -> RunsFile:
    """Create (or, on resume, reopen) the study's parent run; return its runs file."""
    client = MlflowClient(uri)
    runs = RunsFile.read(exp) if resume else None
    if runs is not None:
        client.update_run(runs.parent, status="RUNNING")
        return runs
    name = study.spec.name
    experiment = client.get_experiment_by_name(name)
    exp_id = experiment.experiment_id if experiment else client.create_experiment(
        name, artifact_location=_artifact_root(uri, storage))
    parent = client.create_run(exp_id, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags=run_tags({"study": name, "sampler": study.spec.sampler.kind,
                                              "mlflow.note.content": study.spec.description}))
    pid = parent.info.run_id
    search = {f"search.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in study.spec.search.items()}
    log_params(client, pid, {
        "study.num_samples": study.num_samples, "study.sampler": study.spec.sampler.kind,
        "study.seed": study.spec.sampler.seed, "study.scheduler": study.spec.scheduler.kind,
        "study.metric": study.spec.objective.metric, "study.mode": study.spec.objective.mode,
        "study.reduce": study.spec.objective.reduce, "study.objective": study.spec.objective.result_key(),
        "study.resources.cpu": study.spec.resources.cpu, **search})
    return RunsFile.create(exp, uri, exp_id, pid)


def find_trial_run(client: MlflowClient, runs: RunsFile, trial_id: str) -> str | None:
    """The child run a trial got from an earlier driver that was killed before recording it."""
    found = client.search_runs([runs.experiment_id], f"tags.trial_id = '{trial_id}' and "
                                                     f"tags.mlflow.parentRunId = '{runs.parent}'")
    return min(found, key=lambda r: r.info.start_time).info.run_id if found else None


def drop_lost_trials(runs: RunsFile, kept: set[str]) -> int:
    """A hard interrupt can hit after a trial started (and got its run) but before Tune's next
    experiment snapshot; the resumed study never knew that trial and ran another in its place.
    Delete such runs (recorded, or only reserved in the runs file and found by their tag) so each
    trial of the study has exactly one run."""
    client = MlflowClient(runs.tracking_uri)
    lost = [t for t in runs.trials if t not in kept]
    deleted = 0
    for trial_id in lost:
        run_id = runs.trials[trial_id] or find_trial_run(client, runs, trial_id)
        if run_id is not None:
            client.delete_run(run_id)
            deleted += 1
    if lost:
        runs.drop(lost)
    return deleted


def record_best(runs: RunsFile, summary: dict, metric: str) -> None:
    """Best trial's params and metric on the parent."""
    client = MlflowClient(runs.tracking_uri)
    best = summary.get("best")
    if best:
        client.set_tag(runs.parent, "best_trial", best["trial_id"])
        client.log_metric(runs.parent, metric, best["metrics"][metric])
        try:
            log_params(client, runs.parent, flatten(best["config"]))
        except MlflowException:  # params are immutable: a resumed study found a different best
            log.info("note: the parent run keeps the params logged earlier; the best is now trial %s "
                     "(tag best_trial)", best["trial_id"])


def close_parent(runs: RunsFile, summary: dict, complete: bool) -> None:
    """The final summary.json (timings included) as the parent's artifact, then its status."""
    client = MlflowClient(runs.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "summary.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
        client.log_artifact(runs.parent, path)
    client.set_terminated(runs.parent, status="FINISHED" if complete else "FAILED")

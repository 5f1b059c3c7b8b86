"""The Ray Tune trainables of a study, named by the driver: `train_trial` runs a trial in the Tune
actor itself (`resources.workers: 1`); `train_trial_ddp` runs it as a Ray Train TorchTrainer of N
workers, whose rank 0 reports through Tune the same metrics and checkpoints. What a trial runs is
in tuning/trial_run.py, imported inside the trainables: the driver, which imports this module to
name them, never pays for importing torch and the training library.

Lives in the installed package because Ray workers import it by name.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ray import tune

if TYPE_CHECKING:
    from smart.config import RunConfig


def keep_checkpoints(config_class, reduce: str, metric: str, mode: str):
    """Tune's (or Ray Train's) CheckpointConfig: a trial's latest checkpoint is always kept (resume
    needs it) and, with objective.reduce: best, also the one of its best eval, whose generator is
    the trial's result."""
    if reduce == "last":
        return config_class(num_to_keep=1)
    return config_class(num_to_keep=1, checkpoint_score_attribute=metric, checkpoint_score_order=mode)


def train_trial(config: dict, **params) -> None:
    """`config` holds dotted overrides of the study's trial base (what the searcher suggested);
    `params` are tuning.trial_run.tune_trial's (the study's trial base, objective, threads, ...)."""
    from tuning.trial_run import tune_trial

    tune_trial(config, **params)


def train_trial_ddp(config: dict, *, base: RunConfig, metric: str, mode: str, reduce: str, threads: int,
                    workers: int, cpu: float, gpu: float, train_storage: str, study: str = "",
                    snapshot_every: int = 0) -> None:
    """A Tune trial that runs `workers` DDP ranks as a Ray Train TorchTrainer. Train keeps its
    checkpoints under `train_storage/<trial id>`, so a retried or resumed trial (same id) continues
    from the last one."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from tuning.trial_run import ddp_worker

    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    TorchTrainer(
        ddp_worker,
        train_loop_config={"base": base, "config": config, "metric": metric, "mode": mode, "threads": threads,
                           "study": study, "trial_id": tune.get_context().get_trial_id() or "",
                           "snapshot_every": snapshot_every},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=gpu > 0,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(name=tune.get_context().get_trial_id(), storage_path=train_storage,
                                       callbacks=[TuneReportCallback()],
                                       checkpoint_config=keep_checkpoints(ray.train.CheckpointConfig, reduce,
                                                                          metric, mode)),
    ).fit()

"""The Ray Tune trainables: one trial = one `smart` Trainer run of the base config plus the
suggested values, reporting every eval's metrics with a checkpoint of the full trainer state (and,
at the study's snapshot cadence, a sample picture beside it for MLflow), and exporting live gauges
for the dashboard.

`train_trial` runs the trial in the Tune actor itself (`resources.workers: 1`); `train_trial_ddp`
runs it as a Ray Train TorchTrainer of N workers, whose rank 0 reports through Tune the same
metrics and checkpoints. A diverged trial (NaN/inf losses) ends normally with `diverged: 1` and the
objective's worst value, so that the scheduler and Optuna learn from it and the study goes on.

Lives in the installed package because Ray workers import it by name.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from typing import Callable

import torch
from ray import tune

from smart.checkpoint import TRIAL_CHECKPOINT as CHECKPOINT_FILE
from smart.config import RunConfig
from smart.loop import Trainer, TrainingDiverged
from smart.visuals import save_snapshot
from tuning.live_metrics import TrialGauges
from tuning.status import ResultKey

SNAPSHOT_PREFIX = "snapshot-kimg"


def snapshot_name(kimg: float) -> str:
    """File names that sort by training progress."""
    return f"{SNAPSHOT_PREFIX}{kimg:010.3f}.png"


def wants_snapshot(trainer: Trainer, every: int) -> bool:
    """Every `every`-th eval, and the end of training."""
    return every > 0 and ((trainer.evals % every == 0) or trainer.cur_nimg >= trainer.total_nimg)


def worst_value(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


def run_trial(cfg: RunConfig, *, metric: str, mode: str, report: Callable, checkpoint,
              distributed: bool = False, gauges: TrialGauges | None = None, snapshot_every: int = 0) -> None:
    """Train `cfg`, resuming from `checkpoint` (a Ray Checkpoint or None), calling
    `report(metrics, checkpoint=...)` at every eval on every rank (rank 0's carry the numbers,
    set the gauges and draw the snapshots)."""
    trainer = None

    def on_eval(trainer: Trainer, metrics: dict) -> None:
        if trainer.rank == 0 and metric not in metrics:
            raise ValueError(f"objective.metric: {metric!r} is not reported by this run "
                             f"(it reports: {', '.join(metrics)})")
        if trainer.rank == 0 and not math.isfinite(metrics[metric]):
            raise ValueError(f"objective.metric: {metric} is {metrics[metric]} at kimg {trainer.kimg:g}")
        if trainer.rank == 0 and gauges is not None:
            gauges.update(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save(os.path.join(tmp, CHECKPOINT_FILE))  # every rank: it gathers the RNG streams
            if trainer.rank == 0 and wants_snapshot(trainer, snapshot_every):
                save_snapshot(trainer.context(), os.path.join(tmp, snapshot_name(trainer.kimg)))
            report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp) if trainer.rank == 0 else None)

    try:
        trainer = Trainer(cfg, callbacks=[on_eval], distributed=distributed)
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt_dir:
                trainer.load(os.path.join(ckpt_dir, CHECKPOINT_FILE))
        try:
            trainer.train()
        except TrainingDiverged as exc:
            report({ResultKey.KIMG.value: round(trainer.kimg, 3), metric: worst_value(mode),
                    ResultKey.DIVERGED.value: 1.0, ResultKey.DIVERGED_REASON.value: str(exc)})
    finally:
        # free the trial's memory now, even while a traceback still holds the trainer (ASHA stops a
        # trial by raising SystemExit in it), so the next trial on this GPU share starts clean
        if trainer is not None:
            trainer.close()


def train_trial(config: dict, *, base: RunConfig, metric: str, mode: str, threads: int, study: str = "",
                snapshot_every: int = 0) -> None:
    """`config` holds dotted overrides of the study's trial base (what the searcher suggested)."""
    torch.set_num_threads(threads)
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    run_trial(base.with_overrides(config), metric=metric, mode=mode, report=tune.report,
              checkpoint=tune.get_checkpoint(), gauges=TrialGauges(study, tune.get_context().get_trial_id() or ""),
              snapshot_every=snapshot_every)


def _ddp_worker(loop_config: dict) -> None:
    """One rank of a multi-worker trial (Ray Train has set up torch.distributed)."""
    import ray.train

    torch.set_num_threads(loop_config["threads"])
    cfg = loop_config["base"].with_overrides(loop_config["config"])
    rank0 = ray.train.get_context().get_world_rank() == 0
    gauges = TrialGauges(loop_config["study"], loop_config["trial_id"]) if rank0 else None
    run_trial(cfg, metric=loop_config["metric"], mode=loop_config["mode"], report=ray.train.report,
              checkpoint=ray.train.get_checkpoint(), distributed=True, gauges=gauges,
              snapshot_every=loop_config["snapshot_every"])


def train_trial_ddp(config: dict, *, base: RunConfig, metric: str, mode: str, threads: int, workers: int,
                    cpu: float, gpu: float, train_storage: str, study: str = "", snapshot_every: int = 0) -> None:
    """A Tune trial that runs `workers` DDP ranks as a Ray Train TorchTrainer. Train keeps its
    checkpoints under `train_storage/<trial id>`, so a retried or resumed trial (same id) continues
    from the last one."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    TorchTrainer(
        _ddp_worker,
        train_loop_config={"base": base, "config": config, "metric": metric, "mode": mode, "threads": threads,
                           "study": study, "trial_id": tune.get_context().get_trial_id() or "",
                           "snapshot_every": snapshot_every},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=gpu > 0,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(name=tune.get_context().get_trial_id(), storage_path=train_storage,
                                       callbacks=[TuneReportCallback()],
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)),
    ).fit()

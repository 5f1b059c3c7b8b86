"""What a trial runs in its Ray actor (or, for a multi-worker trial, in each Ray Train worker): one
`smart` Trainer run of the base config plus the suggested values, reporting every eval's metrics
with a checkpoint of the full trainer state (and, at the study's snapshot cadence, a sample picture
beside it for MLflow), and exporting live gauges for the dashboard. A diverged trial (NaN/inf
losses) ends normally with `diverged: 1` and the objective's worst value, so that the scheduler and
Optuna learn from it and the study goes on.

Imports torch and the training library; the driver never imports this module (tuning/trainable.py
names the trainables and loads this inside them).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from typing import Callable

import ray
import torch
from ray import tune

from smart.checkpoint import TRIAL_CHECKPOINT as CHECKPOINT_FILE
from smart.config import RunConfig
from smart.devices import granted_device, hide_gpus
from smart.loop import Trainer, TrainingDiverged
from smart.visuals import save_snapshot
from tuning.live_metrics import TrialGauges
from tuning.replicates import REPLICATE_DIR, combine, replicate_configs
from tuning.status import SNAPSHOT_PREFIX, ResultKey, best_key, best_kimg_key

_trials_in_this_process = 0  # > 1: Tune reused this actor (reuse_actors)


def snapshot_name(kimg: float) -> str:
    """File names that sort by training progress."""
    return f"{SNAPSHOT_PREFIX}{kimg:010.3f}.png"


def wants_snapshot(trainer: Trainer, every: int) -> bool:
    """Every `every`-th eval, and the end of training."""
    return every > 0 and ((trainer.evals % every == 0) or trainer.cur_nimg >= trainer.total_nimg)


def worst_value(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


def on_granted_devices(cfg: RunConfig) -> RunConfig:
    """`cfg` restricted to the GPUs Ray granted this worker: none granted means CUDA hidden and
    device cpu (Ray leaves CUDA_VISIBLE_DEVICES unset for an actor that asked for no GPU)."""
    gpu_ids = ray.get_gpu_ids()
    hide_gpus(gpu_ids)
    return cfg.with_overrides({"device": granted_device(cfg.device, gpu_ids)})


class BestSoFar:
    """The objective's best value so far and the kimg of its eval, reported beside the current
    value (`fid_best`, `fid_best_kimg`) and saved in every checkpoint, so that a restored trial
    goes on from it."""

    FILE = "objective_best.json"

    def __init__(self, metric: str, mode: str):
        self.metric, self.sign = metric, 1 if mode == "min" else -1
        self.value, self.kimg = worst_value(mode), None

    def update(self, metrics: dict, kimg: float) -> dict:
        """`metrics` with the best so far added."""
        if self.sign * metrics[self.metric] < self.sign * self.value:
            self.value, self.kimg = metrics[self.metric], round(kimg, 3)
        return {**metrics, best_key(self.metric): self.value, best_kimg_key(self.metric): self.kimg}

    def save(self, folder: str) -> None:
        with open(os.path.join(folder, self.FILE), "w") as fh:
            json.dump({"value": self.value, "kimg": self.kimg}, fh)

    def load(self, folder: str) -> None:
        path = os.path.join(folder, self.FILE)
        if os.path.isfile(path):
            with open(path) as fh:
                saved = json.load(fh)
            self.value, self.kimg = saved["value"], saved["kimg"]


def _check_objective(trainer: Trainer, metrics: dict, metric: str) -> None:
    if metric not in metrics:
        raise ValueError(f"objective.metric: {metric!r} is not reported by this run "
                         f"(it reports: {', '.join(metrics)})")
    if not math.isfinite(metrics[metric]):
        raise ValueError(f"objective.metric: {metric} is {metrics[metric]} at kimg {trainer.kimg:g}")


def _report_diverged(report: Callable, kimg: float, metric: str, mode: str, reason: str) -> None:
    report({ResultKey.KIMG.value: round(kimg, 3), metric: worst_value(mode),
            best_key(metric): worst_value(mode),  # a diverged trial ranks last, whatever came before
            ResultKey.DIVERGED.value: 1.0, ResultKey.DIVERGED_REASON.value: reason})


def run_trial(cfg: RunConfig, *, metric: str, mode: str, report: Callable, checkpoint,
              distributed: bool = False, gauges: TrialGauges | None = None, snapshot_every: int = 0,
              replicates: int = 1) -> None:
    """Train `cfg`, resuming from `checkpoint` (a Ray Checkpoint or None), calling
    `report(metrics, checkpoint=...)` at every eval on every rank (rank 0's carry the numbers,
    with the objective's best so far, set the gauges and draw the snapshots). `replicates` > 1: see
    `run_replicates`."""
    if replicates > 1:
        return run_replicates(replicate_configs(cfg, replicates), metric=metric, mode=mode, report=report,
                              checkpoint=checkpoint, gauges=gauges, snapshot_every=snapshot_every)
    trainer = None
    best = BestSoFar(metric, mode)
    costs: dict = {}  # this eval's costs; the first also carries the trial's start

    def on_eval(trainer: Trainer, metrics: dict) -> None:
        if trainer.rank == 0:
            _check_objective(trainer, metrics, metric)
            metrics = best.update(metrics, trainer.kimg)
        t0 = time.perf_counter()
        if trainer.rank == 0 and gauges is not None:
            gauges.update(metrics)
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, CHECKPOINT_FILE)
            trainer.save(path)  # every rank: it gathers the RNG streams
            best.save(tmp)
            t2 = time.perf_counter()
            costs.update(gauges_s=t1 - t0, checkpoint_s=t2 - t1)
            if trainer.rank == 0:  # the only rank that writes the file
                costs["checkpoint_bytes"] = os.path.getsize(path)
            if trainer.rank == 0 and wants_snapshot(trainer, snapshot_every):
                save_snapshot(trainer.context(), os.path.join(tmp, snapshot_name(trainer.kimg)))
                costs["snapshot_s"] = time.perf_counter() - t2
            result = {**metrics, ResultKey.TIMINGS.value: dict(costs)}
            costs.clear()
            t3 = time.perf_counter()
            report(result, checkpoint=tune.Checkpoint.from_directory(tmp) if trainer.rank == 0 else None)
            costs["report_s"] = time.perf_counter() - t3  # sent with the next eval's costs

    try:
        t0, costs["started_at"] = time.perf_counter(), time.time()
        trainer = Trainer(cfg, callbacks=[on_eval], distributed=distributed)
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt_dir:
                trainer.load(os.path.join(ckpt_dir, CHECKPOINT_FILE))
                best.load(ckpt_dir)
        costs.update(trainer_setup_s=time.perf_counter() - t0, trials_in_process=_trials_in_this_process)
        try:
            trainer.train()
        except TrainingDiverged as exc:
            _report_diverged(report, trainer.kimg, metric, mode, str(exc))
    finally:
        # free the trial's memory now, even while a traceback still holds the trainer (ASHA stops a
        # trial by raising SystemExit in it), so the next trial on this GPU share starts clean
        if trainer is not None:
            trainer.close()


class _GlobalStreams:
    """torch's process-wide random streams (CPU, and CUDA when used), which every Trainer seeds and
    checkpoints: replicates sharing one process swap them in and out so that each trains and
    resumes exactly as it would alone."""

    def __init__(self, device: torch.device):
        self.cuda = device if device.type == "cuda" else None
        self.state = self.capture()

    def capture(self):
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.cuda) if self.cuda else None

    def restore(self) -> None:
        torch.set_rng_state(self.state[0])
        if self.cuda:
            torch.cuda.set_rng_state(self.state[1], self.cuda)


def run_replicates(cfgs: list[RunConfig], *, metric: str, mode: str, report: Callable, checkpoint,
                   gauges: TrialGauges | None = None, snapshot_every: int = 0) -> None:
    """Train one configuration's replicates (`cfgs`, one seed each) in lockstep in this process:
    each trains to the next eval in turn, then the trial reports their combined metrics
    (tuning/replicates.py) with ONE checkpoint holding every replicate (replicate-<r>/trainer.pt)
    and replicate 0's sample picture. One replicate diverging makes the trial diverged."""
    trainers: list[Trainer] = []
    best = BestSoFar(metric, mode)  # of the replicates' mean
    try:
        streams = []
        with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext() as ckpt_dir:
            for r, cfg in enumerate(cfgs):
                trainer = Trainer(cfg)
                if ckpt_dir is not None:
                    trainer.load(os.path.join(ckpt_dir, REPLICATE_DIR.format(r), CHECKPOINT_FILE))
                trainers.append(trainer)
                streams.append(_GlobalStreams(trainer.device))
            if ckpt_dir is not None:
                best.load(ckpt_dir)
        lead = trainers[0]
        every = lead.cfg.training.eval_every_kimg
        while lead.cur_nimg < lead.total_nimg:
            until = min((lead.evals + 1) * every, lead.cfg.training.kimg)
            results = []
            for r, (trainer, stream) in enumerate(zip(trainers, streams)):
                stream.restore()
                try:
                    metrics = {}
                    while not metrics and trainer.cur_nimg < trainer.total_nimg:
                        metrics = trainer.train(until_kimg=until)
                except TrainingDiverged as exc:
                    return _report_diverged(report, trainer.kimg, metric, mode, f"replicate {r}: {exc}")
                stream.state = stream.capture()
                _check_objective(trainer, metrics, metric)
                results.append(metrics)
            combined = best.update(combine(results, metric), lead.kimg)
            if gauges is not None:
                gauges.update({k: v for k, v in combined.items() if not isinstance(v, list)})
            with tempfile.TemporaryDirectory() as tmp:
                for r, (trainer, stream) in enumerate(zip(trainers, streams)):
                    os.makedirs(os.path.join(tmp, REPLICATE_DIR.format(r)))
                    stream.restore()  # what this replicate's checkpoint records as torch's streams
                    trainer.save(os.path.join(tmp, REPLICATE_DIR.format(r), CHECKPOINT_FILE))
                best.save(tmp)
                if wants_snapshot(lead, snapshot_every):
                    save_snapshot(lead.context(), os.path.join(tmp, snapshot_name(lead.kimg)))
                report(combined, checkpoint=tune.Checkpoint.from_directory(tmp))
    finally:
        for trainer in trainers:
            trainer.close()


def tune_trial(config: dict, *, base: RunConfig, metric: str, mode: str, threads: int, study: str = "",
                snapshot_every: int = 0, replicates: int = 1) -> None:
    """`config` holds dotted overrides of the study's trial base (what the searcher suggested);
    `replicates` seeds of it train in lockstep (budget.replicates)."""
    global _trials_in_this_process
    _trials_in_this_process += 1
    torch.set_num_threads(threads)
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    run_trial(on_granted_devices(base.with_overrides(config)), metric=metric, mode=mode, report=tune.report,
              checkpoint=tune.get_checkpoint(), gauges=TrialGauges(study, tune.get_context().get_trial_id() or ""),
              snapshot_every=snapshot_every, replicates=replicates)


def ddp_worker(loop_config: dict) -> None:
    """One rank of a multi-worker trial (Ray Train has set up torch.distributed)."""
    import ray.train

    torch.set_num_threads(loop_config["threads"])
    cfg = on_granted_devices(loop_config["base"].with_overrides(loop_config["config"]))
    rank0 = ray.train.get_context().get_world_rank() == 0
    gauges = TrialGauges(loop_config["study"], loop_config["trial_id"]) if rank0 else None
    run_trial(cfg, metric=loop_config["metric"], mode=loop_config["mode"], report=ray.train.report,
              checkpoint=ray.train.get_checkpoint(), distributed=True, gauges=gauges,
              snapshot_every=loop_config["snapshot_every"])

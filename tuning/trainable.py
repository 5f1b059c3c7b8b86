"""The Ray Tune function trainable: one trial = one `smart` Trainer run of the base config plus the
suggested values, reporting every eval's metrics with a checkpoint of the full trainer state.

Lives in the installed package because Ray workers import it by name.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile

import torch
from ray import tune

from smart.config import RunConfig
from smart.loop import Trainer

CHECKPOINT_FILE = "trainer.pt"


def train_trial(config: dict, *, base: dict, metric: str, threads: int) -> None:
    """`config` holds dotted overrides of the base run config (what the searcher suggested)."""
    torch.set_num_threads(threads)
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    cfg = RunConfig.from_dict(base, config)

    def report(trainer: Trainer, metrics: dict) -> None:
        if metric not in metrics:
            raise ValueError(f"objective.metric: {metric!r} is not reported by this run "
                             f"(it reports: {', '.join(metrics)})")
        if not math.isfinite(metrics[metric]):
            raise ValueError(f"objective.metric: {metric} is {metrics[metric]} at kimg {trainer.kimg:g}")
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save(os.path.join(tmp, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    trainer = Trainer(cfg, callbacks=[report])
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            trainer.load(os.path.join(ckpt_dir, CHECKPOINT_FILE))
    trainer.train()

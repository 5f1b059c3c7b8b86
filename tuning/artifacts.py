"""The trained generators kept: a trial's kept checkpoint (its best eval's under objective.reduce:
best, else its latest) becomes the artifact directory `generator/` of the trial's MLflow run:
generator.pt (the EMA generator's weights, run config and progress; smart.checkpoint) and
config.yaml. `python -m smart.generate DIR/generator` samples from it once downloaded
(`mlflow artifacts download -r RUN_ID -a generator -d DIR`). The driver logs it after the Tune run
(for the best search trial; the confirmation stage for each confirmed configuration), never a
trial or the tracking callback, so that a study's runs get one generator each, whatever was
interrupted and resumed.
"""
from __future__ import annotations

import os
import tempfile

from smart.checkpoint import GENERATOR_CHECKPOINT, checkpoint_config, generator_state, read_checkpoint

GENERATOR_ARTIFACT = "generator"
CONFIG_FILE = "config.yaml"


def export_generator(checkpoint_dir: str, out_dir: str) -> None:
    """Write a trainer checkpoint's kept generator into `out_dir` (generator.pt, config.yaml); of a
    replicated trial (budget.replicates > 1), replicate 0's, which trained with the trial's seed."""
    import torch

    from tuning.replicates import REPLICATE_DIR

    first = os.path.join(checkpoint_dir, REPLICATE_DIR.format(0))
    state = read_checkpoint(first if os.path.isdir(first) else checkpoint_dir)
    os.makedirs(out_dir, exist_ok=True)
    torch.save(generator_state(state), os.path.join(out_dir, GENERATOR_CHECKPOINT))
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as fh:
        fh.write(checkpoint_config(state).to_yaml())


def log_generator(tracking_uri: str, run_id: str, checkpoint) -> str:
    """Log the generator of `checkpoint` (a Ray Checkpoint, e.g. a Tune Result's, on any storage)
    to the MLflow run `run_id` as `generator/`; returns its URI, runs:/<run_id>/generator."""
    from mlflow.tracking import MlflowClient

    with checkpoint.as_directory() as ckpt_dir, tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, GENERATOR_ARTIFACT)
        export_generator(ckpt_dir, out)
        MlflowClient(tracking_uri).log_artifacts(run_id, out, GENERATOR_ARTIFACT)
    return f"runs:/{run_id}/{GENERATOR_ARTIFACT}"

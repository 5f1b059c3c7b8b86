"""`--rerun-best` of the report: the best trial's exact logged config and seed trained again as
one run, without Ray, to see how much of its result was luck."""
from __future__ import annotations

import tempfile

from smart.config import ConfigError, RunConfig
from tuning.report_data import StudyRecord
from tuning.tracking import CONFIG_ARTIFACT


def rerun_best(record: StudyRecord) -> dict:
    """Train the best trial's logged config (its seed included) to the kimg it reached."""
    import torch
    import yaml
    from mlflow.tracking import MlflowClient

    from smart.assets import prepare_assets
    from smart.loop import Trainer

    best = record.best
    if best is None:
        raise ConfigError("--rerun-best", "the study has no scored trial")
    with tempfile.TemporaryDirectory() as tmp:
        path = MlflowClient(record.tracking_uri).download_artifacts(best.run_id, CONFIG_ARTIFACT, tmp)
        with open(path, encoding="utf-8") as fh:
            cfg = RunConfig.from_dict(yaml.safe_load(fh))
    torch.set_num_threads(max(1, int(float(record.parent_params.get("study.resources.cpu", 1)))))
    prepare_assets(cfg)
    metrics = Trainer(cfg).train(until_kimg=best.kimg)
    metric = record.parent_params.get("study.metric", record.metric)  # the latest eval's, not the best so far
    return {"trial_id": best.trial_id, "seed": cfg.seed, "kimg": metrics["kimg"], "metric": metric,
            "study": best.metrics[metric], "rerun": metrics[metric]}

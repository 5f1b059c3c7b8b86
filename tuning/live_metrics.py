"""Live trial metrics for the Ray dashboard's Metrics view and Prometheus: gauges set by each trial
at every eval, tagged by study and trial id (Prometheus names get Ray's `ray_` prefix)."""
from __future__ import annotations

import math

from ray.util.metrics import Gauge

TAG_KEYS = ("study", "trial_id")
GAUGES = {  # trainer metric -> (gauge name, description)
    "kimg_per_s": ("smart_trial_kimg_per_s", "training throughput of a trial, thousands of real images per second"),
    "fid": ("smart_trial_fid", "the trial's FID at its last eval"),
    "smart_share": ("smart_trial_smart_share", "share of generator-step time spent in the SMaRt term"),
    "kimg": ("smart_trial_kimg", "training progress of a trial in kimg"),
}


class TrialGauges:
    """One gauge per exported metric; `update` sets the finite ones."""

    def __init__(self, study: str, trial_id: str):
        self.tags = {"study": study, "trial_id": trial_id}
        self.gauges = {key: Gauge(name, description, tag_keys=TAG_KEYS) for key, (name, description) in GAUGES.items()}

    def update(self, metrics: dict) -> None:
        for key, gauge in self.gauges.items():
            value = metrics.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                gauge.set(float(value), tags=self.tags)

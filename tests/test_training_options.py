"""training.ema_rampup and training.deterministic."""
import os

import torch

from smart.config import RunConfig
from smart.loop import Trainer


def test_ema_rampup_starts_the_ema_at_g_and_is_off_by_default():
    """stylegan2-ada's ramp-up: at nimg 0 the half-life is 0, so G_ema becomes G; without it G_ema
    keeps most of its initial weights after one step."""
    base = {"device": "cpu", "training.batch_size": 16, "training.ema_kimg": 5.0}
    for rampup, equal in ((0.05, True), (None, False)):
        trainer = Trainer(RunConfig.from_dict({}, {**base, "training.ema_rampup": rampup}))
        trainer.step()
        same = all(torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters()))
        assert same is equal, rampup


def test_deterministic_flag_sets_torch_and_cudnn_process_wide(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        Trainer(RunConfig.from_dict({}, {"device": "cpu", "training.deterministic": True}))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        Trainer(RunConfig.from_dict({}, {"device": "cpu"}))
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)

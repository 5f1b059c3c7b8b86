"""Training N kimg equals N/2, checkpoint, a fresh process, N/2 more."""
import json
import subprocess
import sys

import pytest

from smart.config import RunConfig
from smart.loop import Trainer

OVERRIDES = {"training.kimg": 16, "training.batch_size": 128, "training.eval_every_kimg": 8,
             "eval.num_samples": 2000, "regularizer.weight": 0.1, "regularizer.interval": 3}
DETERMINISTIC = ["fid", "modes_covered", "hq_ratio", "off_manifold_ratio", "grad_adv_on", "grad_smart_on",
                 "loss_d", "loss_g", "loss_smart", "loss_r1"]

SECOND_HALF = """
import json, sys, torch
from smart.config import RunConfig
from smart.loop import Trainer
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
trainer = Trainer(cfg)
trainer.load(sys.argv[2])
print(json.dumps(trainer.train()))
"""


def test_resume_in_fresh_process_matches_uninterrupted(tmp_path):
    cfg = RunConfig.from_dict({}, OVERRIDES)
    straight = Trainer(cfg).train()

    first = Trainer(cfg)
    first.train(until_kimg=8)
    ckpt = tmp_path / "ckpt.pt"
    first.save(str(ckpt))
    out = subprocess.run([sys.executable, "-c", SECOND_HALF, json.dumps(cfg.to_dict()), str(ckpt)],
                         capture_output=True, text=True, check=True)
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    assert resumed["kimg"] == straight["kimg"]
    for key in DETERMINISTIC:
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-7), key


def test_checkpoint_from_another_config_is_refused(tmp_path):
    trainer = Trainer(RunConfig.from_dict({}, {**OVERRIDES, "training.kimg": 1, "training.eval_every_kimg": 1}))
    trainer.train()
    trainer.save(str(tmp_path / "c.pt"))
    longer = Trainer(RunConfig.from_dict({}, {**OVERRIDES, "training.kimg": 2, "training.eval_every_kimg": 1}))
    longer.load(str(tmp_path / "c.pt"))  # extending a run is fine
    other = Trainer(RunConfig.from_dict({}, {**OVERRIDES, "regularizer.weight": 0.2}))
    with pytest.raises(ValueError, match="regularizer.weight"):
        other.load(str(tmp_path / "c.pt"))


def test_image_run_resumes_exactly_despite_global_rng_noise(tmp_path):
    """StyleGAN2's per-layer noise comes from torch's global stream: checkpoints must carry it."""
    import torch

    from smart.assets import prepare_assets
    from image_helpers import image_config

    cfg = image_config(str(tmp_path / "score"), str(tmp_path / "cache"),
                       generator={"arch": "stylegan2"}, discriminator={"arch": "stylegan2"},
                       eval={"metrics": ["fid"]})
    prepare_assets(cfg)
    straight = Trainer(cfg).train()
    first = Trainer(cfg)
    first.train(until_kimg=0.064)
    first.save(str(tmp_path / "half.pt"))
    torch.randn(1000)  # another process would have a different global stream
    resumed = Trainer(cfg)
    torch.randn(77)
    resumed.load(str(tmp_path / "half.pt"))
    after = resumed.train()
    assert after["kimg"] == straight["kimg"]
    for key in ("fid", "loss_d", "loss_g", "loss_smart"):
        assert after[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-7), key

"""Image training end to end at minimal size: `python -m smart.train` pretrains the declared score
model up front, trains a conditional StyleGAN2 with SMaRt and reports FID; Aurora adds its MoE loss."""
import json
import math
import subprocess
import sys

import yaml

from image_helpers import TINY_PRETRAIN, image_config
from smart.assets import prepare_assets
from smart.config import RunConfig
from smart.loop import Trainer
from smart.metrics import reported_metrics

IMAGE_KEYS = {"kimg", "fid", "fid_samples", "fid_extractor", "grad_adv", "grad_smart", "loss_d", "loss_r1",
              "loss_g", "loss_smart", "kimg_per_s", "smart_share", "sec_per_eval"}
TINY_NETS = {"z_dim": 16, "w_dim": 32, "channel_base": 64, "channel_max": 16, "mapping_layers": 1}


def test_train_cli_pretrains_the_score_model_then_trains_stylegan2(tmp_path):
    score = tmp_path / "score"
    run = {
        "data": {"kind": "digits", "conditional": True},
        "generator": {"arch": "stylegan2", **TINY_NETS},
        "discriminator": {"arch": "stylegan2", "channel_base": 64, "channel_max": 16},
        "score": {"kind": "diffusers", "path": str(score), "pretrain": TINY_PRETRAIN},
        "regularizer": {"weight": 0.1, "interval": 2},
        "training": {"kimg": 0.128, "batch_size": 32, "eval_every_kimg": 0.064},
        "eval": {"metrics": ["fid", "grad_norms"], "num_samples": 200, "grad_samples": 32,
                 "cache_dir": str(tmp_path / "cache")},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "smart.train", str(tmp_path / "run.yaml"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pretraining the score model" in proc.stderr and (score / "smart_score.json").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(set(x) == IMAGE_KEYS for x in lines)
    assert reported_metrics(RunConfig.from_dict(run)) == IMAGE_KEYS
    last = lines[-1]
    assert last["fid_extractor"] == "classifier" and last["fid_samples"] == 200 and last["fid"] > 0
    assert math.isfinite(last["loss_smart"]) and last["grad_smart"] > 0


def test_aurora_adds_its_load_balancing_loss_and_final_eval_uses_more_samples(tmp_path):
    cfg = image_config(str(tmp_path / "score"), str(tmp_path / "cache"),
                       data={"conditional": True},
                       generator={"arch": "aurora", **TINY_NETS, "attn_resolutions": [4], "num_experts": 2},
                       discriminator={"arch": "stylegan2", "channel_base": 64, "channel_max": 16},
                       eval={"final_num_samples": 300, "metrics": ["fid"]})
    prepare_assets(cfg)
    seen = []
    Trainer(cfg, callbacks=[lambda t, m: seen.append(m)]).train()
    assert [m["fid_samples"] for m in seen] == [200, 300]
    assert all(math.isfinite(m["loss_aux"]) and m["loss_aux"] > 0 for m in seen)
    assert all(set(m) == reported_metrics(cfg) for m in seen) and "loss_aux" in seen[0]

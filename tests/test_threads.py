"""`smart` from several threads at once (Optuna's n_jobs, a notebook's executor): trainers for toy
and image configs built concurrently in a fresh interpreter, where nothing is imported yet."""
import json
import os
import subprocess
import sys

from diffusers import DDPMScheduler, UNet2DModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from smart.config import RunConfig
from smart.loop import Trainer

score, cache = sys.argv[1], sys.argv[2]
toy = {"training": {"kimg": 0.128, "batch_size": 32, "eval_every_kimg": 0.128}, "eval": {"metrics": ["modes"]}}
image = {"data": {"kind": "digits"}, "generator": {"arch": "stylegan2", "z_dim": 8, "w_dim": 16, "channel_base": 32,
         "channel_max": 8, "mapping_layers": 1}, "discriminator": {"arch": "stylegan2", "channel_base": 32,
         "channel_max": 8}, "score": {"kind": "diffusers", "path": score},
         "training": {"kimg": 0.064, "batch_size": 16, "eval_every_kimg": 0.064},
         "eval": {"metrics": ["grad_norms"], "grad_samples": 16, "cache_dir": cache}}

def run(raw):
    trainer = Trainer(RunConfig.from_dict(raw))
    return sorted(trainer.train())

with ThreadPoolExecutor(6) as pool:
    results = list(pool.map(run, [toy, image] * 3))
print(json.dumps(results))
"""


def test_trainers_built_from_threads_at_once(tmp_path):
    UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                norm_num_groups=8).save_pretrained(tmp_path / "score" / "unet")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").save_pretrained(
        tmp_path / "score" / "scheduler")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "score"), str(tmp_path / "cache")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 6
    assert all("modes_covered" in r for r in results[0::2]) and all("grad_smart" in r for r in results[1::2])

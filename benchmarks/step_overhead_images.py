"""Step-time overhead of SMaRt for image GANs at 32×32 with a diffusers UNet score model.

    PYTHONPATH=. python benchmarks/step_overhead_images.py [--threads 1] [--kimg 0.5] [--repeats 3]

For StyleGAN2 and the Aurora-style generator (class-conditional, digits upsampled to 32×32), times
training iterations (D step + G step + EMA, through `Trainer.train`) at λ=0 and at λ=0.1 with
k=8 in the paper's `jacobian` mode and the cheaper `sds` mode, and prints the ratio to λ=0
(of process CPU time, which other load on a shared machine does not inflate, and of wall time).
The UNet (block widths 32-64-64, ~1.1M parameters, save_pretrained + the score backend) is
randomly initialised: the timing does not depend on its weights. Configurations are interleaved
and each figure is the median over repeats, since this machine is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smart.config import RunConfig  # noqa: E402
from smart.loop import Trainer  # noqa: E402
from smart.score.pretrain import make_unet  # noqa: E402

NETS = {
    "stylegan2": {"generator": {"arch": "stylegan2", "z_dim": 64, "w_dim": 128, "channel_base": 2048,
                                "channel_max": 64}},
    "aurora": {"generator": {"arch": "aurora", "z_dim": 64, "w_dim": 128, "channel_base": 2048,
                             "channel_max": 64, "attn_resolutions": [8, 16], "num_experts": 4, "num_heads": 2}},
}
MODES = {"λ=0": {"weight": 0.0}, "k=8 jacobian": {"weight": 0.1, "mode": "jacobian"},
         "k=8 sds": {"weight": 0.1, "mode": "sds"}}


def save_unet(root: str, widths) -> str:
    from diffusers import DDPMScheduler

    path = os.path.join(root, "unet32")
    make_unet(32, 1, widths, 1, 11).save_pretrained(os.path.join(path, "unet"))
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").save_pretrained(
        os.path.join(path, "scheduler"))
    return path


def config(arch: str, mode: dict, score: str, batch: int, kimg: float, cache: str) -> RunConfig:
    raw = {"data": {"kind": "digits", "resolution": 32, "conditional": True},
           "discriminator": {"arch": "stylegan2", "channel_base": 2048, "channel_max": 64},
           "score": {"kind": "diffusers", "path": score},
           "regularizer": {"interval": 8, "t_min": 25, "t_max": 35, **mode},
           "training": {"kimg": 1000.0, "batch_size": batch, "eval_every_kimg": 1000.0},
           "eval": {"metrics": ["fid"], "cache_dir": cache}, "device": "cpu", **NETS[arch]}
    return RunConfig.from_dict(raw)


def time_per_step(cfg: RunConfig, kimg: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per training iteration."""
    trainer = Trainer(cfg)
    warm = cfg.training.batch_size * 8 / 1000  # one full SMaRt period, untimed
    trainer.train(until_kimg=warm)
    start_nimg, t0, c0 = trainer.cur_nimg, time.perf_counter(), time.process_time()
    trainer.train(until_kimg=warm + kimg)
    steps = (trainer.cur_nimg - start_nimg) / cfg.training.batch_size
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--kimg", type=float, default=0.512, help="timed kimg per measurement (a multiple of 8 steps)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--archs", default="stylegan2,aurora")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        score = save_unet(tmp, [32, 64, 64])
        archs = args.archs.split(",")
        times = {(a, m): [] for a in archs for m in MODES}
        for _ in range(args.repeats):
            for arch in archs:
                for mode, values in MODES.items():
                    times[(arch, mode)].append(time_per_step(config(arch, values, score, args.batch, args.kimg, tmp),
                                                             args.kimg))
    print(f"\nstep time at 32×32, batch {args.batch}, {args.threads} thread(s), CPU, median of {args.repeats}; "
          "CPU = process CPU time (robust to other load on a shared machine), wall = elapsed")
    print(f"{'generator':<10} {'mode':<14} {'CPU ms':>8} {'wall ms':>8} {'img/s':>7} {'CPU vs λ=0':>11} "
          f"{'wall vs λ=0':>12}")
    for arch in archs:
        base_wall = statistics.median(w for w, _ in times[(arch, "λ=0")])
        base_cpu = statistics.median(c for _, c in times[(arch, "λ=0")])
        for mode in MODES:
            wall = statistics.median(w for w, _ in times[(arch, mode)])
            cpu = statistics.median(c for _, c in times[(arch, mode)])
            print(f"{arch:<10} {mode:<14} {cpu * 1000:8.1f} {wall * 1000:8.1f} {args.batch / wall:7.1f} "
                  f"{cpu / base_cpu:11.3f} {wall / base_wall:12.3f}")


if __name__ == "__main__":
    main()

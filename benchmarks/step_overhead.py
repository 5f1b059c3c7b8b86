"""Cost of the SMaRt term: seconds per G step and per training iteration (D + G + EMA), with the
regularizer off and on at k = 1 and k = 8 in both modes, as ratios to "off".

    python benchmarks/step_overhead.py                 # all cases
    python benchmarks/step_overhead.py --cases toy unet8 --iters 50

Cases: `toy` (ring8, MLP nets, exact score, batch 256); `unet8` (digits 8×8, StyleGAN2 G and D,
a diffusers UNet2DModel score, batch 64); `stylegan2-32` and `aurora-32` (conditional digits
upsampled to 32×32, ~1.1M-parameter UNet, batch 32). The UNets are randomly initialised and saved
through the diffusers score backend: step time does not depend on their weights.

Timed on the real Trainer's public step(), the G phase by the trainer's own per-phase clock. The settings of a case are timed in interleaved blocks of --iters
iterations (round-robin, after a warm-up block each) and each reports its fastest block. Times are
this process's CPU seconds (time.process_time): with --threads 1 that is the work itself, unaffected by
other processes on a shared machine; with more threads or on CUDA use --clock wall.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from smart.config import RunConfig
from smart.loop import Trainer

_IMAGE = {"discriminator.arch": "stylegan2", "discriminator.channel_base": 2048, "discriminator.channel_max": 64,
          "generator.z_dim": 64, "generator.w_dim": 128, "generator.channel_base": 2048,
          "generator.channel_max": 64, "score.kind": "diffusers", "eval.metrics": ["fid"], "device": "cpu"}
CASES: dict[str, dict] = {
    "toy": {"data.kind": "ring8", "training.batch_size": 256},
    "unet8": {**_IMAGE, "data.kind": "digits", "data.resolution": 8, "generator.arch": "stylegan2",
              "training.batch_size": 64, "score.path": "unet-8-1-32,64"},
    "stylegan2-32": {**_IMAGE, "data.kind": "digits", "data.resolution": 32, "data.conditional": True,
                     "generator.arch": "stylegan2", "training.batch_size": 32, "score.path": "unet-32-1-32,64,64"},
    "aurora-32": {**_IMAGE, "data.kind": "digits", "data.resolution": 32, "data.conditional": True,
                  "generator.arch": "aurora", "generator.attn_resolutions": [8, 16], "generator.num_experts": 4,
                  "generator.num_heads": 2, "training.batch_size": 32, "score.path": "unet-32-1-32,64,64"},
}


def materialise(case: dict, root: str) -> dict:
    """Save the case's randomly initialised UNet (named unet-RES-CHANNELS-WIDTHS) under `root`."""
    if "score.path" not in case:
        return case
    from diffusers import DDPMScheduler

    from smart.score.pretrain import make_unet

    _, res, channels, widths = case["score.path"].split("-")
    path = os.path.join(root, case["score.path"])
    if not os.path.exists(path):
        classes = 11 if case.get("data.conditional") else None  # 10 digits + the null class
        make_unet(int(res), int(channels), [int(w) for w in widths.split(",")], 1, classes).save_pretrained(
            os.path.join(path, "unet"))
        DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").save_pretrained(
            os.path.join(path, "scheduler"))
    return {**case, "score.path": path, "eval.cache_dir": root}
SETTINGS = [
    ("off", {"regularizer.weight": 0.0}),
    ("jacobian k=1", {"regularizer.weight": 0.1, "regularizer.interval": 1, "regularizer.mode": "jacobian"}),
    ("jacobian k=8", {"regularizer.weight": 0.1, "regularizer.interval": 8, "regularizer.mode": "jacobian"}),
    ("sds k=1", {"regularizer.weight": 0.1, "regularizer.interval": 1, "regularizer.mode": "sds"}),
    ("sds k=8", {"regularizer.weight": 0.1, "regularizer.interval": 8, "regularizer.mode": "sds"}),
]


def _trainer(case: dict, setting: dict, clock) -> Trainer:
    return Trainer(RunConfig.from_dict({}, {**case, **setting, "training.kimg": 1e6,
                                            "training.eval_every_kimg": 1e6}), clock=clock)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def synced(clock):
    """On CUDA, a clock that first waits for the queued work: time the work, not its launch."""
    if not torch.cuda.is_available():
        return clock

    def read() -> float:
        torch.cuda.synchronize()
        return clock()
    return read


def _block(trainer: Trainer, iters: int, clock) -> tuple[float, float]:
    """Seconds per G phase (the trainer's own per-phase timing) and per full iteration over one block."""
    g_before = trainer.stats.seconds["G"]
    t0 = clock()
    for _ in range(iters):
        trainer.step()
    return (trainer.stats.seconds["G"] - g_before) / iters, (clock() - t0) / iters


def time_case(case: dict, iters: int, repeats: int, clock) -> list[tuple[float, float]]:
    """Fastest (G phase, iteration) seconds per setting, timed round-robin."""
    clock = synced(clock)
    trainers = [_trainer(case, setting, clock) for _, setting in SETTINGS]
    for trainer in trainers:  # warm-up
        _block(trainer, max(iters // 4, 1), clock)
    best = [(float("inf"), float("inf"))] * len(trainers)
    for _ in range(repeats):
        for i, trainer in enumerate(trainers):
            g, it = _block(trainer, iters, clock)
            best[i] = (min(best[i][0], g), min(best[i][1], it))
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"device {'cuda: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}\n")
    print("| case | setting | ms / G step | ratio | ms / iteration (D+G) | ratio | images/s |")
    print("|---|---|---|---|---|---|---|")
    tmp = tempfile.TemporaryDirectory()
    for name in args.cases:
        timings = time_case(materialise(CASES[name], tmp.name), args.iters, args.repeats, CLOCKS[args.clock])
        base_g, base_it = timings[0]
        for (label, _), (g, it) in zip(SETTINGS, timings):
            batch = CASES[name]["training.batch_size"]
            print(f"| {name} | {label} | {g * 1e3:.2f} | {g / base_g:.2f}× | {it * 1e3:.2f} | {it / base_it:.2f}× "
                  f"| {batch / it:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

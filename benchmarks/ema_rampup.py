"""Does stylegan2-ada's EMA ramp-up help the FID of short runs (the first ASHA rungs)? The FID of
G_ema at each eval with `training.ema_rampup` off and on, mean ± std over seeds.

    python benchmarks/ema_rampup.py                                   # ring8, 32 kimg, 3 seeds
    python benchmarks/ema_rampup.py --data digits --kimg 4 --eval-every 1 --seeds 2

Without ramp-up, G_ema's half-life is `training.ema_kimg` from the first step, so after a few kimg
it is still mostly the initial weights; with it, the half-life is min(ema_kimg, rampup · kimg so
far) (Karras et al. 2020). The runs are the plain GAN (λ = 0): the EMA is what is compared.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from smart.config import RunConfig
from smart.loop import Trainer

DATA = {
    "ring8": {"data.kind": "ring8", "eval.metrics": ["fid"], "eval.num_samples": 2000},
    "digits": {"data.kind": "digits", "generator.arch": "stylegan2", "discriminator.arch": "stylegan2",
               "generator.z_dim": 32, "generator.w_dim": 64, "generator.channel_base": 256,
               "generator.channel_max": 32, "discriminator.channel_base": 256, "discriminator.channel_max": 32,
               "optim.r1_gamma": 0.1, "training.batch_size": 64, "eval.metrics": ["fid"],
               "eval.num_samples": 1000},
}


def fid_curve(data: str, rampup: float | None, seed: int, kimg: float, every: float, ema_kimg: float) -> list:
    cfg = RunConfig.from_dict({}, {**DATA[data], "seed": seed, "device": "cpu", "regularizer.weight": 0.0,
                                   "training.kimg": kimg, "training.eval_every_kimg": every,
                                   "training.ema_kimg": ema_kimg, "training.ema_rampup": rampup})
    curve = []
    trainer = Trainer(cfg, callbacks=[lambda t, m: curve.append((m["kimg"], m["fid"]))])
    trainer.train()
    trainer.close()
    return curve


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=list(DATA), default="ring8")
    p.add_argument("--kimg", type=float, default=32)
    p.add_argument("--eval-every", type=float, default=4)
    p.add_argument("--ema-kimg", type=float, default=None, help="default: the run config's training.ema_kimg")
    p.add_argument("--rampups", type=float, nargs="+", default=[0.05])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ema_kimg = args.ema_kimg if args.ema_kimg is not None else RunConfig.from_dict({}).training.ema_kimg
    settings = [None, *args.rampups]
    curves = {r: [fid_curve(args.data, r, s, args.kimg, args.eval_every, ema_kimg) for s in range(args.seeds)]
              for r in settings}
    kimgs = [k for k, _ in curves[None][0]]
    print(f"{args.data}, λ = 0, ema_kimg {ema_kimg:g}, {args.seeds} seeds: FID of G_ema (mean ± std)\n")
    print("| kimg | " + " | ".join(f"ema_rampup {r}" for r in settings) + " |")
    print("|---|" + "---|" * len(settings))
    for i, k in enumerate(kimgs):
        cells = []
        for r in settings:
            values = [c[i][1] for c in curves[r]]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
        print(f"| {k:g} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

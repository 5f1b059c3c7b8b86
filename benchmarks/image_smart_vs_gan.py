"""Does SMaRt help an image GAN here? λ=0 against SMaRt at equal kimg, several seeds, FID mean ± std.

    PYTHONPATH=. python benchmarks/image_smart_vs_gan.py --score runs/score-digits [--kimg 16]
        [--seeds 0,1,2] [--weight 0.1] [--interval 8] [--t-min 25 --t-max 35] [--threads 1]

Class-conditional StyleGAN2 on scikit-learn digits (8×8) with a pretrained digits score model
(pretrained into --score first when missing: 1500 steps), FID with the in-domain classifier
extractor on 2000 EMA samples. On a GPU machine pass e.g. --data mnist5k (32×32).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smart.assets import prepare_assets  # noqa: E402
from smart.config import RunConfig  # noqa: E402
from smart.loop import Trainer  # noqa: E402


def config(args, weight: float, seed: int) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"kind": args.data, "conditional": True},
        "generator": {"arch": "stylegan2", "z_dim": 64, "w_dim": 128},
        "discriminator": {"arch": "stylegan2"},
        "score": {"kind": "diffusers", "path": args.score,
                  "pretrain": {"steps": 1500, "channels": [32, 64] if args.data == "digits" else [32, 64, 64]}},
        "regularizer": {"weight": weight, "interval": args.interval, "t_min": args.t_min, "t_max": args.t_max},
        "optim": {"g_lr": 2e-3, "d_lr": 2e-3, "beta1": 0.0, "r1_gamma": 0.1},
        "training": {"kimg": args.kimg, "batch_size": 64, "eval_every_kimg": args.kimg, "ema_kimg": 1.0},
        "eval": {"metrics": ["fid"], "num_samples": 2000, "cache_dir": args.cache},
        "seed": seed, "device": args.device,
    })


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--score", required=True, help="diffusers score model dir (pretrained here when missing)")
    p.add_argument("--kimg", type=float, default=16.0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--weight", type=float, default=0.1)
    p.add_argument("--interval", type=int, default=8)
    p.add_argument("--t-min", type=int, default=25)
    p.add_argument("--t-max", type=int, default=35)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", default=None, help="eval.cache_dir (default ~/.cache/smart)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    prepare_assets(config(args, args.weight, seeds[0]))
    results: dict[float, list[float]] = {0.0: [], args.weight: []}
    t0 = time.perf_counter()
    for seed in seeds:
        for weight in results:
            fid = Trainer(config(args, weight, seed)).train()["fid"]
            results[weight].append(fid)
            print(f"seed {seed} λ={weight:g}: fid {fid:.2f}  ({time.perf_counter() - t0:.0f}s)", flush=True)
    print(f"\n{args.data}, StyleGAN2 (conditional), {args.kimg:g} kimg, k={args.interval}, "
          f"t∈[{args.t_min}, {args.t_max}], classifier FID on 2000 samples, seeds {args.seeds}")
    print(f"{'λ':>6} {'FID mean':>9} {'± std':>7}   per seed")
    for weight, fids in results.items():
        std = statistics.stdev(fids) if len(fids) > 1 else 0.0
        print(f"{weight:6g} {statistics.mean(fids):9.2f} {std:7.2f}   {', '.join(f'{f:.2f}' for f in fids)}")


if __name__ == "__main__":
    main()

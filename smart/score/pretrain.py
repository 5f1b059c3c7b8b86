"""`python -m smart.score.pretrain --data digits --out DIR [...]`: train a small class-conditional
DDPM (`UNet2DModel` + diffusers' `DDPMScheduler`) on a dataset and save it in the layout the
diffusers score backend loads, so that every study runs offline.

Labels are dropped 10% of the time into an extra "null" class, so one model serves conditional and
unconditional GANs. The directory appears atomically (written to a temp dir, then renamed).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F

from smart.config import ConfigError, RunConfig, parse_assignment
from smart.score.unet import META_FILE

LABEL_DROPOUT = 0.1


def make_unet(resolution: int, channels: int, widths, layers_per_block: int, num_class_embeds: int | None):
    from diffusers import UNet2DModel

    if resolution % 2 ** (len(widths) - 1):
        raise ConfigError("score.pretrain.channels", f"{len(widths)} levels need a resolution divisible by "
                          f"{2 ** (len(widths) - 1)}, got {resolution}")
    return UNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels,
                       block_out_channels=tuple(widths), layers_per_block=layers_per_block,
                       down_block_types=("DownBlock2D",) * len(widths), up_block_types=("UpBlock2D",) * len(widths),
                       norm_num_groups=8, num_class_embeds=num_class_embeds)


def pretrain(cfg: RunConfig, dataset, out: str, log=print) -> dict:
    """Train per `cfg.score` (schedule, num_timesteps, prediction, pretrain.*) on `dataset`; save to `out`."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from smart.score.schedule import DIFFUSERS_NAMES

    s, p = cfg.score, cfg.score.pretrain
    if os.path.exists(out):
        raise ConfigError("--out", f"{out} already exists; choose another directory or remove it")
    prediction = "epsilon" if s.prediction == "auto" else s.prediction
    scheduler = DDPMScheduler(num_train_timesteps=s.num_timesteps, beta_schedule=DIFFUSERS_NAMES[s.schedule],
                              prediction_type=prediction)
    null_class = dataset.num_labels if dataset.num_labels else None
    torch.manual_seed(p.seed)
    unet = make_unet(dataset.resolution, dataset.channels, p.channels, p.layers_per_block,
                     null_class + 1 if null_class is not None else None)
    gen = torch.Generator().manual_seed(p.seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=p.lr, weight_decay=0.0)
    lr_sched = get_cosine_schedule_with_warmup(opt, min(200, p.steps // 10), p.steps)
    ema = EMAModel(unet.parameters(), use_ema_warmup=True, power=2 / 3)
    start, recent = time.perf_counter(), []
    for step in range(p.steps):
        idx = torch.randint(len(dataset), (p.batch_size,), generator=gen)
        x0 = dataset.uint8(idx.numpy()).float() / 127.5 - 1
        labels = None
        if null_class is not None:
            labels = dataset.labels[idx].clone()
            labels[torch.rand(p.batch_size, generator=gen) < LABEL_DROPOUT] = null_class
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, s.num_timesteps, (p.batch_size,), generator=gen)
        target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
        pred = unet(scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample
        loss = F.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        recent = (recent + [float(loss.detach())])[-100:]
        if (step + 1) % max(1, p.steps // 10) == 0 or step + 1 == p.steps:
            log(f"pretrain step {step + 1}/{p.steps} loss {sum(recent) / len(recent):.4f} "
                f"({time.perf_counter() - start:.0f}s)")
    ema.copy_to(unet.parameters())
    meta = {"null_class": null_class, "data": dataset.cache_key(), "steps": p.steps,
            "final_loss": sum(recent) / len(recent) if recent else None, "settings": p.model_dump(),
            "schedule": s.schedule, "prediction": prediction}
    save_atomically(unet, scheduler, meta, out)
    return meta


def save_atomically(unet, scheduler, meta: dict, out: str) -> None:
    tmp = f"{out.rstrip('/')}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(os.path.join(tmp, "unet"))
    scheduler.save_pretrained(os.path.join(tmp, "scheduler"))
    with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
    try:
        os.rename(tmp, out)
    except OSError:  # someone else finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(out):
            raise


def pretrain_config(args) -> RunConfig:
    """A run config carrying the data and score sections the command line describes."""
    data = {"kind": args.data}
    for key in ("path", "resolution", "channels"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    pre = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
           "channels": [int(c) for c in args.widths.split(",")], "layers_per_block": args.layers_per_block}
    raw = {"data": data, "eval": {"metrics": ["fid", "grad_norms"]},
           "score": {"kind": "diffusers", "path": args.out, "schedule": args.schedule,
                     "num_timesteps": args.timesteps, "prediction": args.prediction, "pretrain": pre}}
    return RunConfig.from_dict(raw, dict(parse_assignment(a) for a in args.sets))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError("usage", message)


def _parser():
    p = _Parser(prog="python -m smart.score.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data.kind (digits, mnist5k, fashion_mnist, ...)")
    p.add_argument("--out", required=True, help="new model directory")
    p.add_argument("--path", help="data.path")
    p.add_argument("--resolution", type=int, help="data.resolution")
    p.add_argument("--channels", type=int, help="data.channels (1 or 3)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--widths", default="32,64,64", help="UNet block widths, comma-separated")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--schedule", default="cosine", help="linear or cosine")
    p.add_argument("--timesteps", type=int, default=1000)
    p.add_argument("--prediction", default="epsilon", help="epsilon or v_prediction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="any other run-config key, e.g. data.path=...")
    return p


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        cfg = pretrain_config(args)
        if os.path.exists(cfg.score.path):
            raise ConfigError("--out", f"{cfg.score.path} already exists; choose another directory or remove it")
        from smart.data import build_dataset

        dataset = build_dataset(cfg)
        meta = pretrain(cfg, dataset, cfg.score.path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": cfg.score.path, **meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m smart.train CONFIG.yaml [--set key=value ...] [--out DIR] [--resume]`: one run, no Ray.

CONFIG is a run config, or a study file (its `config:` section is the base run config).
Writes DIR/config.yaml, DIR/metrics.jsonl (one object per eval), DIR/checkpoint.pt (the whole
trainer, replaced atomically at every eval) and DIR/final.json, and prints the final metrics as
one JSON object on the last stdout line. `--resume` continues the run in DIR from its checkpoint
(same config; training.kimg may be extended). `--list-keys` prints every config key as a Markdown
table. Bad input: one line on stderr, exit 2, nothing written.
"""
from __future__ import annotations

import json
import os
import sys
import time

from smart import cli
from smart.assets import prepare_assets
from smart.checkpoint import RUN_CHECKPOINT, read_checkpoint
from smart.config import ConfigError, RunConfig, keys_markdown

METRICS_FILE = "metrics.jsonl"


def _parser():
    p = cli.parser("python -m smart.train", __doc__)
    p.add_argument("config", nargs="?", help="run config or study YAML")
    cli.add_set_option(p)
    p.add_argument("--out", help="output directory (default runs/train/<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--list-keys", action="store_true", help="print every config key as a Markdown table")
    return p


def resolve(args) -> tuple[RunConfig, str]:
    """The run config and the output directory, checked against what the directory already holds."""
    if args.config is None:
        raise ConfigError("usage", "the following arguments are required: config")
    cfg = cli.run_config(args.config, cli.overrides(args.sets))
    if args.resume and not args.out:
        raise ConfigError("--resume", "needs --out DIR, the run to continue")
    out = args.out or os.path.join("runs", "train", f"{cfg.data.kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out} exists and is not a directory")
    holds_run = any(os.path.exists(os.path.join(out, f)) for f in (METRICS_FILE, RUN_CHECKPOINT))
    if holds_run and not args.resume:
        raise ConfigError("--out", f"{out} already holds a run; choose another directory or continue it "
                          "with --resume")
    if args.resume and not os.path.isfile(os.path.join(out, RUN_CHECKPOINT)):
        raise ConfigError("--resume", f"{out} holds no {RUN_CHECKPOINT} to continue")
    return cfg, out


def _resume(trainer, out: str) -> list[str]:
    """Load the checkpoint in `out`; the metric lines of the evals it covers."""
    state = read_checkpoint(os.path.join(out, RUN_CHECKPOINT), "--resume")
    try:
        trainer.load_state_dict(state)
    except ValueError as exc:
        raise ConfigError("--resume", str(exc)) from None
    if trainer.cur_nimg >= trainer.total_nimg:
        raise ConfigError("--resume", f"the run in {out} already reached training.kimg "
                          f"{trainer.cfg.training.kimg:g}; extend it with --set training.kimg=...")
    path = os.path.join(out, METRICS_FILE)
    lines = open(path, encoding="utf-8").read().splitlines() if os.path.isfile(path) else []
    return lines[:trainer.evals]  # a line written after the last checkpoint is trained again


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.list_keys:
        print(keys_markdown())
        return 0
    cfg, out = resolve(args)
    from smart.loop import Trainer  # torch only once the input is known to be good

    prepare_assets(cfg)  # data, score model (pretrained if declared), FID reference statistics
    trainer = Trainer(cfg)
    done = _resume(trainer, out) if args.resume else []

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as fh:
        fh.write(cfg.to_yaml())
    log = open(os.path.join(out, METRICS_FILE), "w", encoding="utf-8")
    log.writelines(line + "\n" for line in done)

    def on_eval(trainer, metrics):
        log.write(json.dumps(cli.jsonable(metrics)) + "\n")
        log.flush()
        trainer.save(os.path.join(out, RUN_CHECKPOINT))
        print(_fmt(metrics), flush=True)

    with log:
        trainer.callbacks.append(on_eval)
        start = f"  resuming at kimg {trainer.kimg:g}" if args.resume else ""
        print(f"run: {out}  device: {trainer.device}  kimg: {cfg.training.kimg:g}{start}", flush=True)
        final = trainer.train()
    with open(os.path.join(out, "final.json"), "w", encoding="utf-8") as fh:
        json.dump({"metrics": cli.jsonable(final), "config": cfg.to_dict()}, fh, indent=2)
    print(json.dumps(cli.jsonable(final)))
    return 0


def main(argv=None) -> int:
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m smart.train CONFIG.yaml [--set key=value ...] [--out DIR]`: one run, no Ray.

CONFIG is a run config, or a study file (its `config:` section is the base run config).
Writes DIR/metrics.jsonl (one object per eval), DIR/config.yaml and DIR/final.json, and prints
the final metrics as one JSON object on the last stdout line. Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from smart.config import ConfigError, RunConfig, load_yaml, parse_assignment


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad input
        raise ConfigError("usage", message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m smart.train", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="run config or study YAML")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted key, e.g. regularizer.weight=0.1 (repeatable)")
    p.add_argument("--out", help="output directory (default runs/train/<data>-<time>)")
    return p


def base_config_of(doc, path: str) -> dict:
    """A run config mapping from a run-config file or a study file."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(path, f"must hold a mapping, got {type(doc).__name__}")
    if "name" in doc and "config" in doc:  # a study file
        return doc["config"] or {}
    return doc


def resolve(argv) -> tuple[RunConfig, str]:
    args = _parser().parse_args(argv)
    overrides = dict(parse_assignment(s) for s in args.sets)
    cfg = RunConfig.from_dict(base_config_of(load_yaml(args.config), args.config), overrides)
    out = args.out or os.path.join("runs", "train", f"{cfg.data.kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(os.path.join(out, "metrics.jsonl")):
        raise ConfigError("--out", f"{out} already holds a run; choose another directory")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out} exists and is not a directory")
    return cfg, out


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _jsonable(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def main(argv=None) -> int:
    try:
        cfg, out = resolve(sys.argv[1:] if argv is None else argv)
        from smart.assets import prepare_assets  # heavy imports only after the input is known to be good
        from smart.loop import Trainer

        prepare_assets(cfg)  # data, score model (pretrained if declared), FID reference statistics
        trainer = Trainer(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as fh:
        fh.write(cfg.to_yaml())
    log = open(os.path.join(out, "metrics.jsonl"), "w", encoding="utf-8")

    def on_eval(trainer, metrics):
        log.write(json.dumps(_jsonable(metrics)) + "\n")
        log.flush()
        print(_fmt(metrics), flush=True)

    with log:
        trainer.callbacks.append(on_eval)
        print(f"run: {out}  device: {trainer.device}  kimg: {cfg.training.kimg:g}", flush=True)
        final = trainer.train()
    with open(os.path.join(out, "final.json"), "w", encoding="utf-8") as fh:
        json.dump({"metrics": _jsonable(final), "config": cfg.to_dict()}, fh, indent=2)
    print(json.dumps(_jsonable(final)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m smart.evaluate CHECKPOINT [--metrics fid,modes] [--num-samples N] [--set key=value ...]`:
evaluate the EMA generator of a saved trainer checkpoint and print one JSON object.

CHECKPOINT is a trainer .pt file, a `smart.train --out` directory (checkpoint.pt) or a study trial's
checkpoint directory (trainer.pt). The nets are rebuilt from the config the checkpoint carries (no
optimizers); --set changes that config first (eval.*, device, ...), --metrics replaces eval.metrics
and --num-samples eval.num_samples. Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import json
import sys

from smart import cli
from smart.checkpoint import checkpoint_config, read_checkpoint
from smart.errors import ConfigError
from smart.metrics import compute_metrics, prepare_metrics
from smart.registry import METRICS


def _parser():
    p = cli.parser("python -m smart.evaluate", __doc__)
    p.add_argument("checkpoint", help="trainer .pt file, or a directory holding checkpoint.pt or trainer.pt")
    p.add_argument("--metrics", help="comma-separated metric names (default: the run's eval.metrics)")
    p.add_argument("--num-samples", type=int, help="generated samples (default: eval.num_samples)")
    cli.add_set_option(p, "eval.cache_dir=/tmp/cache")
    return p


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.num_samples is not None and args.num_samples < 1:
        raise ConfigError("--num-samples", f"must be >= 1, got {args.num_samples}")
    state = read_checkpoint(args.checkpoint)
    cfg = checkpoint_config(state, cli.overrides(args.sets))  # imports the run's plugins
    if args.metrics is not None:
        names = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for name in names:
            METRICS.get(name, "--metrics")
        cfg = cfg.with_overrides({"eval.metrics": names})
    from smart.context import load_context  # torch only once the input is known to be good

    ctx = load_context(state, cfg)
    prepare_metrics(cfg)
    samples = ctx.generate(args.num_samples or cfg.eval.num_samples)
    metrics = {"kimg": round(ctx.kimg, 3), **compute_metrics(cfg.eval.metrics, ctx, samples)}
    print(json.dumps(cli.jsonable(metrics)))
    return 0


def main(argv=None) -> int:
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m smart.generate CHECKPOINT --num N --out FILE.png|FILE.npz [--seed S] [--class C]`:
samples of the EMA generator of a saved trainer checkpoint.

CHECKPOINT is as for `python -m smart.evaluate` (a trainer .pt file, a `smart.train --out`
directory, a study trial's checkpoint directory), or a kept generator: the `generator/` artifact of
a study's MLflow run (`mlflow artifacts download -r RUN_ID -a generator -d DIR`, then DIR/generator)
or its generator.pt. PNG: a grid of images, or for toy data a scatter
over the real distribution; NPZ: `samples`, the generator's output as float32 (images in [-1, 1]),
and for a class-conditional generator `labels` (int64). --class C draws every sample of class C
(default: classes as frequent as in the data). The file appears only when complete; bad input is
one line on stderr, exit 2, and nothing written.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from smart import cli
from smart.checkpoint import checkpoint_config, read_checkpoint
from smart.errors import ConfigError

SUFFIXES = (".png", ".npz")


def _parser():
    p = cli.parser("python -m smart.generate", __doc__)
    p.add_argument("checkpoint", help="trainer or generator .pt file, or a directory holding checkpoint.pt, "
                                      "trainer.pt or generator.pt")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="new .png or .npz file")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents, labels and the nets' noise")
    p.add_argument("--class", dest="label", type=int, help="class of every sample (conditional generators)")
    cli.add_set_option(p, "device=cpu")
    return p


def _check_out(path: str) -> None:
    if not path.lower().endswith(SUFFIXES):
        raise ConfigError("--out", f"{path} must end in .png or .npz")
    if os.path.exists(path):
        raise ConfigError("--out", f"{path} already exists; choose another file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError("--out", f"directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError("--out", f"cannot write to {folder}")


def _check_class(ctx, label: int | None) -> None:
    if label is None:
        return
    classes = ctx.dataset.num_classes
    if classes == 0:
        raise ConfigError("--class", "the generator is unconditional")
    if not 0 <= label < classes:
        raise ConfigError("--class", f"{label} is not a class of this generator (0..{classes - 1})")


def _write(path: str, ctx, samples, labels) -> None:
    """Write to a temporary name beside `path`, then rename: a file there is always whole."""
    from smart.visuals import picture, save_png

    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        if path.lower().endswith(".npz"):
            arrays = {"samples": samples.float().cpu().numpy()}
            if labels is not None:
                arrays["labels"] = labels.cpu().numpy().astype(np.int64)
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            save_png(picture(ctx, samples, f"{samples.shape[0]} samples, kimg {ctx.kimg:g}"), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.num < 1:
        raise ConfigError("--num", f"must be >= 1, got {args.num}")
    _check_out(args.out)
    state = read_checkpoint(args.checkpoint, nets=("G_ema",))
    cfg = checkpoint_config(state, cli.overrides(args.sets))
    import torch  # only once the input is known to be good

    from smart.context import load_context

    ctx = load_context(state, cfg)
    _check_class(ctx, args.label)
    fixed = None if args.label is None else torch.full((args.num,), args.label, dtype=torch.long)
    torch.manual_seed(args.seed)  # the nets' own noise (StyleGAN2)
    samples, labels = ctx.generate(args.num, generator=torch.Generator().manual_seed(args.seed), with_labels=True,
                                   labels=fixed)
    _write(args.out, ctx, samples, labels)
    print(f"wrote {args.num} samples to {args.out}")
    return 0


def main(argv=None) -> int:
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Convert one ADM at the full ImageNet-64 topology (guided-diffusion's 64x64_diffusion.pt flags,
random weights, ~296M parameters) and load it through the score backend; print wall time and peak
resident memory of each step, each measured in its own process.

    python benchmarks/adm_convert.py [--workdir DIR] [--parity]

Needs guided-diffusion-sdk (the test extra) to build the model. `--parity` also compares the
converted model's output with guided-diffusion's on a batch of 2 (fp32, CPU; slow).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAKE = """
import torch
from guided_diffusion.script_util import create_model
torch.manual_seed(0)
model = create_model(64, 192, 3, learn_sigma=True, class_cond=True, attention_resolutions="32,16,8",
                     num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True, dropout=0.1,
                     use_new_attention_order=True)
with torch.no_grad():  # every weight random: OpenAI zero-initialises the output convs
    for name, p in model.named_parameters():
        p.copy_(1 + 0.1 * torch.randn_like(p) if p.dim() == 1 and name.endswith("weight") else
                0.1 * torch.randn_like(p) if p.dim() == 1 else torch.randn_like(p) / p[0].numel() ** 0.5)
torch.save(model.state_dict(), {ckpt!r})
print(sum(p.numel() for p in model.parameters()))
"""

LOAD = """
import torch
from smart.score.unet import DiffusersScore, load_unet_and_scheduler
score = DiffusersScore(*load_unet_and_scheduler({out!r})).freeze()
with torch.no_grad():
    score.eps(torch.randn(1, 3, 64, 64), torch.tensor([30]), torch.tensor([7]))
print(type(score.unet).__name__, sum(p.numel() for p in score.unet.parameters()))
"""

PARITY = """
import torch
from guided_diffusion.script_util import create_model
from smart.score.unet import load_unet_and_scheduler
model = create_model(64, 192, 3, learn_sigma=True, class_cond=True, attention_resolutions="32,16,8",
                     num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True,
                     use_new_attention_order=True)
model.load_state_dict(torch.load({ckpt!r}, weights_only=True))
unet, _ = load_unet_and_scheduler({out!r})
g = torch.Generator().manual_seed(1)
x, t, y = torch.randn(2, 3, 64, 64, generator=g), torch.tensor([30, 700]), torch.tensor([1, 999])
with torch.no_grad():
    ref, got = model.eval()(x, t, y), unet.eval()(x, t, class_labels=y).sample
print(f"{{float((got - ref).abs().max() / ref.std()):.2e}}")
"""


def timed(argv: list[str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS GiB) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{err}")
    return out.strip(), wall, usage.ru_maxrss / 2 ** 20  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="where the checkpoint and the converted model go (default: a temp dir)")
    p.add_argument("--parity", action="store_true", help="also compare outputs at full width")
    args = p.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="adm-bench-")
    ckpt, out = os.path.join(work, "64x64_random.pt"), os.path.join(work, "adm-imagenet64")
    py = sys.executable
    params, make_s, make_gib = timed([py, "-c", MAKE.format(ckpt=ckpt)])
    rows = [("build + save guided-diffusion model", make_s, make_gib)]
    _, convert_s, convert_gib = timed([py, "-m", "smart.score.convert_adm", ckpt, "--preset", "imagenet64",
                                       "--out", out])
    rows.append(("convert (smart.score.convert_adm)", convert_s, convert_gib))
    loaded, load_s, load_gib = timed([py, "-c", LOAD.format(out=out)])
    rows.append(("load through the score backend + one ε (batch 1)", load_s, load_gib))
    print(f"ADM ImageNet-64 topology, {int(params) / 1e6:.1f}M parameters, checkpoint "
          f"{os.path.getsize(ckpt) / 2 ** 30:.2f} GiB; loaded as {loaded}")
    print("| step | wall s | peak RSS GiB |\n| --- | --- | --- |")
    for name, wall, gib in rows:
        print(f"| {name} | {wall:.1f} | {gib:.2f} |")
    if args.parity:
        ratio, parity_s, _ = timed([py, "-c", PARITY.format(ckpt=ckpt, out=out)])
        print(f"full-width parity: max|diffusers - guided-diffusion| / std = {ratio} ({parity_s:.0f} s)")


if __name__ == "__main__":
    main()

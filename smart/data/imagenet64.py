"""Downsampled ImageNet 64×64 (Chrabaszcz et al. 2017, image-net.org "Imagenet64_train_npz"):
train_data_batch_1..10.npz, each with `data` uint8 (N, 12288) = R, G, B planes and 1-based `labels`
in the ILSVRC devkit's class order (map_clsloc.txt; see smart.data.imagenet_classes), which the
dataset declares as its `class_order` (a copy of the devkit's map_clsloc.txt next to the batches
takes precedence over the packaged one).

The image arrays are memory-mapped straight out of the (uncompressed) .npz files, so every trial
shares the page cache instead of loading 15 GB. `python -m smart.data.imagenet64 DIR` rewrites
compressed batches once, uncompressed.
"""
from __future__ import annotations

import glob
import os
import re
import sys

import numpy as np

from smart.data.imagenet_classes import named_order, read_class_map
from smart.data.sources import file_fingerprint, image_dataset, stored_npy_member
from smart.errors import ConfigError

_PATTERN = "train_data_batch_*.npz"
CLASS_MAP_FILE = "map_clsloc.txt"
HOW_TO_GET = ("download Imagenet64_train_npz from https://image-net.org/download-images (Downsampled "
              "ImageNet 64x64), unzip it and set data.path to the folder holding train_data_batch_1..10.npz")


class Shards:
    """Several (N_i, 12288) memory maps seen as one (N, 3, 64, 64) array."""

    def __init__(self, maps: list[np.ndarray], side: int = 64):
        self.maps, self.side = maps, side
        self.starts = np.cumsum([0] + [len(m) for m in maps])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), 3, self.side, self.side)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        shard = np.searchsorted(self.starts, index, side="right") - 1
        out = np.empty((len(index), 3 * self.side * self.side), dtype=np.uint8)
        for s in np.unique(shard):
            hit = shard == s
            out[hit] = self.maps[s][index[hit] - self.starts[s]]
        return out.reshape(len(index), 3, self.side, self.side)


def batch_files(root: str) -> list[str]:
    files = glob.glob(os.path.join(root, _PATTERN))
    return sorted(files, key=lambda p: int(re.search(r"(\d+)\.npz$", p).group(1)))


def imagenet64(cfg):
    root = cfg.data.path
    files = batch_files(root) if os.path.isdir(root) else []
    if not files:
        raise ConfigError("data.path", f"no {_PATTERN} under {root}; {HOW_TO_GET}")
    maps, labels = [], []
    for path in files:
        data = stored_npy_member(path, "data")
        if data is None:
            raise ConfigError("data.path", f"{path} is compressed and cannot be memory-mapped; rewrite the "
                              f"batches once with `python -m smart.data.imagenet64 {root}`")
        if data.ndim != 2 or data.shape[1] != 3 * 64 * 64:
            raise ConfigError("data.path", f"{path}: `data` has shape {data.shape}, expected (N, 12288)")
        maps.append(data)
        with np.load(path) as f:
            labels.append(f["labels"].astype(np.int64) - 1)  # 1-based on disk
    dataset = image_dataset(cfg, Shards(maps), np.concatenate(labels), 1000, "train", file_fingerprint(files))
    class_map = os.path.join(root, CLASS_MAP_FILE)
    dataset.class_order = (read_class_map(class_map, "data.path") if os.path.isfile(class_map)
                           else named_order("ilsvrc-devkit"))
    return dataset


def uncompress(root: str) -> list[str]:
    """Rewrite compressed batch files uncompressed (atomically, one at a time)."""
    done = []
    for path in batch_files(root):
        if stored_npy_member(path, "data") is not None:
            continue
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        done.append(path)
    return done


def main(argv: list[str]) -> int:
    from smart import cli
    from smart.config import ConfigError

    p = cli.parser("python -m smart.data.imagenet64", __doc__)
    p.add_argument("dir", help=f"the folder holding {_PATTERN}")
    args = p.parse_args(argv)
    if not batch_files(args.dir):
        raise ConfigError("dir", f"{args.dir} holds no {_PATTERN}")
    for path in uncompress(args.dir):
        print(f"uncompressed {path}")
    return 0


if __name__ == "__main__":
    from smart import cli
    sys.exit(cli.run(main))

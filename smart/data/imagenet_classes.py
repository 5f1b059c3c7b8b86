"""ImageNet-1k class orders: which WordNet id (wnid) each class index stands for.

Two orders are in use, and they differ (kit fox is class 0 in one and 278 in the other):

- `wnid-sorted`: class i is the i-th smallest wnid. OpenAI's ADM models use it: guided-diffusion's
  `image_datasets.load_data` numbers the classes by `sorted(set(<wnid prefix of each file name>))`.
- `ilsvrc-devkit`: the ILSVRC CLS-LOC devkit's `data/map_clsloc.txt` (`n02119789 1 kit_fox`, ...).
  Downsampled ImageNet 64×64 (Chrabaszcz, Loshchilov, Hutter 2017) uses it: the scripts that made
  the data set (github.com/PatrykChrabaszcz/Imagenet32_Scripts, `utils.py` `get_label_dict` and
  `image2numpy_imagenet_train.py`) write `label = map_clsloc[wnid]`, 1-based, into `labels`.

`imagenet_map_clsloc.txt`, shipped next to this module, is the devkit's map_clsloc.txt (public
metadata), as published in github.com/arthw/imagenet_label (`imagenet_folder_id_class.txt`, commit
144da0c). Checked against two independent sources: the Imagenet32 scripts' comments give validation
images 1, 2, 3 the devkit labels 490, 361, 171, and the common sorted-order validation list
(caffe's val.txt: 65, 970, 230) gives the same three images the sorted indices of the same wnids
(n01751748 sea snake, n09193705 alp, n02105855 Shetland sheepdog).

A data source declares its order as a wnid list (`class_order` attribute); a converted score model
records its own; `label_map` maps one onto the other where labels enter the score model.
"""
from __future__ import annotations

import os
from functools import lru_cache

from smart.config import ConfigError

DEVKIT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_map_clsloc.txt")
ORDERS = ("wnid-sorted", "ilsvrc-devkit")


def read_class_map(path: str, key: str) -> list[str]:
    """wnids by class index from a class-map file: `wnid index [name]` lines (the devkit's
    map_clsloc.txt; indices 1..n or 0..n-1, in any line order) or one wnid per line (line order).
    Problems are ConfigErrors under `key`."""
    try:
        with open(path, encoding="utf-8") as fh:
            rows = [line.split() for line in fh if line.strip()]
    except OSError as exc:
        raise ConfigError(key, f"cannot read class map {path}: {exc.strerror}") from None
    if not rows or any(not r[0].startswith("n") or not r[0][1:].isdigit() for r in rows):
        raise ConfigError(key, f"{path} is not a class map (lines `wnid [index [name]]`, wnids like n01440764)")
    wnids = [r[0] for r in rows]
    if all(len(r) > 1 and r[1].isdigit() for r in rows):
        index = [int(r[1]) for r in rows]
        base = min(index)
        if base not in (0, 1) or sorted(index) != list(range(base, base + len(rows))):
            raise ConfigError(key, f"{path}: class indices are not {base}..{base + len(rows) - 1}, each once")
        wnids = [w for _, w in sorted(zip(index, wnids))]
    if len(set(wnids)) != len(wnids):
        raise ConfigError(key, f"{path}: a wnid appears twice")
    return wnids


@lru_cache(maxsize=None)
def _devkit() -> tuple[str, ...]:
    return tuple(read_class_map(DEVKIT_FILE, "smart.data.imagenet_classes"))


def named_order(name: str) -> list[str]:
    """The 1000 ImageNet wnids in the order `name` (one of ORDERS)."""
    return list(_devkit()) if name == "ilsvrc-devkit" else sorted(_devkit())


def label_map(data_order: list[str], model_order: list[str], key: str) -> list[int]:
    """model index of each data class index; a ConfigError under `key` unless both name the same wnids."""
    if sorted(data_order) != sorted(model_order):
        only = sorted(set(data_order) ^ set(model_order))
        raise ConfigError(key, f"the data's {len(data_order)} classes and the score model's {len(model_order)} "
                          f"are not the same wnids (e.g. {only[:3]})")
    model_index = {w: i for i, w in enumerate(model_order)}
    return [model_index[w] for w in data_order]

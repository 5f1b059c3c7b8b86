"""Real batches of a memory-mapped image dataset (ImageNet 64), gathered ahead of the training
thread by `torch.utils.data.DataLoader` workers into pinned memory, so a GPU is not starved while
the memory map is read.

Deterministic: the index of every batch is drawn by the sampler, in the main process, from the
run's own data stream (a generator seeded from the run seed), exactly as
`dataset.batch(n, that generator)` draws it, so the batches are the same whatever the number of
workers (0 included) and prefetching. Resuming skips the batches already consumed (`skip`).
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

DATA_SEED_OFFSET = 3_000_017  # the data stream of a loader-fed run, apart from the trainer's


class IndexBatches(Sampler):
    """Endless index batches, the ones `ImageDataset.batch(n, generator)` would draw."""

    def __init__(self, num_items: int, batch: int, seed: int, skip: int = 0):
        self.num_items, self.batch, self.seed, self.skip = num_items, batch, seed, skip

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.skip):
            torch.randint(self.num_items, (self.batch,), generator=generator)
        while True:
            yield torch.randint(self.num_items, (self.batch,), generator=generator)


class _Gather:
    """The worker side: uint8 images (and labels) at one batch of indices."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, idx: torch.Tensor):
        labels = self.dataset.labels[idx] if self.dataset.conditional else torch.empty(0, dtype=torch.long)
        return self.dataset.uint8(idx.numpy()), labels


def default_workers(device: torch.device) -> int:
    """Worker processes: a few on CUDA (within the threads the trial was given), none on the CPU,
    where the training thread would only compete with them for the same cores."""
    return min(4, max(1, torch.get_num_threads() // 2)) if device.type == "cuda" else 0


class PrefetchedBatches:
    """`next_batch()` -> (x in [-1, 1] on `device`, labels on `device` or None).
    `PrefetchedBatches(..., skip=n)` resumes after the first n batches (the Trainer counts them)."""

    def __init__(self, dataset, batch: int, seed: int, device: torch.device, *, skip: int = 0,
                 workers: int | None = None):
        self.dataset, self.device = dataset, device
        workers = default_workers(device) if workers is None else workers
        self._loader = DataLoader(_Gather(dataset), batch_size=None,
                                  sampler=IndexBatches(len(dataset), batch, seed + DATA_SEED_OFFSET, skip),
                                  num_workers=workers, pin_memory=device.type == "cuda",
                                  persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                                  # its workers' base seed, else drawn from torch's global stream (the nets' noise)
                                  generator=torch.Generator().manual_seed(seed))
        self._batches = iter(self._loader)

    def next_batch(self):
        images, labels = next(self._batches)
        x = images.to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1
        return x, labels.to(self.device, non_blocking=True) if self.dataset.conditional else None

    def close(self) -> None:
        """Stop the workers now (a trial's end, not the garbage collector's)."""
        self._batches = None
        self._loader = None

"""Image metrics: FID through torch-fidelity with the configured extractor and cached reference
statistics, and the mean gradient norms of L_adv and L_score at generated images."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from smart.data.images import to_uint8
from smart.metrics import register
from smart.metrics.extractors import (ClassifierExtractor, TorchScriptInceptionExtractor, file_hash,
                                      inception_weights, torchscript_weights, train_classifier)
from smart.metrics.fid import SampleDataset, cache_name, default_cache_dir, frechet_distance, reference_statistics

_REF_SEED = 0  # the reference subset never depends on a run's seed
_CHUNK = 256   # images per gradient-norm batch


@dataclass(frozen=True)
class FidSetup:
    """A configured extractor: its torch-fidelity name and layer, weights file and their hash."""

    name: str
    fidelity_name: str
    layer: str
    weights_path: str
    weights_hash: str
    rgb: bool  # Inception reads 3 channels; grey images are repeated
    batch_size: int


def classifier_path(cfg, dataset) -> str:
    return os.path.join(cfg.eval.cache_dir or default_cache_dir(), f"classifier-{dataset.cache_key()}-v2.pt")


def fid_setup(cfg, dataset) -> FidSetup:
    """Resolve eval.fid_extractor to local weights; the in-domain classifier is trained on first use."""
    name = cfg.eval.extractor_for(cfg.data)
    if name == "classifier":
        path = classifier_path(cfg, dataset)
        if not os.path.isfile(path):
            train_classifier(dataset, path)
        return FidSetup(name, ClassifierExtractor.NAME, ClassifierExtractor.LAYER, path, file_hash(path), False, 500)
    if name == "inception-v3-compat":
        path = inception_weights(cfg.eval.extractor_weights)
        return FidSetup(name, "inception-v3-compat", "2048", path, file_hash(path), True, 100)
    path = torchscript_weights(cfg.eval.extractor_weights)
    return FidSetup(name, TorchScriptInceptionExtractor.NAME, TorchScriptInceptionExtractor.LAYER, path,
                    file_hash(path), True, 50)


class _RGB(Dataset):
    """Grey uint8 items repeated to 3 channels for Inception extractors."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        return item.expand(3, -1, -1) if item.shape[0] == 1 else item


def _reference(cfg, dataset, setup: FidSetup):
    """The real images FID compares against, and their statistics' cache name: dataset,
    resolution, split, subset, extractor and a hash of its weights."""
    ref = dataset.reference(cfg.eval.reference_samples, seed=_REF_SEED)
    name = cache_name(f"{dataset.name}-{dataset.resolution}px", dataset.cache_key(), f"split-{dataset.split}",
                      f"n{len(ref)}", f"seed{_REF_SEED}", setup.name, setup.weights_hash, f"rgb{setup.rgb}")
    return (_RGB(ref) if setup.rgb else ref), name


def _fid_kwargs(cfg, setup: FidSetup, cuda: bool) -> dict:
    return dict(extractor=setup.fidelity_name, layer=setup.layer, cache_dir=cfg.eval.cache_dir, cuda=cuda,
                batch_size=setup.batch_size, weights_path=setup.weights_path)


def prepare_image_fid(cfg) -> None:
    """Train the extractor if needed and cache the reference statistics (once per study)."""
    from smart.data import build_dataset

    dataset = build_dataset(cfg)
    setup = fid_setup(cfg, dataset)
    reference, name = _reference(cfg, dataset, setup)
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    reference_statistics(reference, reference_cache=name, **_fid_kwargs(cfg, setup, cuda))


@register("fid", prepare=prepare_image_fid, domain="image")
def image_fid(trainer, samples):
    cfg = trainer.cfg
    setup = fid_setup(cfg, trainer.dataset)
    reference, name = _reference(cfg, trainer.dataset, setup)
    images = to_uint8(samples.cpu())
    generated = SampleDataset(images, images.shape[0])
    fid = frechet_distance(_RGB(generated) if setup.rgb else generated, reference, reference_cache=name,
                           **_fid_kwargs(cfg, setup, trainer.device.type == "cuda"))
    return {"fid": max(fid, 0.0), "fid_samples": images.shape[0], "fid_extractor": setup.name}


@register("grad_norms", domain="image")
def image_gradient_norms(trainer, samples):
    """Mean per-image ‖∇_x L_adv‖ and ‖∇_x L_score‖ (unweighted) at the current G's outputs."""
    gen = torch.Generator().manual_seed(trainer.cfg.seed + 7919)
    n = trainer.cfg.eval.grad_samples
    sums = {"grad_adv": 0.0, "grad_smart": 0.0}
    for start in range(0, n, _CHUNK):
        x, labels = trainer.generate(min(_CHUNK, n - start), generator=gen, ema=False, with_labels=True)
        x.requires_grad_(True)
        (g_adv,) = torch.autograd.grad(torch.nn.functional.softplus(-trainer.D(x, labels)).sum(), x)
        surrogate, _ = trainer.smart.per_sample(x, labels, generator=gen)
        (g_smart,) = torch.autograd.grad(surrogate.sum(), x)
        sums["grad_adv"] += float(g_adv.flatten(1).norm(dim=1).sum())
        sums["grad_smart"] += float(g_smart.flatten(1).norm(dim=1).sum())
    return {k: v / n for k, v in sums.items()}

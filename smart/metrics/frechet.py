"""The `fid` metric: Fréchet distance between features of the EMA generator's samples and of the
real data, through torch-fidelity with the configured extractor and reference statistics cached
once per data set, subset, extractor and extractor weights.

The extractors registered in smart.metrics (FID_EXTRACTORS) resolve here to a `FidSetup`:
`toy-rbf` reads 2-D points (or, for a mixture embedded in R^d, its in-plane coordinates and distance
from the plane) against a fresh exact sample of the toy mixture; the image extractors
read uint8 images against the dataset (or a fixed subset of it)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from smart.data import build_dataset
from smart.data.images import to_uint8
from smart.metrics import default_cache_dir
from smart.metrics.extractors import (ClassifierExtractor, TorchScriptInceptionExtractor, file_hash,
                                      inception_weights, torchscript_weights, train_classifier)
from smart.metrics.fid import SampleDataset, ToyRBFExtractor, frechet_distance, reference_statistics
from smart.metrics.reference import IMAGE_REF_SEED, TOY_REF_SEED, cache_name, statistics_file, toy_reference_name
from smart.registry import FID_EXTRACTORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FidSetup:
    """A configured extractor: its torch-fidelity name and layer, weights file and their hash."""

    name: str
    fidelity_name: str
    layer: str
    weights_path: str | None
    weights_hash: str
    domain: str       # "toy": reads points; "image": reads uint8 images
    rgb: bool         # Inception reads 3 channels; grey images are repeated
    batch_size: int
    gpu: bool = True  # extract on the run's GPU when it has one


# ---- the registered extractors ------------------------------------------------------------------
def toy_rbf(cfg, dataset) -> FidSetup:
    return FidSetup("toy-rbf", ToyRBFExtractor.NAME, ToyRBFExtractor.LAYER, None, ToyRBFExtractor.weights_hash(),
                    "toy", rgb=False, batch_size=1000, gpu=False)


def classifier_path(cfg, dataset) -> str:
    return os.path.join(cfg.eval.cache_dir or default_cache_dir(), f"classifier-{dataset.cache_key()}-v2.pt")


def classifier(cfg, dataset) -> FidSetup:
    """The in-domain classifier, trained on first use."""
    path = classifier_path(cfg, dataset)
    if not os.path.isfile(path):
        train_classifier(dataset, path)
    return FidSetup("classifier", ClassifierExtractor.NAME, ClassifierExtractor.LAYER, path, file_hash(path),
                    "image", rgb=False, batch_size=500)


def inception_v3_compat(cfg, dataset) -> FidSetup:
    path = inception_weights(cfg.eval.extractor_weights)
    return FidSetup("inception-v3-compat", "inception-v3-compat", "2048", path, file_hash(path), "image",
                    rgb=True, batch_size=100)


def inception_torchscript(cfg, dataset) -> FidSetup:
    path = torchscript_weights(cfg.eval.extractor_weights)
    return FidSetup("inception-torchscript", TorchScriptInceptionExtractor.NAME, TorchScriptInceptionExtractor.LAYER,
                    path, file_hash(path), "image", rgb=True, batch_size=50)


def fid_setup(cfg, dataset) -> FidSetup:
    """eval.fid_extractor resolved to local weights."""
    return FID_EXTRACTORS.get(cfg.eval.extractor_for(cfg.data)).load()(cfg, dataset)


# ---- reference and generated sets ----------------------------------------------------------------
class _RGB(Dataset):
    """Grey uint8 items repeated to 3 channels for Inception extractors."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        return item.expand(3, -1, -1) if item.shape[0] == 1 else item


def reference_set(cfg, dataset, setup: FidSetup) -> tuple[Dataset, str]:
    """The real samples FID compares against, and their statistics' cache name (data, size, subset
    or seed, extractor and a hash of its weights)."""
    if setup.domain == "toy":
        n = cfg.eval.num_samples
        name = toy_reference_name(cfg.data.kind, dataset.cache_key(), n, setup.weights_hash)
        make = lambda: toy_coordinates(dataset, dataset.sample(n, torch.Generator().manual_seed(TOY_REF_SEED)))  # noqa: E731
        return SampleDataset(make, n), name
    ref = dataset.reference(cfg.eval.reference_samples, seed=IMAGE_REF_SEED)
    name = cache_name(f"{dataset.name}-{dataset.resolution}px", dataset.cache_key(), f"split-{dataset.split}",
                      f"n{len(ref)}", f"seed{IMAGE_REF_SEED}", setup.name, setup.weights_hash, f"rgb{setup.rgb}")
    return (_RGB(ref) if setup.rgb else ref), name


def toy_coordinates(dataset, samples: torch.Tensor) -> torch.Tensor:
    """What toy-rbf reads of toy samples: the dataset's `fid_coordinates` where it has them."""
    to_coordinates = getattr(dataset, "fid_coordinates", None)
    return samples if to_coordinates is None else to_coordinates(samples.cpu())


def generated_set(samples: torch.Tensor, setup: FidSetup) -> Dataset:
    if setup.domain == "toy":
        return SampleDataset(samples.cpu(), samples.shape[0])
    images = to_uint8(samples.cpu())
    generated = SampleDataset(images, images.shape[0])
    return _RGB(generated) if setup.rgb else generated


def fid_kwargs(cfg, setup: FidSetup, cuda: bool) -> dict:
    """torch-fidelity's settings for this extractor."""
    return dict(extractor=setup.fidelity_name, layer=setup.layer, cache_dir=cfg.eval.cache_dir,
                cuda=cuda and setup.gpu, batch_size=setup.batch_size, weights_path=setup.weights_path)


# ---- the metric -----------------------------------------------------------------------------------
def prepare_fid(cfg) -> None:
    """Train the extractor if needed and cache the reference statistics (once per study)."""
    dataset = build_dataset(cfg)
    setup = fid_setup(cfg, dataset)
    reference, name = reference_set(cfg, dataset, setup)
    if not os.path.isfile(statistics_file(cfg.eval.cache_dir, name, setup.fidelity_name, setup.layer)):
        log.info("computing FID reference statistics %s (%d samples, %s)", name, len(reference), setup.name)
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    reference_statistics(reference, reference_cache=name, **fid_kwargs(cfg, setup, cuda))


def fid(ctx, samples) -> dict:
    cfg = ctx.cfg
    setup = fid_setup(cfg, ctx.dataset)
    reference, name = reference_set(cfg, ctx.dataset, setup)
    if setup.domain == "toy":
        samples = toy_coordinates(ctx.dataset, samples)
    value = frechet_distance(generated_set(samples, setup), reference, reference_cache=name,
                             **fid_kwargs(cfg, setup, ctx.device.type == "cuda"))
    if setup.domain == "toy":
        return {"fid": max(value, 0.0)}
    return {"fid": max(value, 0.0), "fid_samples": samples.shape[0], "fid_extractor": setup.name}

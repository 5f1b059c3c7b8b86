"""Score pretraining resumes from its own checkpoint: interrupted after its first checkpoint and
rerun, it writes the same model as an uninterrupted run (and removes the partial state)."""
import os

import pytest
import torch
from diffusers import UNet2DModel

from smart.config import RunConfig
from smart.data import build_dataset
from smart.score.pretrain import partial_path, pretrain

SETTINGS = {"score.kind": "diffusers", "score.path": "unused", "eval.metrics": [], "data.kind": "digits",
            "score.pretrain.steps": 6, "score.pretrain.batch_size": 8, "score.pretrain.channels": [8, 16],
            "score.pretrain.checkpoint_every": 3, "device": "cpu"}


class Interrupted(RuntimeError):
    pass


class FailsAfter:
    """The real dataset, whose batch reads fail after `n` of them (a killed process)."""

    def __init__(self, dataset, n):
        self._dataset, self._left = dataset, n

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def __len__(self):
        return len(self._dataset)

    def uint8(self, index):
        if self._left == 0:
            raise Interrupted
        self._left -= 1
        return self._dataset.uint8(index)


def test_interrupted_pretraining_resumes_to_the_same_model(tmp_path):
    cfg = RunConfig.from_dict({}, SETTINGS)
    dataset = build_dataset(cfg)
    pretrain(cfg, dataset, str(tmp_path / "straight"))
    out = str(tmp_path / "resumed")
    with pytest.raises(Interrupted):
        pretrain(cfg, FailsAfter(dataset, 4), out)
    assert os.path.isfile(partial_path(out)) and not os.path.exists(out)
    pretrain(cfg, dataset, out)
    assert not os.path.exists(partial_path(out))
    a = UNet2DModel.from_pretrained(str(tmp_path / "straight" / "unet"))
    b = UNet2DModel.from_pretrained(os.path.join(out, "unet"))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name

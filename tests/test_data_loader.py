"""Memory-mapped image data reaches training through DataLoader workers, deterministically: the
same batches as `dataset.batch` draws from the same seeded stream, whatever the workers, and a
resumed run continues the sequence."""
import numpy as np
import pytest
import torch

from image_helpers import image_config
from diffusers import DDPMScheduler

from smart.config import RunConfig
from smart.data import build_dataset
from smart.data.loader import DATA_SEED_OFFSET, PrefetchedBatches
from smart.loop import Trainer
from smart.score.pretrain import make_unet


def _imagenet64(root, n=40):
    rng = np.random.default_rng(0)
    np.savez(root / "train_data_batch_1.npz", labels=(np.arange(n) % 10) + 1,
             data=rng.integers(0, 256, (n, 12288), dtype=np.uint8))
    return {"data": {"kind": "imagenet64", "path": str(root), "conditional": True, "resolution": 8},
            "generator": {"arch": "stylegan2"}, "score": {"kind": "diffusers", "path": str(root / "score")},
            "eval": {"metrics": []}}


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_are_the_datasets_own_draws(tmp_path, workers):
    dataset = build_dataset(RunConfig.from_dict(_imagenet64(tmp_path)))
    assert dataset.memory_mapped
    gen = torch.Generator().manual_seed(5 + DATA_SEED_OFFSET)
    expected = [dataset.batch(6, gen) for _ in range(5)]
    loader = PrefetchedBatches(dataset, 6, 5, torch.device("cpu"), workers=workers)
    got = [loader.next_batch() for _ in range(5)]
    loader.close()
    for (x, y), (ex, ey) in zip(got, expected):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    resumed = PrefetchedBatches(dataset, 6, 5, torch.device("cpu"), skip=3, workers=workers)
    assert torch.equal(resumed.next_batch()[0], expected[3][0])
    resumed.close()


def test_a_memory_mapped_run_resumes_bit_for_bit(tmp_path):
    cfg = image_config(str(tmp_path / "score"), str(tmp_path / "cache"), generator={"arch": "stylegan2"},
                       discriminator={"arch": "stylegan2"}, eval={"metrics": []})
    cfg = cfg.with_overrides({"data.kind": "imagenet64", "data.path": str(tmp_path), "data.conditional": True,
                              "score.num_timesteps": 1000,
                              "data.resolution": 8, "data.channels": 1, "training.batch_size": 8})
    _imagenet64(tmp_path)
    unet_dir = tmp_path / "score"  # a random score UNet: bit-equality does not need a trained one
    make_unet(8, 1, [8, 16], 1, 11).save_pretrained(str(unet_dir / "unet"))
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(str(unet_dir / "scheduler"))
    straight = Trainer(cfg)
    for _ in range(4):
        straight.step()
    first = Trainer(cfg)
    for _ in range(2):
        first.step()
    first.save(str(tmp_path / "c.pt"))
    resumed = Trainer(cfg)
    resumed.load(str(tmp_path / "c.pt"))
    for _ in range(2):
        resumed.step()
    assert resumed.data_batches == straight.data_batches == 4
    for a, b in zip(resumed.G.parameters(), straight.G.parameters()):
        assert torch.equal(a, b)
    for t in (straight, first, resumed):
        t.close()

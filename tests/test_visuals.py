"""The pictures (image grid, on/off-manifold scatter, snapshots) and the SMaRt share of G-step time."""
import math

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image

from smart.config import RunConfig
from smart.loop import Trainer
from smart.metrics.modes import OFF_MANIFOLD_STD, ON_MANIFOLD_STD
from smart.visuals import (NEAR_COLOUR, OFF_COLOUR, ON_COLOUR, image_grid, manifold_scatter, save_png,
                           save_snapshot)

SHORT = {"training.kimg": 1.0, "training.batch_size": 128, "training.eval_every_kimg": 1.0,
         "eval.num_samples": 200, "eval.metrics": ["modes"]}


def test_image_grid_places_images_in_rows_and_maps_range():
    images = torch.full((6, 1, 4, 4), -1.0)
    images[1] = 1.0  # second image white
    grid = image_grid(images, nrow=3)
    # 2 rows x 3 columns of 4x4 cells with padding 2: (2*4 + 3*2) x (3*4 + 4*2)
    assert grid.shape == (14, 20, 3) and grid.dtype == np.uint8
    assert (grid[2:6, 2:6] == 0).all()            # first image: black
    assert (grid[2:6, 8:12] == 255).all()         # second: white
    colour = image_grid(torch.zeros(2, 3, 5, 5), nrow=2)
    assert colour.shape == (9, 16, 3) and (colour[2:7, 2:7] == 128).all()
    with pytest.raises(ValueError, match="expected"):
        image_grid(torch.zeros(2, 2, 5, 5))


def test_manifold_scatter_colours_points_by_distance(tmp_path):
    generated = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    dist = torch.tensor([ON_MANIFOLD_STD - 0.1, (ON_MANIFOLD_STD + OFF_MANIFOLD_STD) / 2, OFF_MANIFOLD_STD + 1])
    fig = manifold_scatter(generated, torch.randn(50, 2), dist, "t")
    collections = fig.axes[0].collections  # real, on, near, off
    colours = [tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in collections[1:]]
    expected = [tuple(np.round(to_rgb(c), 3)) for c in (ON_COLOUR, NEAR_COLOUR, OFF_COLOUR)]
    assert colours == expected
    assert [len(c.get_offsets()) for c in collections] == [50, 1, 1, 1]
    assert [t.get_text().split()[-1] for t in fig.axes[0].get_legend().get_texts()][1:] == ["33%"] * 3
    save_png(fig, str(tmp_path / "s.png"))
    assert Image.open(tmp_path / "s.png").format == "PNG"


def test_snapshot_uses_fixed_latents(tmp_path):
    trainer = Trainer(RunConfig.from_dict({}, SHORT))
    save_snapshot(trainer.context(), str(tmp_path / "a.png"))
    save_snapshot(trainer.context(), str(tmp_path / "b.png"))
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert a.shape[2] in (3, 4) and (a == b).all()
    trainer.train()
    save_snapshot(trainer.context(), str(tmp_path / "c.png"))
    assert not (np.asarray(Image.open(tmp_path / "c.png")) == a).all()


@pytest.mark.parametrize("phase", ["joint", "separate"])
def test_smart_share_is_a_fraction(phase):
    torch.set_num_threads(1)
    off = Trainer(RunConfig.from_dict({}, {**SHORT, "regularizer.weight": 0.0})).train()
    assert off["smart_share"] == 0.0
    every = Trainer(RunConfig.from_dict({}, {**SHORT, "regularizer.weight": 0.1, "regularizer.interval": 1,
                                             "regularizer.phase": phase})).train()
    sparse = Trainer(RunConfig.from_dict({}, {**SHORT, "regularizer.weight": 0.1, "regularizer.interval": 8,
                                              "regularizer.phase": phase})).train()
    assert 0.0 < sparse["smart_share"] < every["smart_share"] < 1.0
    assert not math.isnan(every["kimg_per_s"])

"""Pictures of a generator, for people comparing runs: a sample grid for images, and for the toy
mixtures a scatter of generated over real points coloured by distance to the real manifold.

`save_snapshot` draws the same latents (and classes) at every call, so that a run's frames and
the frames of different runs compare sample by sample. Both read an evaluation context
(smart.context), never a trainer. Matplotlib's Agg backend: no display."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from smart.metrics.modes import OFF_MANIFOLD_STD, ON_MANIFOLD_STD  # noqa: E402

SNAPSHOT_SEED = 20_240_721  # the fixed latents of every snapshot, whatever the run's seed
SCATTER_POINTS = 2000
GRID_IMAGES = 64

ON_COLOUR, NEAR_COLOUR, OFF_COLOUR, REAL_COLOUR = "#1a9850", "#fdae61", "#d73027", "#bdbdbd"


def image_grid(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] -> one (H', W', 3) uint8 picture, `nrow` images a row."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1|3, H, W) images, got shape {tuple(images.shape)}")
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5)
    grid = make_grid(x, nrow=nrow, padding=2, pad_value=255.0)  # 1 channel is repeated to 3
    return grid.round().to(torch.uint8).permute(1, 2, 0).numpy()


def manifold_scatter(generated: torch.Tensor, real: torch.Tensor, distance_in_std: torch.Tensor,
                     title: str = "") -> plt.Figure:
    """2-D generated points over real ones, coloured on (≤ ON_MANIFOLD_STD from a mode), near, or
    off (> OFF_MANIFOLD_STD) the real manifold, with the shares in the legend."""
    g, r = generated.detach().cpu().float().numpy(), real.detach().cpu().float().numpy()
    dist = distance_in_std.detach().cpu().numpy()
    on, off = dist <= ON_MANIFOLD_STD, dist > OFF_MANIFOLD_STD
    near = ~on & ~off
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=90)
    ax.scatter(r[:, 0], r[:, 1], s=3, c=REAL_COLOUR, label="real", linewidths=0)
    for mask, colour, name in ((on, ON_COLOUR, f"on (≤{ON_MANIFOLD_STD:g} std)"),
                               (near, NEAR_COLOUR, "near"), (off, OFF_COLOUR, f"off (>{OFF_MANIFOLD_STD:g} std)")):
        ax.scatter(g[mask, 0], g[mask, 1], s=3, c=colour, linewidths=0,
                   label=f"{name} {mask.mean():.0%}")
    reach = float(np.abs(r).max()) * 1.3
    ax.set(xlim=(-reach, reach), ylim=(-reach, reach), aspect="equal", xticks=[], yticks=[])
    outside = int((np.abs(g) > reach).any(axis=1).sum())
    ax.set_title(title + (f"  ({outside} outside the view)" if outside else ""), fontsize=9)
    ax.legend(loc="lower right", fontsize=7, markerscale=3, framealpha=0.8)
    fig.tight_layout()
    return fig


def save_png(picture, path: str) -> None:
    """A uint8 array or a matplotlib figure (closed afterwards) as a PNG file."""
    if isinstance(picture, plt.Figure):
        picture.savefig(path, format="png")
        plt.close(picture)
    else:
        Image.fromarray(picture).save(path, format="PNG", optimize=True)


def picture(ctx, samples: torch.Tensor, title: str = ""):
    """Samples as a picture: a grid of images, or toy points over real ones coloured by their
    distance to the real manifold (the same real points, drawn from the snapshot seed, every time)."""
    if samples.dim() == 4:
        return image_grid(samples, nrow=max(1, math.ceil(math.sqrt(samples.shape[0]))))
    samples = samples.cpu()
    real = ctx.dataset.sample(SCATTER_POINTS, torch.Generator().manual_seed(SNAPSHOT_SEED))
    dist, _ = ctx.dataset.distance_in_std(samples)
    to_plane = getattr(ctx.dataset, "to_plane", None)  # a plane in R^d: drawn in its own coordinates
    if to_plane is not None:
        samples, real = to_plane(samples)[0], to_plane(real)[0]
    return manifold_scatter(samples, real, dist, title)


def save_snapshot(ctx, path: str) -> None:
    """The EMA generator of an evaluation context, on the fixed snapshot latents, as a PNG."""
    generator = torch.Generator().manual_seed(SNAPSHOT_SEED)
    count = GRID_IMAGES if len(ctx.dataset.shape) == 3 else SCATTER_POINTS
    save_png(picture(ctx, ctx.generate(count, generator=generator), f"kimg {ctx.kimg:g}"), path)

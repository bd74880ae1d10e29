"""The `render` stage's library: latent traversals (grid + GIF) for each generator, the VAE's
2-D manifold, and GAN vs VAE side by side (:func:`render_all`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pydantic import Field  # noqa: E402

from genlab.params import StrictModel  # noqa: E402
from genlab.grids import make_grid, save_gif, save_grid  # noqa: E402
from genlab.render.traversal import decode_path, path_labels, traversal_path  # noqa: E402
from genlab.runtime import save_figure  # noqa: E402


class RenderParams(StrictModel):
    points: int = Field(10, ge=2, le=100)
    steps: int = Field(100, ge=0, le=1000)
    interpolation: Literal["linear", "slerp"] = "linear"
    gif_fps: int = Field(25, ge=1, le=100)
    compare_n: int = Field(64, ge=1, le=400)  # samples per model in the GAN vs VAE figure


def traversal_points(model: Any, n: int, *, seed: int, real: np.ndarray | None = None,
                     real_labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The points a traversal visits: N(0, I) draws (the GAN); or, when `real` images are
    given (the VAE), the encoded means of `n` random ones, as in the seed report. Labels for
    conditional models: the real labels, else random classes."""
    gen = torch.Generator().manual_seed(seed)
    labels = None
    if real is not None:
        idx = torch.randperm(len(real), generator=gen)[:n].numpy()
        x = torch.from_numpy(real[idx]).float() / 255.0
        dev = next(model.parameters()).device
        if getattr(model, "num_classes", None):
            labels = torch.from_numpy(real_labels[idx]).long()
        with torch.no_grad():
            mu, _ = model.encode(x.to(dev), labels.to(dev) if labels is not None else None)
        return mu.float().cpu(), labels
    z = torch.randn(n, model.z_dim, generator=gen)
    if getattr(model, "num_classes", None):
        labels = torch.randint(0, model.num_classes, (n,), generator=gen)
    return z, labels


def render_traversal(name: str, model: Any, cfg: RenderParams, *, seed: int, device: Any, out_dir: Path,
                     real: np.ndarray | None = None, real_labels: np.ndarray | None = None) -> dict[str, float]:
    """`<name>_traversal.png` (all P + (P-1)*S images, one segment per row) and `<name>_traversal.gif`."""
    points, labels = traversal_points(model, cfg.points, seed=seed, real=real, real_labels=real_labels)
    z = traversal_path(points, cfg.steps, cfg.interpolation)
    images = decode_path(model, z, path_labels(labels, cfg.steps), device=device)
    # one row per segment start: row i holds point i and the steps towards point i+1
    save_grid(images, out_dir / f"{name}_traversal.png", ncols=cfg.steps + 1, scale=1, pad=1)
    save_gif(images, out_dir / f"{name}_traversal.gif", fps=cfg.gif_fps)
    step_change = np.abs(np.diff(images.astype(np.float32), axis=0)).mean()
    return {f"render/{name}/traversal_images": float(len(images)),
            f"render/{name}/mean_step_change": float(step_change)}


def comparison_figure(samples: dict[str, np.ndarray], path: Path, n: int) -> Path:
    """The same number of samples from each generator, side by side."""
    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4.6))
    for ax, (name, images) in zip(np.atleast_1d(axes), samples.items()):
        grid = make_grid(images[:n])
        ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{name.upper()}: {min(n, len(images))} samples")
        ax.axis("off")
    fig.suptitle("GAN vs VAE (random samples from the prior, same seed for both)")
    return save_figure(fig, path, dpi=120)


def render_all(cfg: RenderParams, *, seed: int, device: Any, out_dir: Path, models: dict[str, Path],
               samples: dict[str, Path], data_dir: Path) -> dict[str, float]:
    """The `render` stage: a traversal (grid + GIF) per generator, the VAE's 2-D manifold when
    its latent space is 2-D, and the side-by-side figure of the generated `samples`.

    The VAE walks between encoded test images of `data_dir`, the GAN between prior draws.
    """
    from genlab.data.arrays import load_split
    from genlab.generate import load_generator
    from genlab.render.vae_figures import plot_manifold

    test_images, test_labels = load_split(data_dir, "test")
    stats: dict[str, float] = {}
    for name, path in models.items():
        model = load_generator(name, path, device)
        encoded = name == "vae"
        stats.update(render_traversal(name, model, cfg, seed=seed, device=device, out_dir=out_dir,
                                      real=test_images if encoded else None,
                                      real_labels=test_labels if encoded else None))
        if name == "vae" and model.z_dim == 2:  # the 2-D manifold, collected beside the traversals
            plot_manifold(model, out_dir / "vae_manifold.png")
    comparison_figure({name: np.load(path) for name, path in samples.items()}, out_dir / "gan_vs_vae.png", cfg.compare_n)
    return stats

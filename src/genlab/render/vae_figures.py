"""Figures of a trained VAE: reconstructions, prior samples, the 2-D manifold, the latent
scatter of encoded test images, and the conditional class grid.

Used by the `train_vae` stage (end-of-training figures) and the `render` stage (the manifold
beside the traversals). Models follow the VAE contract of :mod:`genlab.models.vae`:
``encode(x, labels) -> (mu, logvar)``, ``decode(z, labels)`` in [0, 1], ``sample_latent``,
``z_dim``, ``num_classes``, ``conditional``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from genlab.errors import InputError
from genlab.generate import decode_uint8  # noqa: E402
from genlab.grids import save_grid  # noqa: E402
from genlab.runtime import save_figure  # noqa: E402

ENCODE_BATCH = 1000  # test images encoded per forward pass


def _to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div(255.0)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> (rows*H', nrow*W', C) for imshow, 1 px padding."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()  # (C, H', W') -> (H', W', C)


def _show(ax, img: np.ndarray) -> None:
    ax.imshow(img[..., 0] if img.shape[-1] == 1 or np.allclose(img[..., 0], img[..., 1]) else img,
              cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")


@torch.no_grad()
def plot_reconstructions(model: Any, x_uint8: torch.Tensor, labels: torch.Tensor | None, path: Path, title: str) -> Path:
    """Top row: fixed test images; bottom row: the decoded posterior means (z = mu)."""
    was_training = model.training
    model.eval()
    x = _to_unit(x_uint8)
    mu, _ = model.encode(x, labels)
    recon = model.decode(mu, labels)
    model.train(was_training)
    return reconstruction_figure(x, recon, path, title)


def reconstruction_figure(x: torch.Tensor, recon: torch.Tensor, path: Path, title: str) -> Path:
    """Top row: images `x`; bottom row: their reconstructions (float (N, C, H, W) in [0, 1])."""
    fig, ax = plt.subplots(figsize=(max(4, x.shape[0] * 0.5), 1.4))
    _show(ax, _grid(torch.cat([x.float().cpu(), recon.float().cpu()]), nrow=x.shape[0]))
    ax.set_title(f"VAE reconstructions, {title} (top: test images, bottom: decoded means)", fontsize=8)
    return save_figure(fig, path, dpi=120)


def manifold_latents(steps: int) -> torch.Tensor:
    """(steps*steps, 2) latents over the prior's quantiles 0.05..0.95, row-major as drawn:
    z[0] grows to the right, z[1] grows upwards (the top row has the largest z[1])."""
    q = torch.linspace(0.05, 0.95, steps, dtype=torch.float64)
    vals = torch.distributions.Normal(0.0, 1.0).icdf(q).float()  # prior quantiles
    z1, z2 = torch.meshgrid(vals, vals.flip(0), indexing="xy")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


@torch.no_grad()
def plot_manifold(model: Any, path: Path, steps: int = 20, label: int | None = None, scale: int = 2) -> Path:
    """The 2-D manifold (z_dim 2): a steps x steps PNG grid, pixel-exact (1 px white padding,
    nearest-neighbour upscaled by `scale`), of the decoded :func:`manifold_latents`; a
    conditional model decodes every cell with class `label` (default 0)."""
    if model.z_dim != 2:
        raise InputError(f"the manifold needs a 2-D latent space, the model has z_dim {model.z_dim}")
    model.eval()
    z = manifold_latents(steps)
    labels = torch.full((z.shape[0],), label or 0, dtype=torch.long) if model.conditional else None
    images = decode_uint8(model, z, labels, device=_device(model), desc="manifold")
    return save_grid(images, path, ncols=steps, scale=scale, pad=1)


@torch.no_grad()
def encoded_means(model: Any, x_uint8: torch.Tensor, labels: torch.Tensor | None,
                  max_points: int = 5000) -> np.ndarray:
    """Posterior means of the first `max_points` images, (N, z_dim) float32."""
    model.eval()
    n = min(max_points, x_uint8.shape[0])
    mus = []
    for i in range(0, n, ENCODE_BATCH):
        j = min(i + ENCODE_BATCH, n)
        mu, _ = model.encode(_to_unit(x_uint8[i:j]), labels[i:j] if labels is not None else None)
        mus.append(mu.float().cpu())
    return torch.cat(mus).numpy()


def latent_scatter_figure(mu: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None):
    """A scatter of 2-D latents (N, 2) coloured by label; returns the matplotlib figure."""
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7,
                    vmin=-0.5, vmax=max(9, int(labels.max())) + 0.5)
    present = sorted(set(labels.tolist()))
    cbar = fig.colorbar(sc, ax=ax, ticks=present)
    if class_names:
        cbar.ax.set_yticklabels([class_names[i] if i < len(class_names) else str(i) for i in present])
    ax.set_xlabel("z[0] (posterior mean)")
    ax.set_ylabel("z[1] (posterior mean)")
    ax.set_title(f"VAE latent space: {mu.shape[0]} encoded test images")
    return fig


def plot_latent_scatter(model: Any, x_uint8: torch.Tensor, labels: torch.Tensor, path: Path,
                        class_names: list[str] | None = None, max_points: int = 5000) -> Path:
    """Encoded posterior means of test images (z_dim 2), coloured by label."""
    mu = encoded_means(model, x_uint8, labels if model.conditional else None, max_points)
    lab = labels[: mu.shape[0]].cpu().numpy()
    return save_figure(latent_scatter_figure(mu, lab, class_names), path, dpi=120)


@torch.no_grad()
def plot_class_grid(model: Any, path: Path, seed: int, n_noise: int = 8) -> Path:
    """Conditional VAE: one row per class, one column per fixed noise vector."""
    device = _device(model)
    k = model.num_classes
    z = model.sample_latent(n_noise, torch.Generator(device="cpu").manual_seed(seed + 2))  # (n_noise, Z)
    z = z.repeat(k, 1)  # (k*n_noise, Z), the same noise in every row
    labels = torch.arange(k, device=device).repeat_interleave(n_noise)
    fig, ax = plt.subplots(figsize=(n_noise * 0.6, k * 0.6))
    _show(ax, _grid(model.decode(z, labels), nrow=n_noise))
    ax.set_title("conditional VAE: rows = classes, columns = fixed noise", fontsize=8)
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def plot_samples(model: Any, path: Path, seed: int, n: int = 64) -> Path:
    """Decoded prior samples from fixed noise (balanced labels when conditional)."""
    device = _device(model)
    z = model.sample_latent(n, torch.Generator(device="cpu").manual_seed(seed + 3))
    labels = torch.arange(n, device=device) % model.num_classes if model.conditional else None
    fig, ax = plt.subplots(figsize=(6, 6))
    _show(ax, _grid(model.decode(z, labels), nrow=int(math.sqrt(n))))
    ax.set_title("VAE samples from the prior (fixed noise)", fontsize=9)
    return save_figure(fig, path, dpi=120)


def write_figures(model: Any, test_images: np.ndarray, test_labels: np.ndarray, reports_dir: str | Path,
                  seed: int, class_names: list[str] | None = None) -> list[Path]:
    """The end-of-training figures: samples; with z_dim 2 the manifold and the latent scatter
    of the test images; conditional: the class x noise grid."""
    reports_dir = Path(reports_dir)
    model.eval()
    device = _device(model)
    out = [plot_samples(model, reports_dir / "samples.png", seed)]
    if model.z_dim == 2:
        x = torch.from_numpy(np.ascontiguousarray(test_images)).to(device)
        y = torch.from_numpy(np.asarray(test_labels, dtype=np.int64)).to(device)
        out.append(plot_manifold(model, reports_dir / "manifold.png"))
        out.append(plot_latent_scatter(model, x, y, reports_dir / "latent_scatter.png", class_names))
    if model.conditional:
        out.append(plot_class_grid(model, reports_dir / "class_grid.png", seed))
    return out

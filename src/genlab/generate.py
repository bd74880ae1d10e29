"""Sampling from trained generators (GAN, VAE) into the data stage's uint8 format.

Generators follow one contract (see `genlab.models.gan` and `genlab.models.vae`): attributes
``z_dim``, ``num_classes`` (None unless conditional), ``image_shape``; methods
``sample_latent(n, generator)`` and ``decode(z, labels=None)`` returning floats in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import InputError
from genlab.runtime import progress

GENERATORS = ("gan", "vae")


def load_generator(name: str, path: str | Path, device: torch.device | str = "cpu") -> Any:
    """Load a trained generator by kind (``gan`` or ``vae``) from its checkpoint."""
    if name == "gan":
        from genlab.models.gan import load_generator as load
    elif name == "vae":
        from genlab.models.vae import load
    else:
        raise InputError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
    return load(path, device=device)


def default_checkpoint(name: str) -> Path:
    return Path("models") / name / "checkpoint.pt"


@torch.no_grad()
def decode_uint8(model: Any, z: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = 512,
                 device: torch.device | str = "cpu", desc: str | None = None) -> np.ndarray:
    """Decode latents in batches on `device` -> uint8 (N, C, H, W), rounded to the nearest level."""
    out = []
    starts = range(0, z.shape[0], batch_size)
    for s in progress(starts, desc=desc or "decode", total=len(starts), unit="batch"):
        zb = z[s : s + batch_size].to(device)
        lb = labels[s : s + batch_size].to(device) if labels is not None else None
        x = model.decode(zb, lb).float().clamp(0, 1)
        out.append((x * 255.0).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ... : n labels, as balanced as n allows."""
    return torch.arange(n) % num_classes


@torch.no_grad()
def generate_samples(model: Any, n: int, *, seed: int, batch_size: int = 500,
                     device: torch.device | str = "cpu", desc: str = "generate") -> tuple[np.ndarray, np.ndarray | None]:
    """`n` samples from the prior (balanced labels for a conditional model), seeded.

    Returns (images uint8 (n, C, H, W), labels int64 (n,) or None). The latents come from a
    CPU generator, so the same seed gives the same samples on any device.
    """
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.z_dim, generator=gen)  # the prior N(0, I) of both GAN and VAE
    labels = balanced_labels(n, model.num_classes) if getattr(model, "num_classes", None) else None
    images = decode_uint8(model, z, labels, batch_size=batch_size, device=device, desc=desc)
    return images, (labels.numpy().astype(np.int64) if labels is not None else None)


# --- the `generate` stage -------------------------------------------------------------------
from pydantic import Field  # noqa: E402

from genlab.params import StrictModel  # noqa: E402


# samples one call draws at most (the generate stage and `genlab sample --n`): 1,000,000 28 px images
# are 0.8 GB of uint8, and their latents and float images several times that
MAX_SAMPLES = 1_000_000


class GenerateParams(StrictModel):
    n_samples: int = Field(10000, ge=1, le=MAX_SAMPLES)
    batch_size: int = Field(500, ge=1)
    grid_size: int = Field(100, ge=1, le=1024)  # images in each reports/generate/<model>_grid.png


def generate_all(cfg: GenerateParams, *, seed: int, device: torch.device, out_dir: Path,
                 report_dir: Path, models: dict[str, Path]) -> dict[str, float]:
    """Write `<name>.npy` (+ `<name>_labels.npy` when conditional) and a grid per generator."""
    from genlab.grids import save_grid
    from genlab.runtime import write_npy

    stats: dict[str, float] = {}
    for i, (name, path) in enumerate(models.items()):
        model = load_generator(name, path, device)
        images, labels = generate_samples(model, cfg.n_samples, seed=seed + i, batch_size=cfg.batch_size,
                                          device=device, desc=f"generate {name}")
        write_npy(out_dir / f"{name}.npy", images)
        if labels is not None:
            write_npy(out_dir / f"{name}_labels.npy", labels)
        save_grid(images[: cfg.grid_size], report_dir / f"{name}_grid.png")
        stats[f"generate/{name}/mean_pixel"] = float(images.mean())
    return stats

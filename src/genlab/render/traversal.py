"""Latent-space traversals: paths through chosen latent points, decoded to image grids.

A traversal through P points with S steps between consecutive points has
``P + (P - 1) * S`` latents: every chosen point exactly, and S interpolated latents strictly
between each consecutive pair (10 points, 100 steps: 910 images, as in the seed report's
≈918-image grids).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation; `t` (T,) in [0, 1] -> (T, D)."""
    t = t[:, None]
    return (1 - t) * a[None] + t * b[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016, "Sampling Generative Networks"):
    follows the great circle between `a` and `b`, so between points of equal norm every
    latent keeps that norm (a Gaussian prior puts its mass near a sphere; lerp cuts inside it).
    Falls back to lerp for (anti-)parallel vectors."""
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6 or (torch.pi - omega).abs() < 1e-6:
        return lerp(a, b, t)
    t64 = t.double()[:, None]
    out = (torch.sin((1 - t64) * omega) * a64[None] + torch.sin(t64 * omega) * b64[None]) / torch.sin(omega)
    return out.to(a.dtype)


def traversal_path(points: torch.Tensor, steps: int, mode: Literal["linear", "slerp"] = "linear") -> torch.Tensor:
    """(P, D) points -> (P + (P-1)*steps, D) latents: each point, then `steps` between it and the next."""
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"need at least 2 points of shape (P, D), got {tuple(points.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    interp = slerp if mode == "slerp" else lerp
    t = torch.arange(1, steps + 1, dtype=points.dtype) / (steps + 1)  # strictly inside (0, 1)
    pieces = []
    for i in range(points.shape[0] - 1):
        pieces.append(points[i : i + 1])
        pieces.append(interp(points[i], points[i + 1], t))
    pieces.append(points[-1:])
    return torch.cat(pieces)


def path_labels(labels: torch.Tensor | None, steps: int) -> torch.Tensor | None:
    """For a conditional model: each latent on the path keeps the label of the segment's start."""
    if labels is None:
        return None
    out = [labels[i].repeat(1 + steps) for i in range(len(labels) - 1)]
    return torch.cat(out + [labels[-1:]])


@torch.no_grad()
def decode_path(model, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 512,
                device: torch.device | str = "cpu") -> np.ndarray:
    """Decode latents with a generator that follows the decode contract -> uint8 (N, C, H, W)."""
    from genlab.generate import decode_uint8

    return decode_uint8(model, z, labels, batch_size=batch_size, device=device)

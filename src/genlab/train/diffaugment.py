"""Differentiable augmentation for data-efficient GAN training (DiffAugment).

Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020 (arXiv:2006.10738); the ops follow their reference implementation
(github.com/mit-han-lab/data-efficient-gans, ``DiffAugment_pytorch.py``, BSD-2-Clause):

* ``color``: brightness (add U(-0.5, 0.5)), saturation (scale the deviation from the per-pixel
  channel mean by U(0, 2)), contrast (scale the deviation from the image mean by U(0.5, 1.5));
* ``translation``: shift by up to 1/8 of the side in each direction, zero fill;
* ``cutout``: zero a square of half the side at a random centre (clipped at the borders).

Every draw is per image, from torch's global RNG on the images' device (so the loop's resume,
which saves every RNG, reproduces it). Each op is made of additions, multiplications and
gathers: gradients flow through to the generator. The GAN applies the same policy to real and
generated images in D's step and to generated images in G's step (:mod:`genlab.train.gan`);
without that, D learns the augmentation and G learns to produce it.
Images are (B, C, H, W) in [-1, 1]; the output can leave that range, as in the reference.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from genlab.errors import InputError

TRANSLATION_RATIO = 1 / 8  # largest shift as a fraction of the side (the reference's)
CUTOUT_RATIO = 1 / 2  # cutout side as a fraction of the image side (the reference's)


def _uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)  # (B, 1, 1, 1)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_uniform(x) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W): grey level of each pixel
    return (x - mean) * (_uniform(x) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by an integer (dy, dx) in [-H*ratio, H*ratio] x [-W*ratio, W*ratio]; zero fill."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio), int(w * ratio)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    # index into the image padded by one zero pixel: positions that fall outside read the zero border
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp_(0, h + 1)  # (B, H, 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp_(0, w + 1)  # (B, 1, W)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of side (H*ratio, W*ratio) per image; its centre is uniform over the image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio), int(w * ratio)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    r = torch.arange(h, device=x.device).view(1, h, 1) - (cy - ch // 2)  # (B, H, 1): row offset into the square
    c = torch.arange(w, device=x.device).view(1, 1, w) - (cx - cw // 2)  # (B, 1, W)
    inside = (r >= 0) & (r < ch) & (c >= 0) & (c < cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its op names; ``""`` -> (). Unknown names raise ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in OPS]
    if bad:
        raise InputError(f"unknown DiffAugment op {bad[0]!r}; allowed: {', '.join(OPS)} (comma-separated), or '' for none")
    return names


def diff_augment(x: torch.Tensor, policy: str | tuple[str, ...]) -> torch.Tensor:
    """`x` (B, C, H, W) through each op of `policy` in order; the empty policy returns `x` itself."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    if not names:
        return x
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4 else None
    for name in names:
        for op in OPS[name]:
            x = op(x)
    return x.contiguous(memory_format=fmt) if fmt is not None else x.contiguous()

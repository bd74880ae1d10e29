"""Image grids and animations from uint8 (N, C, H, W) arrays: pixel-exact PNG grids and GIFs.

A base module (it imports only numpy, PIL and genlab.runtime), so training, sampling and
rendering all write their grids with it without importing each other.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genlab.runtime import atomic_path


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile (N, C, H, W) uint8 into one (H', W', C) uint8 image, row-major, `ncols` per row
    (default: a square-ish grid)."""
    n, c, h, w = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return grid


def _pil(array_hwc: np.ndarray, scale: int = 1):
    from PIL import Image

    img = Image.fromarray(array_hwc[..., 0] if array_hwc.shape[2] == 1 else array_hwc)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_image(array_hwc: np.ndarray, path: str | Path, scale: int = 2) -> Path:
    """Write one (H, W, C) uint8 image as PNG, nearest-neighbour upscaled by `scale`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _pil(array_hwc, scale).save(tmp, format="PNG")
    return path


def save_grid(images: np.ndarray, path: str | Path, ncols: int | None = None, scale: int = 2, pad: int = 2) -> Path:
    """Write a PNG grid of `images` (pixel-exact, nearest-neighbour upscaled by `scale`)."""
    return save_image(make_grid(images, ncols, pad), path, scale)


def save_gif(frames: np.ndarray | list[np.ndarray], path: str | Path, fps: float = 25, scale: int = 4) -> Path:
    """An animated GIF from (T, C, H, W) uint8 frames (or a list of (H, W, C) grids), looping forever."""
    if isinstance(frames, list):
        frames = np.stack(frames)  # (T, H, W, C) grids
    elif frames.ndim == 4 and frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    pil = [_pil(np.ascontiguousarray(f), scale) for f in frames]
    path = Path(path)
    with atomic_path(path) as tmp:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=max(1, round(1000 / fps)), loop=0)
    return path

"""Image grids and animations from uint8 (N, C, H, W) arrays: pixel-exact PNG grids, GIFs and MP4s.

A base module (it imports only numpy, PIL, genlab.runtime and, for MP4s, imageio-ffmpeg), so training, sampling and
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
    pil = [_pil(np.ascontiguousarray(f), scale) for f in _frames_hwc(frames)]
    path = Path(path)
    with atomic_path(path) as tmp:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=max(1, round(1000 / fps)), loop=0)
    return path


def _frames_hwc(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    if isinstance(frames, list):
        return np.stack(frames)  # (T, H, W, C) grids
    if frames.ndim == 4 and frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
        return frames.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    return frames


def save_mp4(frames: np.ndarray | list[np.ndarray], path: str | Path, fps: float = 10, scale: int = 2) -> Path:
    """An H.264 MP4 from (T, C, H, W) uint8 frames (or a list of (H, W, C) grids).

    Frames are upscaled by `scale` (nearest neighbour, so 4:2:0 chroma keeps pixel edges), grey
    becomes RGB, and odd sizes are padded with black to even ones (yuv420p needs them), so every
    player opens the file. Encoded by the ffmpeg executable that imageio-ffmpeg ships, run as a
    separate process.
    """
    import imageio_ffmpeg

    hwc = _frames_hwc(frames)
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)  # (T, H, W, 1) -> (T, H, W, 3)
    hwc = hwc.repeat(scale, axis=1).repeat(scale, axis=2)  # (T, H*s, W*s, 3)
    t, h, w, _ = hwc.shape
    hwc = np.pad(hwc, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # even H and W for yuv420p
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (hwc.shape[2], hwc.shape[1]), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", quality=8, macro_block_size=1,
                                             output_params=["-f", "mp4"], ffmpeg_log_level="error")
        writer.send(None)  # start ffmpeg
        for f in hwc:
            writer.send(np.ascontiguousarray(f))
        writer.close()
    return path

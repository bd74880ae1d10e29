"""The image-set format every stage shares, and pure transforms on it.

Images are ``uint8`` arrays of shape (N, C, H, W), C in {1, 3}; labels are ``int64`` (N,).
A prepared set lives in one folder as ``{train,test}_{images,labels}.npy`` plus ``meta.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class ImageArrayError(ValueError):
    """An images file that is not uint8 (N, C, H, W) with C in {1, 3}."""


def check_images(images: np.ndarray, name: str = "images", channels: int | None = None) -> np.ndarray:
    """Validate the shared image format; return `images` unchanged."""
    if not isinstance(images, np.ndarray):
        raise ImageArrayError(f"{name}: expected a numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise ImageArrayError(f"{name}: expected shape (N, C, H, W), got {images.shape}")
    if images.dtype != np.uint8:
        raise ImageArrayError(f"{name}: expected dtype uint8 (0..255), got {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ImageArrayError(f"{name}: expected 1 or 3 channels in axis 1 (N, C, H, W), got shape {images.shape}")
    if channels is not None and images.shape[1] != channels:
        raise ImageArrayError(f"{name}: has {images.shape[1]} channel(s), the model expects {channels}")
    if images.shape[0] == 0:
        raise ImageArrayError(f"{name}: holds no images")
    return images


def load_images(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Load a `.npy` (or the ``images`` entry of a `.npz`) and validate it."""
    path = Path(path)
    if not path.exists():
        raise ImageArrayError(f"images file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "images" if "images" in z.files else z.files[0]
                arr = z[key]
        else:
            arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise ImageArrayError(f"{path}: not a readable .npy/.npz file: {exc}") from None
    return check_images(arr, str(path), channels)


def load_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 NCHW, labels int64) of `split` in a prepared data folder."""
    data_dir = Path(data_dir)
    images = np.load(data_dir / f"{split}_images.npy", allow_pickle=False)
    labels = np.load(data_dir / f"{split}_labels.npy", allow_pickle=False).astype(np.int64)
    return check_images(images, f"{data_dir}/{split}_images.npy"), labels


def load_meta(data_dir: str | Path) -> dict:
    return json.loads((Path(data_dir) / "meta.json").read_text())


def to_float(images: np.ndarray, range_: str = "tanh") -> np.ndarray:
    """uint8 -> float32 in [-1, 1] (``tanh``, for GAN outputs) or [0, 1] (``unit``)."""
    x = images.astype(np.float32) / 255.0
    return x * 2.0 - 1.0 if range_ == "tanh" else x


def to_uint8(x: np.ndarray, range_: str = "tanh") -> np.ndarray:
    """Inverse of :func:`to_float`, clipping and rounding to the nearest level."""
    x = (np.asarray(x, dtype=np.float32) + 1.0) / 2.0 if range_ == "tanh" else np.asarray(x, dtype=np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

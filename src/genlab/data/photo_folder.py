"""An offline photo-like image folder: random square crops of the colour photographs that ship
with scikit-image (``skimage.data``), resized, written as one flat folder of PNGs (no labels).

It stands in for "a folder of a few hundred photos" (the 505 car photos of the seed project)
when no such folder is at hand and there is no network: real photographic statistics (texture,
lighting, noise), a handful of scenes, nothing to download. Only the colour photographs are
used (astronaut, coffee, chelsea the cat, rocket, the two views of the stereo motorcycle); the
greyscale test images, drawings and microscopy are left out.

Determinism: every crop (source photo, side, corner, mirror) is drawn up front from
``numpy.random.default_rng(seed)``; resizing is PIL's box-filtered bicubic ``resize``, so the
files depend only on (n, size, seed) and the installed scikit-image's photos. The folder is
data: never commit it (``data/`` is git-ignored).

scikit-image (BSD-3-Clause) is an optional dependency: ``pip install 'genlab[photos]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.data.download import SourceUnavailable

# skimage.data loaders of the colour photographs bundled with the package (no download)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "motorcycle_right")
MIN_CROP_FRACTION = 0.35  # crop side as a fraction of the photo's shorter side: large enough to show objects
MAX_CROP_FRACTION = 0.9


def load_photos() -> dict[str, np.ndarray]:
    """The bundled colour photographs as uint8 (H, W, 3), by name. Needs scikit-image."""
    try:
        from skimage import data
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise SourceUnavailable("the photo folder needs scikit-image: pip install 'genlab[photos]' "
                           "(or pip install scikit-image)") from exc
    out: dict[str, np.ndarray] = {}
    left, right, _ = data.stereo_motorcycle()
    for name in PHOTOS:
        if name == "motorcycle_left":
            img = left
        elif name == "motorcycle_right":
            img = right
        else:
            img = getattr(data, name)()
        out[name] = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    return out


def photo_crops(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """`n` random square crops of the bundled photos, resized to `size`: uint8 (n, size, size, 3).

    Each crop picks a photo uniformly, a side between MIN_CROP_FRACTION and MAX_CROP_FRACTION of
    the photo's shorter side, a corner uniformly, and a horizontal mirror with probability 1/2.
    """
    from PIL import Image

    if n < 1 or size < 8:
        raise ValueError(f"photo_crops: n must be >= 1 and size >= 8, got n={n}, size={size}")
    photos = load_photos()
    names = list(photos)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(names), n)
    frac = rng.uniform(MIN_CROP_FRACTION, MAX_CROP_FRACTION, n)
    corner = rng.uniform(0.0, 1.0, (n, 2))
    mirror = rng.uniform(0.0, 1.0, n) < 0.5
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = photos[names[which[i]]]
        h, w = img.shape[:2]
        side = max(size, int(frac[i] * min(h, w)))
        top, left = int(corner[i, 0] * (h - side)), int(corner[i, 1] * (w - side))
        crop = img[top: top + side, left: left + side]  # (side, side, 3)
        if mirror[i]:
            crop = crop[:, ::-1]
        pil = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BICUBIC,
                                                                reducing_gap=2.0)
        out[i] = np.asarray(pil)
    return out


def make_photo_folder(out_dir: str | Path, n: int = 500, size: int = 64, seed: int = 0) -> Path:
    """Write `n` crops (see :func:`photo_crops`) as ``out_dir/photo_00000.png`` ... ; returns `out_dir`.

    One flat folder, no sub-folders, no labels: what ``prepare_images.source=folder:DIR`` reads
    as an unlabelled set. Files already there with other names are left alone; ours are overwritten.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(photo_crops(n, size, seed)):
        Image.fromarray(img).save(out / f"photo_{i:05d}.png")
    return out


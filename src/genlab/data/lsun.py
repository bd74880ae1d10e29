"""The ``lsun:<dir>`` image source: a local LSUN folder read through torchvision's ``LSUN``.

``<dir>`` holds LSUN's LMDB databases as the download script names them,
``<category>_train_lmdb`` and optionally ``<category>_val_lmdb`` (``bedroom``,
``church_outdoor``, ...; torchvision checks the names), or is one such database folder.
Each category is a class. The test split is the ``_val`` databases when every category has
one, else `test_fraction` of each category's train images, drawn from the seed. Only the
images that are kept are decoded (LSUN bedroom alone holds 3 million): use ``limit``.

Reading needs the ``lmdb`` package (``pip install lmdb``); without it the source fails with
one line naming the package.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from genlab.data.download import OFFLINE_IMAGES, SourceUnavailable
from genlab.data.sources_base import ImageSet, ImageSourceError, limits


@contextlib.contextmanager
def _in_temp_dir() -> Iterator[None]:
    """torchvision's LSUNClass pickles its key list to ``_cache_<root>`` in the working
    directory; build the datasets in a scratch folder so the repository stays clean."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="genlab-lsun-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def lsun_databases(folder: Path) -> tuple[Path, dict[str, list[str]]]:
    """(root, {split: [category, ...]}) of the ``<category>_<split>_lmdb`` folders in `folder`
    (or of `folder` itself when it is one)."""
    dbs = [folder] if folder.name.endswith("_lmdb") else sorted(p for p in folder.iterdir() if p.is_dir() and p.name.endswith("_lmdb"))
    root = folder.parent if folder.name.endswith("_lmdb") else folder
    by_split: dict[str, list[str]] = {}
    for db in dbs:
        category, _, split = db.name[: -len("_lmdb")].rpartition("_")
        if category and split in ("train", "val"):
            by_split.setdefault(split, []).append(category)
    return root, by_split


def load_lsun(folder: Path, cfg, seed: int) -> ImageSet:
    """The ``lsun:<dir>`` source for `prepare_images` (`cfg`: its ``PrepareImagesParams``)."""
    from genlab.runtime import progress

    try:
        import lmdb  # noqa: F401  (torchvision's LSUN imports it lazily, deep inside)
    except ImportError:
        raise SourceUnavailable(f"data source 'lsun:{folder}' needs the 'lmdb' package: pip install lmdb") from None
    from torchvision.datasets import LSUN

    if not folder.is_dir():
        raise SourceUnavailable(f"data source 'lsun:{folder}': no such folder. Offline alternatives: {OFFLINE_IMAGES}")
    root, by_split = lsun_databases(folder.resolve())
    categories = sorted(by_split.get("train", []))
    if not categories:
        raise ImageSourceError(f"lsun:{folder}: no <category>_train_lmdb folder (e.g. bedroom_train_lmdb)")
    try:
        with _in_temp_dir():
            train = LSUN(str(root), classes=[f"{c}_train" for c in categories])
            held_out = set(categories) <= set(by_split.get("val", []))
            val = LSUN(str(root), classes=[f"{c}_val" for c in categories]) if held_out else None
    except ValueError as exc:  # torchvision: a category name LSUN does not have
        raise ImageSourceError(f"lsun:{folder}: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # noqa: BLE001  (lmdb.Error and friends: an unreadable database)
        raise ImageSourceError(f"lsun:{folder}: cannot open the LMDB databases ({type(exc).__name__}: {exc})") from None
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x15C4]))
    if val is not None:
        parts = {"train": (train, np.arange(len(train))), "test": (val, np.arange(len(val)))}
    else:  # hold out test_fraction of every category (LSUN's datasets are one block per category)
        bounds = [0, *train.indices]
        test_idx = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            order = lo + rng.permutation(hi - lo)
            test_idx += list(order[: max(1, int(round((hi - lo) * cfg.test_fraction)))] if hi - lo > 1 else [])
        test_mask = np.zeros(len(train), bool)
        test_mask[test_idx] = True
        parts = {"train": (train, np.flatnonzero(~test_mask)), "test": (train, np.flatnonzero(test_mask))}
    splits = {}
    for (split, (ds, idx)), cap in zip(parts.items(), limits(cfg.limit)):
        if cap is not None and cap < len(idx):  # a deterministic subset that keeps the categories mixed
            idx = np.sort(rng.choice(idx, cap, replace=False))
        if len(idx) == 0:
            raise ImageSourceError(f"lsun:{folder}: no {split} images")
        images, labels = [], []
        for i in progress(idx, desc=f"lsun {split}", total=len(idx), unit="img"):
            img, target = ds[int(i)]
            images.append(_pil_to_array(img, cfg.image_size, cfg.channels))
            labels.append(target)
        splits[split] = (np.stack(images), np.asarray(labels, np.int64))
    return ImageSet(splits["train"], splits["test"], categories,
                    {"root": str(root), "test_split": "val" if val is not None else "held out of train"},
                    has_labels=len(categories) > 1)  # one category: its labels are all 0, no label



def _pil_to_array(img, size: int, channels: int) -> np.ndarray:
    """A PIL image -> (channels, size, size) uint8: shorter side to `size`, centre crop."""
    from PIL import Image, ImageOps

    img = ImageOps.fit(img.convert("L" if channels == 1 else "RGB"), (size, size), method=Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)

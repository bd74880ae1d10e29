"""The `prepare_images` data stage: image sources -> ``data/images`` in the shared format.

Sources (the ``prepare_images.source`` key):

* ``synthetic-digits``: MNIST-like digits rendered from matplotlib's fonts (offline default).
* ``synthetic-rgb``: the same digits in colour on coloured, textured backgrounds (SVHN-like).
* ``lsun:<dir>``: a local LSUN folder of ``<category>_<split>_lmdb`` databases (needs ``lmdb``).
* ``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10``, ``svhn``, ``celeba``: torchvision
  downloads into ``root`` (torchvision verifies their md5 checksums).
* ``idx:<dir>``: local IDX files named as MNIST's (``train-images-idx3-ubyte[.gz]`` ...).
* ``folder:<dir>``: image files, optionally one sub-folder per class, split train/test.

Output folder: ``{train,test,val}_{images,labels}.npy`` (uint8 N,C,H,W / int64) and
``meta.json`` (source, shapes, class names, ``has_labels``, sha256 of every file, seed, params,
sanity statistics). ``val`` is held out of everything: rendered anew for the synthetic sources,
else moved out of the test split; nothing trains or fits on it. A set without labels (a flat
folder, CelebA, one LSUN category) stores labels of zeros and ``has_labels: false``. The folder is replaced atomically: a run that fails leaves it as it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from genlab.data.arrays import atomic_folder, check_images
from genlab.data.download import OFFLINE_IMAGES, SourceUnavailable
from genlab.data.lsun import load_lsun
from genlab.data.sources_base import ImageSet, ImageSourceError, limits, val_size
from genlab.data.synthetic_rgb import load_synthetic_rgb
from genlab.params import StrictModel
from genlab.runtime import log, save_figure, sha256_file, write_json, write_npy

TORCHVISION_SOURCES = ("mnist", "fashion-mnist", "kmnist", "cifar10", "svhn", "celeba")
NAMED_SOURCES = ("synthetic-digits", "synthetic-rgb", *TORCHVISION_SOURCES)
PREFIX_SOURCES = ("idx:", "folder:", "lsun:")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# sha256 of the train label bytes of well-known IDX sets, so `idx:<dir>` can name their classes
_KNOWN_IDX_LABELS = {
    "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7": ("fashion-mnist", FASHION_CLASSES),
}


# images a synthetic source renders per split at most (the generate stage's cap on samples too)
MAX_SYNTHETIC_IMAGES = 1_000_000


class PrepareImagesParams(StrictModel):
    """The ``prepare_images`` section of params.yaml."""

    source: str = "synthetic-digits"
    image_size: int = Field(28, ge=8, le=512)
    channels: Literal[1, 3] = 1
    limit: int | None = Field(None, gt=0)   # first N train and max(1, N // 6) test images
    # synthetic-digits / synthetic-rgb only; capped where the arrays outgrow a machine's memory
    n_train: int = Field(60000, gt=0, le=MAX_SYNTHETIC_IMAGES)
    n_test: int = Field(10000, gt=0, le=MAX_SYNTHETIC_IMAGES)
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)  # folder:<dir> (and lsun:<dir> without *_val_lmdb) only
    root: str = "~/.cache/genlab/downloads"  # torchvision download cache

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in NAMED_SOURCES:
            return v
        for prefix in PREFIX_SOURCES:
            if v.startswith(prefix):
                if not v[len(prefix):].strip():
                    raise PydanticCustomError("source", f"{prefix}<dir> needs a folder after '{prefix}'")
                return v
        # a custom error type keeps pydantic's "Value error, " prefix out of the one-line message
        raise PydanticCustomError(
            "source", f"unknown image source; allowed: {', '.join(NAMED_SOURCES)}, idx:<dir>, folder:<dir>, lsun:<dir>")


# ---------------------------------------------------------------------------- pure transforms

def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, channels, H, W): grey repeated to RGB, or RGB to ITU-R 601 luma
    (PIL's ``convert("L")`` weights)."""
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    weights = np.array([299, 587, 114], np.uint32).reshape(1, 3, 1, 1)
    luma = (images.astype(np.uint32) * weights).sum(1, keepdims=True)  # (N, 3, H, W) -> (N, 1, H, W)
    return ((luma + 500) // 1000).astype(np.uint8)


def to_size(images: np.ndarray, size: int, batch: int = 4096) -> np.ndarray:
    """Centre-crop to a square, then resize to (size, size) with antialiased bilinear filtering."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = images.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        images = images[:, :, top : top + s, left : left + s]
    if images.shape[2] == size:
        return np.ascontiguousarray(images)
    out = np.empty((n, c, size, size), np.uint8)
    for start in range(0, n, batch):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + batch] = y.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def apply_limit(split: tuple[np.ndarray, np.ndarray], n: int | None) -> tuple[np.ndarray, np.ndarray]:
    return split if n is None else (split[0][:n], split[1][:n])


def split_held_out(images: np.ndarray, labels: np.ndarray, seed: int
                   ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(test, val): `val_size(len)` images of a test split, drawn by a permutation from `seed`,
    move to the held-out `val` split; both keep their original order and at least one image
    (a one-image test split is shared: too small to split)."""
    n = len(images)
    if n < 2:
        log("prepare_images: a one-image test split is too small to split; val shares it")
        return (images, labels), (images, labels)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1]))
    is_val = np.zeros(n, bool)
    is_val[rng.permutation(n)[: min(val_size(n), n - 1)]] = True
    return (images[~is_val], labels[~is_val]), (images[is_val], labels[is_val])


# ---------------------------------------------------------------------------- sources

def load_synthetic(cfg: PrepareImagesParams, seed: int) -> ImageSet:
    from genlab.data.synthetic_digits import CLASS_NAMES, digit_fonts, synthetic_digits

    n_tr, n_te = limits(cfg.limit)
    n_test = min(cfg.n_test, n_te or cfg.n_test)
    splits = synthetic_digits(min(cfg.n_train, n_tr or cfg.n_train), n_test, seed, n_val=val_size(n_test))
    return ImageSet(splits["train"], splits["test"], list(CLASS_NAMES),
                    {"fonts": [f.name for f in digit_fonts()]}, val=splits["val"])


def load_idx(folder: Path) -> ImageSet:
    from genlab.data.idx import IdxError, read_idx_split

    if not folder.is_dir():
        raise SourceUnavailable(f"data source 'idx:{folder}': no such folder. Offline alternatives: {OFFLINE_IMAGES}")
    try:
        train, test = read_idx_split(folder, "train"), read_idx_split(folder, "test")
    except IdxError as exc:
        raise ImageSourceError(f"idx:{folder}: {exc}") from None
    known = _KNOWN_IDX_LABELS.get(hashlib.sha256(train[1].astype(np.uint8).tobytes()).hexdigest())
    n_classes = int(max(train[1].max(), test[1].max())) + 1
    names = list(known[1]) if known else [str(i) for i in range(n_classes)]
    info = {"files": sorted(p.name for p in folder.iterdir() if "idx" in p.name)}
    if known:
        info["recognised_as"] = known[0]
    return ImageSet(train, test, names, info)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file -> (channels, size, size) uint8: shorter side resized to `size`, centre crop."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            im = ImageOps.fit(im, (size, size), method=Image.BILINEAR, centering=(0.5, 0.5))
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001  (PIL raises many types for a bad file)
        raise ImageSourceError(f"{path}: not a readable image ({exc})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def load_folder(folder: Path, cfg: PrepareImagesParams, seed: int) -> ImageSet:
    """Images in `folder`; one class per sub-folder holding images, else a single class.
    Each class is split train/test by `test_fraction` with a permutation drawn from `seed`."""
    if not folder.is_dir():
        raise SourceUnavailable(f"data source 'folder:{folder}': no such folder. Offline alternatives: {OFFLINE_IMAGES}")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [(d.name, _image_files(d)) for d in subdirs]
    classes = [(name, files) for name, files in classes if files]
    by_class = bool(classes)
    if by_class:
        loose = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if loose:
            log(f"folder:{folder}: ignoring {len(loose)} image(s) outside the class sub-folders (e.g. {loose[0]})")
    else:
        classes = [(folder.resolve().name or "images", _image_files(folder))]
    if not classes[0][1]:
        raise ImageSourceError(f"folder:{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1F01DE5]))
    parts: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for label, (_, files) in enumerate(classes):
        order = rng.permutation(len(files))
        n_test = int(round(len(files) * cfg.test_fraction)) if len(files) > 1 else 0
        n_test = min(max(n_test, 1 if len(files) > 1 else 0), len(files) - 1)
        parts["test"] += [(files[i], label) for i in sorted(order[:n_test])]
        parts["train"] += [(files[i], label) for i in sorted(order[n_test:])]
    if not parts["test"]:
        raise ImageSourceError(f"folder:{folder}: too few images to hold out a test split (need >= 2 per class)")
    caps = dict(zip(("train", "test"), limits(cfg.limit)))
    splits = {}
    for split, items in parts.items():
        if caps[split] is not None:  # a deterministic subset that keeps the classes mixed
            keep = np.sort(rng.permutation(len(items))[: caps[split]])
            items = [items[i] for i in keep]
        images = np.stack([_load_image(p, cfg.image_size, cfg.channels) for p, _ in items])
        splits[split] = (images, np.array([lab for _, lab in items], np.int64))
    info = {"n_files": sum(len(f) for _, f in classes), "class_folders": by_class}
    # a flat folder has no labels; class sub-folders do (one sub-folder is one class: no label either)
    return ImageSet(splits["train"], splits["test"], [name for name, _ in classes], info, has_labels=by_class)


def _torchvision_dataset(name: str, root: Path, split: str):
    from torchvision import datasets

    train = split == "train"
    if name == "mnist":
        return datasets.MNIST(root, train=train, download=True)
    if name == "fashion-mnist":
        return datasets.FashionMNIST(root, train=train, download=True)
    if name == "kmnist":
        return datasets.KMNIST(root, train=train, download=True)
    if name == "cifar10":
        return datasets.CIFAR10(root, train=train, download=True)
    if name == "svhn":
        return datasets.SVHN(root, split=split, download=True)
    if name == "celeba":
        return datasets.CelebA(root, split=split, target_type="identity", download=True)
    raise ValueError(name)


def _dataset_arrays(name: str, ds, limit: int | None, cfg: PrepareImagesParams) -> tuple[np.ndarray, np.ndarray]:
    if name in ("mnist", "fashion-mnist", "kmnist"):
        images = ds.data.numpy()[:limit, None]          # (N, 28, 28) -> (N, 1, 28, 28)
        return images, ds.targets.numpy()[:limit].astype(np.int64)
    if name == "cifar10":
        images = ds.data[:limit].transpose(0, 3, 1, 2)  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return images, np.asarray(ds.targets[:limit], np.int64)
    if name == "svhn":
        return ds.data[:limit], np.asarray(ds.labels[:limit], np.int64)  # (N, 3, 32, 32); torchvision maps 10 -> 0
    # celeba: faces without class labels; decode only what is kept, straight to the target size
    n = len(ds) if limit is None else min(limit, len(ds))
    from genlab.runtime import progress

    images = np.stack([
        _load_image(Path(ds.root) / ds.base_folder / "img_align_celeba" / ds.filename[i], cfg.image_size, 3)
        for i in progress(range(n), desc="celeba", total=n, unit="img")
    ])
    return images, np.zeros(n, np.int64)


def load_torchvision(name: str, cfg: PrepareImagesParams) -> ImageSet:
    root = Path(cfg.root).expanduser()
    splits = {}
    for split, cap in zip(("train", "test"), limits(cfg.limit)):
        try:
            ds = _torchvision_dataset(name, root, split)
        except Exception as exc:  # noqa: BLE001  (torchvision raises URLError, RuntimeError, OSError...)
            cause = " ".join(str(exc).split()) or type(exc).__name__
            raise SourceUnavailable(
                f"data source '{name}' is unavailable: torchvision could not download or verify it into "
                f"{root} ({type(exc).__name__}: {cause}). Offline alternatives: {OFFLINE_IMAGES}"
            ) from None
        splits[split] = _dataset_arrays(name, ds, cap, cfg)
    classes = getattr(ds, "classes", None) or (["face"] if name == "celeba" else [str(i) for i in range(10)])
    return ImageSet(splits["train"], splits["test"], list(classes), {"root": str(root)}, has_labels=name != "celeba")


def load_source(cfg: PrepareImagesParams, seed: int) -> ImageSet:
    src = cfg.source
    if src == "synthetic-digits":
        return load_synthetic(cfg, seed)
    if src == "synthetic-rgb":
        return load_synthetic_rgb(cfg, seed)
    if src.startswith("lsun:"):
        return load_lsun(Path(src[5:]).expanduser(), cfg, seed)
    if src.startswith("idx:"):
        return load_idx(Path(src[4:]).expanduser())
    if src.startswith("folder:"):
        return load_folder(Path(src[7:]).expanduser(), cfg, seed)
    return load_torchvision(src, cfg)


# ---------------------------------------------------------------------------- the stage

def class_stats(labels: np.ndarray, n_classes: int) -> dict:
    counts = np.bincount(labels, minlength=n_classes)
    nonzero = counts[counts > 0]
    return {"counts": counts.tolist(),
            "balance": float(nonzero.min() / nonzero.max()) if nonzero.size else 0.0}


def sanity_stats(splits: dict[str, tuple[np.ndarray, np.ndarray]], n_classes: int) -> dict:
    """Classifier-free sanity numbers per split: size, class counts and balance (min/max class
    count), mean and std pixel (0..255), fraction of blank images."""
    out = {}
    for split, (x, y) in splits.items():
        flat = x.reshape(len(x), -1)
        out[split] = {
            "n": int(len(x)),
            **class_stats(y, n_classes),
            "mean_pixel": float(flat.mean(dtype=np.float64)),
            "std_pixel": float(flat.std(dtype=np.float64)),
            "blank_fraction": float((flat.max(1) == 0).mean()),
        }
    return out


def data_metrics(meta: dict) -> dict[str, float]:
    """The slash-keyed metrics dict of the stage (``metrics/data.json`` and MLflow)."""
    s = meta["stats"]
    return {
        "data/n_train": s["train"]["n"], "data/n_test": s["test"]["n"], "data/n_val": s["val"]["n"],
        "data/num_classes": meta["num_classes"], "data/has_labels": int(meta["has_labels"]),
        "data/class_balance_train": round(s["train"]["balance"], 6),
        "data/mean_pixel_train": round(s["train"]["mean_pixel"], 4),
        "data/mean_pixel_test": round(s["test"]["mean_pixel"], 4),
        "data/blank_fraction_train": round(s["train"]["blank_fraction"], 6),
    }


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: str | Path,
                per_class: int = 10, title: str = "") -> Path:
    """One row per class (up to 20) with its first `per_class` images, as a single mosaic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [c for c in range(len(class_names)) if np.any(labels == c)][:20]
    _, ch, h, w = images.shape
    pad = 2
    mosaic = np.full((len(classes) * (h + pad) + pad, per_class * (w + pad) + pad, ch), 128, np.uint8)
    for row, c in enumerate(classes):
        for col, i in enumerate(np.flatnonzero(labels == c)[:per_class]):
            top, left = pad + row * (h + pad), pad + col * (w + pad)
            mosaic[top : top + h, left : left + w] = images[i].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    scale = max(1.0, 28 / h) * 0.03
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] * scale + 1.2, mosaic.shape[0] * scale + 0.3))
    ax.imshow(mosaic[..., 0] if ch == 1 else mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([pad + row * (h + pad) + h / 2 for row in range(len(classes))],
                  [class_names[c] for c in classes], fontsize=7)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)
    return save_figure(fig, path, dpi=100)


def prepare_images(cfg: PrepareImagesParams, out_dir: str | Path, seed: int,
                   reports_dir: str | Path | None = None) -> dict:
    """Load `cfg.source`, apply `image_size`, `channels` and `limit`, write the prepared set to
    `out_dir` (replaced atomically) and, if `reports_dir` is given, ``samples.png`` there.
    Returns the meta dict written to ``meta.json``."""
    out_dir = Path(out_dir)
    data = load_source(cfg, seed)
    n_tr, n_te = limits(cfg.limit)
    raw = {"train": apply_limit(data.train, n_tr), "test": apply_limit(data.test, n_te)}
    if data.val is not None:
        raw["val"] = data.val
    else:
        raw["test"], raw["val"] = split_held_out(*raw["test"], seed=seed)
    splits = {}
    for split in ("train", "test", "val"):
        images, labels = raw[split]
        images = to_size(to_channels(np.asarray(images, np.uint8), cfg.channels), cfg.image_size)
        check_images(images, f"{cfg.source} {split} images", cfg.channels)
        if len(labels) != len(images):
            raise ImageSourceError(f"{cfg.source}: {len(labels)} {split} labels for {len(images)} images")
        splits[split] = (np.ascontiguousarray(images), np.asarray(labels, np.int64))
    n_classes = max(len(data.class_names), int(max(y.max() for _, y in splits.values())) + 1)
    meta = {
        "source": cfg.source,
        "seed": seed,
        "params": cfg.model_dump(mode="json"),
        "shape": {s: list(x.shape) for s, (x, _) in splits.items()},
        "num_classes": n_classes,
        # False: the labels are zeros that only keep the loaders' format (genlab.data.arrays.has_labels)
        "has_labels": bool(data.has_labels),
        # images no stage trains or fits on: the `real` reference row of evaluate is judged on them
        "splits_held_out": ["val"],
        "class_names": data.class_names + [str(i) for i in range(len(data.class_names), n_classes)],
        "dtype": {"images": "uint8", "labels": "int64"},
        "layout": "N,C,H,W",
        "source_info": data.info,
        "stats": sanity_stats(splits, n_classes),
    }
    with atomic_folder(out_dir) as tmp:
        files = {}
        for split, (x, y) in splits.items():
            for kind, arr in (("images", x), ("labels", y)):
                name = f"{split}_{kind}.npy"
                write_npy(tmp / name, arr)
                files[name] = sha256_file(tmp / name)
        meta["sha256"] = files
        write_json(tmp / "meta.json", meta)
        if reports_dir is not None:
            x, y = splits["train"]
            sample_grid(x, y, meta["class_names"], Path(reports_dir) / "samples.png",
                        title=f"{cfg.source}: first train images per class")
    return meta


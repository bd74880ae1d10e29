"""Latent vector arithmetic (Radford et al. 2016, Sec. 6.3), with the attribute measured.

The paper averages the latents of three samples per concept ("smiling woman" - "neutral
woman" + "neutral man") because single vectors were unstable. Here the concepts are
attributes one can *measure* on a digit image, so the arithmetic's effect is a number:

* ``ink``: mean stroke contrast, the mean of |luma - the image's median luma| (the median is
  the background in a digit image): stroke thickness and size.
* ``slant``: the shear of the stroke mass from image moments, d(x)/d(y up) weighted by the
  same contrast map; > 0 leans right, as italics.
* the class, from the judge (the classifier trained on the same source).

For an attribute, "high" and "low" are the top and bottom `quantile` of a pool of latents
(generated samples for the GAN; encoder means of real test images for the VAE), the direction
is ``mean(z_high) - mean(z_low)``, and the targets are the "low" latents of one class (thin
7s). The figure shows ``mean(A) - mean(B) + mean(C)`` beside its inputs; the metrics measure,
over every target, the attribute before and after adding the direction, the share of the gap
between the groups that moved (``transfer``), and how many targets keep their class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.errors import InputError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601
ATTRIBUTES = ("ink", "slant")


def contrast_map(images: np.ndarray) -> np.ndarray:
    """Float images (N, C, H, W) in [0, 1] -> (N, H, W): |luma - median luma of the image|."""
    luma = images[:, 0] if images.shape[1] == 1 else np.einsum("nchw,c->nhw", images, LUMA)
    return np.abs(luma - np.median(luma, axis=(1, 2), keepdims=True))


def ink(images: np.ndarray) -> np.ndarray:
    """Mean stroke contrast (N,) of float images (N, C, H, W) in [0, 1]."""
    return contrast_map(images).mean(axis=(1, 2))


def slant(images: np.ndarray) -> np.ndarray:
    """Shear of the stroke mass (N,): cov(x, y_up) / var(y_up) of the contrast-weighted pixels
    (a right-leaning "1" is > 0, an upright one about 0); 0 for an empty image."""
    w = contrast_map(images).astype(np.float64)
    h, wd = w.shape[1:]
    y_up = (h - 1 - np.arange(h, dtype=np.float64))[None, :, None]
    x = np.arange(wd, dtype=np.float64)[None, None, :]
    mass = w.sum(axis=(1, 2))
    safe = np.where(mass > 0, mass, 1.0)
    my = (w * y_up).sum(axis=(1, 2)) / safe
    mx = (w * x).sum(axis=(1, 2)) / safe
    cov = (w * (x - mx[:, None, None]) * (y_up - my[:, None, None])).sum(axis=(1, 2)) / safe
    var = (w * (y_up - my[:, None, None]) ** 2).sum(axis=(1, 2)) / safe
    return np.where((mass > 0) & (var > 0), cov / np.where(var > 0, var, 1.0), 0.0)


MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"ink": ink, "slant": slant}
GROUP_NAMES = {"ink": ("thick", "thin"), "slant": ("right-leaning", "left-leaning")}


@dataclass
class ArithmeticResult:
    attribute: str
    target_class: str
    metrics: dict[str, float]
    rows: dict[str, np.ndarray]  # row label -> float images (n, C, H, W) in [0, 1], for the figure


def _decode_batches(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, batch: int = 500) -> np.ndarray:
    return np.concatenate([decode(z[i:i + batch]).float().cpu().numpy() for i in range(0, len(z), batch)])


def attribute_arithmetic(
    decode: Callable[[torch.Tensor], torch.Tensor],
    judge: Callable[[np.ndarray], np.ndarray],
    z: torch.Tensor,
    classes: np.ndarray,
    *,
    pool_images: np.ndarray | None = None,
    attribute: str,
    target_class: int,
    class_names: list[str],
    quantile: float = 0.2,
    n_show: int = 8,
    noise: float = 0.25,
    seed: int = 0,
) -> ArithmeticResult:
    """One attribute's arithmetic over a pool of latents `z` (N, Z) of classes `classes` (N,)
    (the judge's for generated samples, the true ones for encoded real images). `decode(z)` ->
    float images in [0, 1] (`pool_images`: `decode(z)` already computed); `judge(images)` ->
    predicted classes. The attribute is measured on decoded images throughout, so "before",
    "after" and the groups are on one scale. Targets: the pool's "low" latents of class
    `target_class` (its own bottom `quantile` when fewer than `n_show` of them are low)."""
    if attribute not in MEASURES:
        raise InputError(f"unknown attribute {attribute!r}; choose one of {', '.join(MEASURES)}")
    measure = MEASURES[attribute]
    if pool_images is None:
        pool_images = _decode_batches(decode, z)
    measured = measure(pool_images)
    n = len(z)
    k = max(2, int(round(quantile * n)))
    order = np.argsort(measured, kind="stable")
    low, high = order[:k], order[-k:]
    direction = z[high].mean(0) - z[low].mean(0)  # (Z,)
    in_class = np.flatnonzero(classes == target_class)
    targets = np.intersect1d(in_class, low)
    if len(targets) < n_show:  # few low members of that class: its own bottom quantile
        own = in_class[np.argsort(measured[in_class], kind="stable")]
        targets = own[: max(n_show, int(round(quantile * len(own))))]
    if len(targets) == 0:
        raise InputError(f"no sample of class {class_names[target_class]!r} in the pool of {n}")
    before_img = _decode_batches(decode, z[targets])
    after_img = _decode_batches(decode, z[targets] + direction)
    before, after = measure(before_img), measure(after_img)
    gap = float(measured[high].mean() - measured[low].mean())
    keep = judge(after_img) == target_class
    up, down = GROUP_NAMES[attribute]
    cname = class_names[target_class]
    metrics = {
        f"{attribute}/high_mean": float(measured[high].mean()),
        f"{attribute}/low_mean": float(measured[low].mean()),
        f"{attribute}/targets": int(len(targets)),
        f"{attribute}/before": float(before.mean()),
        f"{attribute}/after": float(after.mean()),
        f"{attribute}/increased": float((after > before).mean()),
        f"{attribute}/transfer": float((after.mean() - before.mean()) / gap) if gap else float("nan"),
        f"{attribute}/class_kept": float(keep.mean()),
    }
    # the figure: A, B, C (a few of each), mean(A) - mean(B) + mean(C) (+ small noise, as the
    # paper shows it), and the first targets before and after adding the direction
    gen = torch.Generator().manual_seed(seed)
    combo = z[high].mean(0) - z[low].mean(0) + z[targets].mean(0)
    jitter = torch.randn((n_show, z.shape[1]), generator=gen).to(z.device) * noise
    jitter[0] = 0
    rows = {
        f"A: {up}": pool_images[high[::-1][:n_show]],
        f"B: {down}": pool_images[low[:n_show]],
        f"C: {down}, class {cname}": before_img[:n_show],
        "A - B + C": _decode_batches(decode, combo[None] + jitter),
        f"C + (A - B)": after_img[:n_show],
    }
    return ArithmeticResult(attribute, cname, {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
                            rows)


def arithmetic_figure(results: list[ArithmeticResult], path: str | Path, title: str) -> Path:
    """One block of rows per attribute, each row labelled, with the targets' attribute before
    and after; the images are tiled into one picture (one axes draws in a fraction of the time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.interpret.saliency import tile_rows
    from genlab.runtime import save_figure

    rgb = lambda x: np.repeat(x, 3, 0).transpose(1, 2, 0) if x.shape[0] == 1 else x.transpose(1, 2, 0)  # noqa: E731
    rows, labels = [], []
    for res in results:
        m, a = res.metrics, res.attribute
        for label, imgs in res.rows.items():
            rows.append([rgb(img) for img in imgs])
            if label.startswith("C + "):
                label += f"\n{a} {m[f'{a}/before']:.3f} -> {m[f'{a}/after']:.3f}"
            labels.append(label)
    grid = tile_rows(rows)
    size = rows[0][0].shape[0] + 2
    n_cols = max(len(r) for r in rows)
    fig, ax = plt.subplots(figsize=(0.8 * n_cols + 1.8, 0.8 * len(rows) + 0.5))
    ax.imshow(grid, interpolation="nearest")
    for i, label in enumerate(labels):
        ax.text(-2, 2 + size * (i + 0.5), label, ha="right", va="center", fontsize=6)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)

"""Figures of a classifier's judgement: class histogram, labelled samples, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genlab.runtime import save_figure  # noqa: E402


def plot_class_histogram(
    hist: Sequence[int], class_names: Sequence[str], path: str | Path, title: str = "Predicted classes"
) -> Path:
    """Bar chart of predicted-class counts with the uniform expectation as a dashed line."""
    hist = np.asarray(hist)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(hist) + 1.5), 3.2))
    ax.bar(range(len(hist)), hist, color="tab:blue")
    ax.axhline(hist.sum() / len(hist), color="k", ls="--", lw=1, label="uniform")
    ax.set_xticks(range(len(hist)))
    ax.set_xticklabels(list(class_names), rotation=45 if max(map(len, class_names), default=1) > 3 else 0,
                       ha="right" if max(map(len, class_names), default=1) > 3 else "center")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path, dpi=120)


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    """Draw one uint8 (C, H, W) image."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.transpose(image, (1, 2, 0)))  # (3, H, W) -> (H, W, 3)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_labelled_samples(
    images: np.ndarray,
    preds: np.ndarray,
    confidences: np.ndarray,
    path: str | Path,
    n: int = 30,
    seed: int = 0,
    title: str = "Random samples with predicted labels",
    class_names: Sequence[str] | None = None,
    cols: int = 10,
) -> Path:
    """`n` random images (seeded) titled with predicted class and confidence; red when < 0.9."""
    rng = np.random.default_rng(seed)
    n = min(n, len(images))
    idx = np.sort(rng.choice(len(images), size=n, replace=False))
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        ax.axis("on")
        _show(ax, images[i])
        label = class_names[preds[i]] if class_names is not None else str(preds[i])
        ax.set_title(f"{label} {confidences[i]:.2f}", fontsize=7,
                     color="tab:red" if confidences[i] < 0.9 else "black")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=120)


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix (test set)"
) -> Path:
    """Row-normalised confusion matrix (rows: true class), with counts in the cells."""
    cm = np.asarray(confusion)
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(cm)
    fig, ax = plt.subplots(figsize=(0.5 * k + 2.5, 0.5 * k + 2))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for r in range(k):
        for c in range(k):
            if cm[r, c]:
                ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=6,
                        color="white" if frac[r, c] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(list(class_names), rotation=90, fontsize=7)
    ax.set_yticklabels(list(class_names), fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, path, dpi=120)

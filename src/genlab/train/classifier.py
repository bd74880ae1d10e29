"""Training loop of the CNN classifier, with the data resident in memory as tensors.

Images stay ``uint8`` on the device and are converted per batch; augmentation (small random
shifts and rotations) is one batched ``affine_grid``/``grid_sample`` call, no per-sample Python.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from genlab.models.classifier import Classifier, ClassifierConfig, classification_loss
from genlab.params import StrictModel
from genlab.runtime import log, progress


class ClassifierParams(StrictModel):
    """The ``classifier`` section of params.yaml."""

    channels: list[int] = Field(default_factory=lambda: [32, 64])
    convs_per_block: int = Field(1, ge=1, le=4)
    hidden: int = Field(128, gt=0)
    dropout: float = Field(0.25, ge=0, lt=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    augment: bool = False
    max_shift: float = Field(2.0, ge=0)  # pixels
    max_rotate: float = Field(10.0, ge=0, le=180)  # degrees
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # Outlier exposure (Hendrycks et al. 2019): per batch, this fraction of extra noise images
    # (uniform pixels and smooth blobs) trained towards a uniform softmax, so the judge is not
    # confident on garbage; ReLU nets otherwise call uniform noise a digit with p > 0.9.
    outlier_exposure: float = Field(0.25, ge=0, le=1)
    outlier_weight: float = Field(0.5, ge=0)
    eval_batch_size: int = Field(1000, ge=1)

    @field_validator("channels")
    @classmethod
    def _positive_widths(cls, v: list[int]) -> list[int]:
        if not v or any(c <= 0 for c in v):
            raise ValueError(f"must be a non-empty list of positive conv widths, got {v}")
        return v


@dataclass
class ClassifierResult:
    model: Classifier
    history: list[dict[str, float]]  # one row per epoch: epoch, train/test loss and accuracy
    metrics: dict[str, float]  # classifier/... final numbers (deterministic on CPU)
    confusion: np.ndarray  # (K, K) counts, rows = true class, columns = predicted
    optimizer_state: dict[str, Any]
    steps: int
    seconds: float  # wall time of training (not in `metrics`: it varies run to run)
    timing: dict[str, float] = field(default_factory=dict)


def random_affine(x: torch.Tensor, max_shift: float, max_rotate: float, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels and rotate it by up to `max_rotate` degrees.

    One batched resampling: (B, C, H, W) -> (B, C, H, W), zeros (black) flow in at the borders.
    """
    b, _, h, w = x.shape
    u = torch.rand(b, 3, generator=generator).to(x.device) * 2 - 1  # (B, 3) in [-1, 1)
    angle = u[:, 0] * math.radians(max_rotate)
    # affine_grid works in normalised coordinates: one pixel is 2/W (x) or 2/H (y)
    tx, ty = u[:, 1] * max_shift * 2 / w, u[:, 2] * max_shift * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def noise_images(n: int, c: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """(n, C, H, W) float outliers in [0, 1]: half uniform pixel noise, half smooth random blobs."""
    pixels = torch.rand(n, c, h, w, generator=generator)
    coarse = torch.rand(n, c, max(h // 4, 1), max(w // 4, 1), generator=generator)  # (n, C, H/4, W/4)
    blobs = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)  # -> (n, C, H, W)
    return torch.where(torch.arange(n).view(n, 1, 1, 1) % 2 == 0, pixels, blobs)


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy from the uniform distribution to the softmax (minimal, ln K, when uniform)."""
    return -F.log_softmax(logits.float(), dim=1).mean()


def _as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    # np.require copies only read-only or non-contiguous arrays (torch needs writable memory)
    return torch.from_numpy(np.require(a, requirements=["C", "W"])).to(device)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1], channels_last."""
    return x.float().div_(255).contiguous(memory_format=torch.channels_last)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_split(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predictions) of `model` on uint8 `images` (N, C, H, W)."""
    was_training = model.training
    model.eval()
    total, correct, preds = 0.0, 0, []
    for i in range(0, len(images), batch_size):
        xb = _to_float(images[i : i + batch_size])
        yb = labels[i : i + batch_size]
        with _autocast(images.device):
            logits = model(xb)
        total += F.cross_entropy(logits.float(), yb, reduction="sum").item()
        p = logits.argmax(1)
        correct += int((p == yb).sum())
        preds.append(p)
    model.train(was_training)
    return total / len(images), correct / len(images), torch.cat(preds)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def _make_optimizer(model: Classifier, p: ClassifierParams) -> torch.optim.Optimizer:
    if p.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, nesterov=p.momentum > 0,
                           weight_decay=p.weight_decay)


def _make_schedule(opt: torch.optim.Optimizer, p: ClassifierParams, total_steps: int):
    if p.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=total_steps, pct_start=0.25)
    if p.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def train_classifier(
    params: ClassifierParams,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    class_names: list[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> ClassifierResult:
    """Train a :class:`Classifier` on uint8 (N, C, H, W) images; evaluate on the test split each epoch."""
    device = torch.device(device)
    n, c, h, w = train_images.shape
    if h != w:
        raise ValueError(f"classifier: expects square images, got {h}x{w}")
    if test_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(f"classifier: test images {test_images.shape[1:]} differ from train images {train_images.shape[1:]}")
    num_classes = len(class_names) if class_names else int(max(train_labels.max(), test_labels.max())) + 1
    config = ClassifierConfig(
        in_channels=c, image_size=h, num_classes=num_classes, class_names=list(class_names or []),
        channels=list(params.channels), convs_per_block=params.convs_per_block, hidden=params.hidden,
        dropout=params.dropout,
    )
    torch.manual_seed(seed)
    # channels_last: ~1.5x faster convolutions on CPU (measured), native layout for cuDNN
    model = Classifier(config).to(device, memory_format=torch.channels_last)
    opt = _make_optimizer(model, params)
    steps_per_epoch = math.ceil(n / params.batch_size)
    total_steps = steps_per_epoch * params.epochs
    sched = _make_schedule(opt, params, total_steps)

    # data resident on the device as uint8 tensors, converted to float per batch
    x_train, x_test = _as_tensor(train_images, device), _as_tensor(test_images, device)
    y_train = _as_tensor(np.asarray(train_labels, dtype=np.int64), device)
    y_test = _as_tensor(np.asarray(test_labels, dtype=np.int64), device)
    gen = torch.Generator().manual_seed(seed)

    history: list[dict[str, float]] = []
    step, t0 = 0, time.perf_counter()
    bar = progress(total=total_steps, desc="train_classifier", unit="step")
    for epoch in range(1, params.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, params.batch_size):
            idx = perm[i : i + params.batch_size]
            xb = _to_float(x_train[idx])  # (B, C, H, W) uint8 -> float in [0, 1]
            yb = y_train[idx]
            if params.augment:
                xb = random_affine(xb, params.max_shift, params.max_rotate, gen)
            n_out = round(params.outlier_exposure * len(idx)) if params.outlier_weight > 0 else 0
            if n_out:
                noise = noise_images(n_out, c, h, w, gen).to(device)
                xb = torch.cat([xb, noise.contiguous(memory_format=torch.channels_last)])  # (B + n_out, C, H, W)
            with _autocast(device):
                out = model(xb)
            logits = out[: len(idx)]
            ce = classification_loss(logits, yb, params.label_smoothing)
            loss = ce + params.outlier_weight * outlier_loss(out[len(idx):]) if n_out else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            loss_sum += ce.item() * len(idx)  # the classification loss alone, comparable to test_loss
            correct += int((logits.argmax(1) == yb).sum())
            bar.update(1)
        test_loss, test_acc, test_preds = evaluate_split(model, x_test, y_test, params.eval_batch_size)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / n,
            "test_loss": test_loss,
            "train_acc": correct / n,
            "test_acc": test_acc,
        }
        history.append(row)
        bar.set_postfix(test_acc=f"{test_acc:.4f}")
        log(f"classifier epoch {epoch}/{params.epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f" | test loss {test_loss:.4f} acc {test_acc:.4f}")
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()

    cm = confusion_matrix(y_test.cpu().numpy(), test_preds.cpu().numpy(), num_classes)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    last = history[-1]
    metrics = {
        "classifier/test_acc": last["test_acc"],
        "classifier/test_loss": last["test_loss"],
        "classifier/train_acc": last["train_acc"],
        "classifier/train_loss": last["train_loss"],
        "classifier/worst_class_acc": float(per_class.min()),
        "classifier/epochs": params.epochs,
        "classifier/steps": step,
        "classifier/n_params": sum(p.numel() for p in model.parameters()),
    }
    timing = {"train_seconds": seconds, "images_per_s": n * params.epochs / seconds}
    return ClassifierResult(model, history, metrics, cm, opt.state_dict(), step, seconds, timing)

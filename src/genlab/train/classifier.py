"""The classifier step: cross-entropy on real images (+ outlier exposure), plugged into the shared loop.

Images stay ``uint8`` on the device and are converted per batch; augmentation (small random
shifts and rotations) is one batched ``affine_grid``/``grid_sample`` call, no per-sample Python.
The test split is evaluated at each epoch end. Batch order, resume, precision, the NaN guard,
history and timing are the loop's (:mod:`genlab.train.loop`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from genlab.errors import InputError
from genlab.models import classifier as classifier_model
from genlab.models.classifier import Classifier, classification_loss
from genlab.params import ModelSection, model_section
from genlab.params import resume_key as params_resume_key
from genlab.runtime import log
from genlab.train.loop import Loop, LoopConfig, StepModule


class _ClassifierTrainParams(ModelSection):
    """The ``classifier`` section of params.yaml: these training keys plus the model's
    (models/classifier.py Config: channels, convs_per_block, hidden, dropout)."""

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    epochs: int = Field(2, ge=1)
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
    log_every: int = Field(50, ge=1)  # steps per history row (MLflow curves)
    checkpoint_every: int = Field(200, ge=1)  # steps between resume checkpoints
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA and CPUs with native bf16 (AMX, AVX512-BF16), fp32 elsewhere

    def model_config_for_data(self, in_channels: int, image_size: int, class_names: list[str]) -> classifier_model.Config:
        return self.config_for(in_channels=in_channels, image_size=image_size, num_classes=len(class_names),
                               class_names=list(class_names))


_DATA_KEYS = ("in_channels", "image_size", "num_classes", "class_names")
DATA_KEY_PATHS = {"in_channels": "prepare_images.channels", "image_size": "prepare_images.image_size"}
ClassifierParams = model_section("ClassifierParams", classifier_model.Config, _ClassifierTrainParams,
                                 section="classifier", exclude=_DATA_KEYS, data_key_paths=DATA_KEY_PATHS)
# The only classifier keys that may differ between a run and its resume; every other key must
# match (genlab.params.resume_key), epochs too: it sets the schedule.
RESUME_MAY_CHANGE = ("eval_batch_size", "log_every", "checkpoint_every")


def resume_key(cfg: Any) -> dict[str, Any]:
    """The config values a resume checkpoint must share with this run: all but RESUME_MAY_CHANGE."""
    return params_resume_key(cfg, RESUME_MAY_CHANGE)


@dataclass
class ClassifierResult:
    model: Classifier
    history: list[dict[str, float]]  # one row per epoch: epoch, train/test loss and accuracy
    metrics: dict[str, float]  # classifier/... final numbers (deterministic on CPU)
    confusion: np.ndarray  # (K, K) counts, rows = true class, columns = predicted
    steps: int
    seconds: float  # wall time of training (not in `metrics`: it varies run to run)
    timing: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0


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


@torch.no_grad()
def evaluate_split(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, autocast: Any = None
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predictions) of `model` on uint8 `images` (N, C, H, W)."""
    was_training = model.training
    model.eval()
    total, correct, preds = 0.0, 0, []
    for i in range(0, len(images), batch_size):
        xb = _to_float(images[i : i + batch_size])
        yb = labels[i : i + batch_size]
        with autocast if autocast is not None else contextlib.nullcontext():
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


class ClassifierStep(StepModule):
    def __init__(self, cfg: Any, model: Classifier, x_train: torch.Tensor, y_train: torch.Tensor,
                 x_test: torch.Tensor, y_test: torch.Tensor, total_steps: int, seed: int):
        self.cfg, self.model = cfg, model
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.opt = _make_optimizer(model, cfg)
        sched = _make_schedule(self.opt, cfg, total_steps)
        self.modules, self.optimizers = {"model": model}, {"opt": self.opt}
        self.forward: torch.nn.Module = model  # under torchrun: model in DDP (distribute)
        self.schedulers = {"sched": sched} if sched is not None else {}
        self.gen = torch.Generator().manual_seed(seed)  # augmentation and outlier images
        self.test_preds: torch.Tensor | None = None

    def distribute(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        self.forward = data_parallel(self.model)

    def step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, device = self.cfg, self.x_train.device
        xb = _to_float(self.x_train[idx])  # (B, C, H, W) uint8 -> float in [0, 1]
        yb = self.y_train[idx]
        if cfg.augment:
            xb = random_affine(xb, cfg.max_shift, cfg.max_rotate, self.gen)
        n_out = round(cfg.outlier_exposure * len(idx)) if cfg.outlier_weight > 0 else 0
        if n_out:
            _, c, h, w = xb.shape
            noise = noise_images(n_out, c, h, w, self.gen).to(device)
            xb = torch.cat([xb, noise.contiguous(memory_format=torch.channels_last)])  # (B + n_out, C, H, W)
        with self.loop.autocast():
            out = self.forward(xb)
        logits = out[: len(idx)]
        ce = classification_loss(logits, yb, cfg.label_smoothing)
        loss = ce + cfg.outlier_weight * outlier_loss(out[len(idx):]) if n_out else ce
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.schedulers:
            self.schedulers["sched"].step()
        # the classification loss alone, comparable to test_loss
        return {"loss": ce.detach(), "acc": (logits.detach().argmax(1) == yb).float().mean()}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        train = self.loop.epoch_means
        test_loss, test_acc, self.test_preds = evaluate_split(self.model, self.x_test, self.y_test,
                                                              self.cfg.eval_batch_size, self.loop.autocast())
        log(f"classifier epoch {epoch}/{self.cfg.epochs}: train loss {train['loss']:.4f} acc {train['acc']:.4f}"
            f" | test loss {test_loss:.4f} acc {test_acc:.4f}")
        return {"train_loss": train["loss"], "test_loss": test_loss, "train_acc": train["acc"], "test_acc": test_acc}

    def extra_state(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


def train_classifier(
    cfg: Any,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    class_names: list[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    resume_path: str | Path | None = None,
    data_fingerprint: str = "",
) -> ClassifierResult:
    """Train a :class:`Classifier` (`cfg`: a :data:`ClassifierParams`) on uint8 (N, C, H, W)
    images; evaluate on the test split each epoch; resumable from `resume_path`."""
    device = torch.device(device)
    n, c, h, w = train_images.shape
    if h != w:
        raise InputError(f"classifier: expects square images, got {h}x{w}")
    if test_images.shape[1:] != train_images.shape[1:]:
        raise InputError(f"classifier: test images {test_images.shape[1:]} differ from train images {train_images.shape[1:]}")
    num_classes = len(class_names) if class_names else int(max(train_labels.max(), test_labels.max())) + 1
    mcfg = cfg.model_config_for_data(c, h, list(class_names or [str(i) for i in range(num_classes)]))
    torch.manual_seed(seed)  # weight init from the params' seed, whoever calls
    model = classifier_model.build(mcfg).to(device)
    loop_cfg = LoopConfig(
        name="classifier", n_items=n, batch_size=cfg.batch_size, epochs=cfg.epochs, seed=seed, device=device,
        amp=cfg.amp, drop_last=False, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
        resume_path=resume_path, resume_key=resume_key(cfg), data_fingerprint=data_fingerprint,
    )
    # data resident on the device as uint8 tensors, converted to float per batch
    x_train, x_test = _as_tensor(train_images, device), _as_tensor(test_images, device)
    y_train = _as_tensor(np.asarray(train_labels, dtype=np.int64), device)
    y_test = _as_tensor(np.asarray(test_labels, dtype=np.int64), device)
    trainer = ClassifierStep(cfg, model, x_train, y_train, x_test, y_test, loop_cfg.total_steps, seed)
    res = Loop(loop_cfg, trainer).run()
    model.eval()
    if trainer.test_preds is None:  # restored from a finished checkpoint: predict once more
        _, _, trainer.test_preds = evaluate_split(model, x_test, y_test, cfg.eval_batch_size)
    cm = confusion_matrix(y_test.cpu().numpy(), trainer.test_preds.cpu().numpy(), num_classes)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    last = res.epoch_history[-1]
    metrics = {
        "classifier/test_acc": last["test_acc"],
        "classifier/test_loss": last["test_loss"],
        "classifier/train_acc": last["train_acc"],
        "classifier/train_loss": last["train_loss"],
        "classifier/worst_class_acc": float(per_class.min()),
        "classifier/epochs": cfg.epochs,
        "classifier/steps": res.step,
        "classifier/n_params": sum(p.numel() for p in model.parameters()),
        "classifier/bf16": int(res.bf16),
    }
    seconds = res.train_seconds
    timing = {"train_seconds": seconds, "images_per_s": n * cfg.epochs / seconds if seconds else 0.0}
    return ClassifierResult(model, res.epoch_history, metrics, cm, res.step, seconds, timing, res.resumed_from_step)

"""The VAE step: one Adam step on the beta-weighted negative ELBO, plugged into the shared loop.

Data stay resident on the device as uint8 tensors. At each epoch end the test negative ELBO
(beta = 1) is measured with fixed noise, and reconstructions of fixed test images are drawn
every ``recon_every`` epochs and handed to the caller's ``on_reconstruction`` hook (the stage
draws them with :mod:`genlab.render.vae_figures`; training imports nothing of rendering). Batch order, resume, precision, the NaN guard, history and
timing are the loop's (:mod:`genlab.train.loop`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field

from genlab.errors import InputError
from genlab.models import vae as vae_model
from genlab.models.vae import VAE
from genlab.distributed import is_main_process
from genlab.params import ModelSection, model_section
from genlab.params import resume_key as params_resume_key
from genlab.runtime import log
from genlab.train.loop import Loop, LoopConfig, MethodAsForward, StepModule, TrainingDiverged, adam

__all__ = ["VaeParams", "VaeData", "VaeRun", "TrainingDiverged", "train_vae", "evaluate"]

N_RECON = 16  # fixed test images shown in each reconstruction figure
# (epoch, test images, their reconstructions) -> the figure drawn, if any
ReconstructionHook = Callable[[int, torch.Tensor, torch.Tensor], "str | Path | None"]
EVAL_BATCH = 1000


class _VaeTrainParams(ModelSection):
    """The `vae` section of params.yaml: these training keys plus the model's (models/vae.py Config)."""

    conditional: bool = False  # one-hot label concatenated to encoder input and latent
    beta: float = Field(1.0, ge=0)  # KL weight; 1 is the plain VAE
    lr: float = Field(5e-3, gt=0)  # Adam
    # per step over all epochs: cosine decays to lr/10; onecycle warms up over the first quarter to lr, then anneals
    lr_schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(128, ge=2)
    recon_every: int = Field(2, ge=1)  # reconstructions of fixed test images every N epochs
    log_every: int = Field(50, ge=1)  # steps per history row (MLflow curves)
    checkpoint_every: int = Field(200, ge=1)  # steps between resume checkpoints
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA and CPUs with native bf16 (AMX, AVX512-BF16), fp32 elsewhere

    def model_config_for_data(self, image_shape: tuple[int, int, int], num_classes: int) -> vae_model.Config:
        return self.config_for(image_shape=tuple(image_shape), num_classes=num_classes if self.conditional else None)


DATA_KEY_PATHS = {"image_shape": "prepare_images.image_size", "num_classes": "vae.conditional"}
VaeParams = model_section("VaeParams", vae_model.Config, _VaeTrainParams, section="vae",
                          exclude=("image_shape", "num_classes"), data_key_paths=DATA_KEY_PATHS,
                          defaults={"z_dim": 16})  # the model's own default, 2, draws the manifold figures
# The only vae keys that may differ between a run and its resume (genlab.params.resume_key):
# epochs (a run may be extended; not with a schedule, which it sets), recon_every (figures
# only), log_every and checkpoint_every (bookkeeping).
RESUME_MAY_CHANGE = ("epochs", "recon_every", "log_every", "checkpoint_every")


def resume_key(cfg: Any) -> dict[str, Any]:
    """The config values a resume checkpoint must share with this run: all but RESUME_MAY_CHANGE."""
    scheduled = cfg.lr_schedule != "constant"
    return params_resume_key(cfg, [k for k in RESUME_MAY_CHANGE if not (k == "epochs" and scheduled)])


@dataclass
class VaeData:
    """An image set in the shared format: uint8 (N, C, H, W) and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    fingerprint: str = ""  # identifies the data in the resume key (sha256 of meta.json)


@dataclass
class VaeRun:
    model: VAE
    history: list[dict[str, Any]]  # one row per epoch: train and test losses
    steps: list[dict[str, Any]]  # a row every log_every steps
    metrics: dict[str, float]
    figures: list[Path] = field(default_factory=list)
    resumed_from: int = 0  # step
    wall_s: float = 0.0


def _to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0)


@torch.no_grad()
def evaluate(model: VAE, images: torch.Tensor, labels: torch.Tensor, seed: int, batch: int = EVAL_BATCH,
             autocast: AbstractContextManager | None = None) -> dict[str, float]:
    """Test negative ELBO (beta = 1) and its parts, nats per image, one z per image drawn from a
    generator seeded by `seed` (the same noise at every evaluation; the global RNG is untouched)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    recon_sum = kl_sum = 0.0
    for i in range(0, images.shape[0], batch):
        x = _to_unit(images[i: i + batch])
        y = labels[i: i + batch]
        eps = torch.randn(x.shape[0], model.z_dim, generator=gen).to(x.device)
        with autocast if autocast is not None else nullcontext():
            out = model.loss(x, y, 1.0, eps)
        recon_sum += out.recon.double().sum().item()
        kl_sum += out.kl.double().sum().item()
    model.train(was_training)
    n = images.shape[0]
    return {"recon": recon_sum / n, "kl": kl_sum / n, "loss": (recon_sum + kl_sum) / n}


def fixed_test_indices(labels: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """`n` test indices fixed by the seed, cycling through the classes so each one shows."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    out: list[int] = []
    while len(out) < min(n, len(labels)):
        for c in classes:
            if pools[c] and len(out) < n:
                out.append(int(pools[c].pop()))
    return torch.tensor(out, dtype=torch.long)


@torch.no_grad()
def reconstruct(model: VAE, x_uint8: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Decoded posterior means (z = mu) of `x_uint8`, float (N, C, H, W) in [0, 1], on the CPU."""
    was_training = model.training
    model.eval()
    x = _to_unit(x_uint8)
    mu, _ = model.encode(x, labels)
    out = model.decode(mu, labels).float().cpu()
    model.train(was_training)
    return out


class VaeStep(StepModule):
    def __init__(self, cfg: Any, model: VAE, data: VaeData, device: torch.device, seed: int,
                 on_reconstruction: ReconstructionHook | None, total_steps: int):
        self.cfg, self.model, self.seed, self.on_reconstruction = cfg, model, seed, on_reconstruction
        self.opt = adam(model.parameters(), lr=cfg.lr)
        self.modules, self.optimizers = {"model": model}, {"opt": self.opt}
        self.train_loss: Callable[..., Any] = model.loss  # under torchrun: through DDP (distribute)
        self.schedulers = {}
        if cfg.lr_schedule == "cosine":
            self.schedulers["sched"] = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=total_steps,
                                                                                  eta_min=cfg.lr / 10)
        elif cfg.lr_schedule == "onecycle":
            if total_steps < 8:  # torch's OneCycleLR divides by zero on a warm-up shorter than 2 steps
                raise InputError(f"vae.lr_schedule: onecycle needs at least 8 steps, this run has {total_steps} "
                                 "(raise vae.epochs or lower vae.batch_size)")
            self.schedulers["sched"] = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=cfg.lr, total_steps=total_steps,
                                                                           pct_start=0.25)
        self.x_train = torch.from_numpy(np.ascontiguousarray(data.train_images)).to(device)
        self.y_train = torch.from_numpy(np.asarray(data.train_labels, dtype=np.int64)).to(device)
        self.x_test = torch.from_numpy(np.ascontiguousarray(data.test_images)).to(device)
        self.y_test = torch.from_numpy(np.asarray(data.test_labels, dtype=np.int64)).to(device)
        self.recon_idx = fixed_test_indices(data.test_labels, N_RECON, seed).to(device)
        self.figures: list[Path] = []
        self.recons: list[tuple[int, torch.Tensor]] = []  # (epoch, decoded means of the fixed test images)

    def _draw(self, epoch: int, recon: torch.Tensor) -> None:
        if self.on_reconstruction is not None:
            figure = self.on_reconstruction(epoch, _to_unit(self.x_test[self.recon_idx]), recon)
            if figure is not None:
                self.figures.append(Path(figure))

    def extra_state(self) -> dict[str, Any]:
        return {"recon_epochs": [e for e, _ in self.recons], "recons": [r for _, r in self.recons]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the reconstructions so far and draw them again (DVC removed their figures)."""
        self.recons = [(int(e), r.cpu()) for e, r in zip(state["recon_epochs"], state["recons"])]
        for e, r in self.recons:
            self._draw(e, r)

    def distribute(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        self.train_loss = data_parallel(MethodAsForward(self.model, "loss"))

    def step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = _to_unit(self.x_train[idx]), self.y_train[idx]
        with self.loop.autocast():
            out = self.train_loss(x, y, self.cfg.beta)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        self.opt.step()
        if self.schedulers:
            self.schedulers["sched"].step()
        return {"loss": out.recon.detach().mean() + out.kl.detach().mean(),  # -ELBO (beta = 1), nats/image
                "recon": out.recon.detach().mean(), "kl": out.kl.detach().mean()}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        train = self.loop.epoch_means
        test = evaluate(self.model, self.x_test, self.y_test, self.seed, autocast=self.loop.autocast())
        log(f"vae epoch {epoch}: train -ELBO {train['loss']:.2f} (recon {train['recon']:.2f}, KL {train['kl']:.2f}); "
            f"test -ELBO {test['loss']:.2f} (recon {test['recon']:.2f}, KL {test['kl']:.2f}) nats/image")
        if epoch % self.cfg.recon_every == 0 or epoch == self.cfg.epochs:
            self.recons.append((epoch, reconstruct(self.model, self.x_test[self.recon_idx], self.y_test[self.recon_idx])))
            self._draw(*self.recons[-1])
        return {"train_loss": train["loss"], "train_recon": train["recon"], "train_kl": train["kl"],
                "test_loss": test["loss"], "test_recon": test["recon"], "test_kl": test["kl"]}


def train_vae(cfg: Any, data: VaeData, *, seed: int, device: torch.device | str = "cpu",
              resume_path: str | Path | None = None, on_reconstruction: ReconstructionHook | None = None,
              history_sinks: dict[str, Any] | None = None) -> VaeRun:
    """Train a VAE (`cfg`: a :data:`VaeParams`) on `data`. Raises :class:`TrainingDiverged` on a
    NaN/Inf loss, leaving the last good resume checkpoint in place. `on_reconstruction(epoch,
    images, reconstructions)` receives the fixed test images and their decoded means (float
    (N, C, H, W) in [0, 1]) every ``recon_every`` epochs, on rank 0 only; the path of a figure it
    returns joins ``VaeRun.figures``."""
    device = torch.device(device)
    if data.train_images.shape[0] < 2:
        raise InputError("vae: needs at least 2 training images")
    shape = tuple(int(v) for v in data.train_images.shape[1:])
    torch.manual_seed(seed)  # weight init from the params' seed, whoever calls
    model = vae_model.build(cfg.model_config_for_data(shape, data.num_classes)).to(device)
    on_reconstruction = on_reconstruction if is_main_process() else None  # under DDP, rank 0 writes
    key = resume_key(cfg)
    loop_cfg = LoopConfig(
        name="vae", n_items=data.train_images.shape[0], batch_size=cfg.batch_size, epochs=cfg.epochs, seed=seed,
        device=device, amp=cfg.amp, drop_last=True, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
        resume_path=resume_path, resume_key=key, data_fingerprint=data.fingerprint,
        history_sinks=history_sinks or {},
    )
    trainer = VaeStep(cfg, model, data, device, seed, on_reconstruction, loop_cfg.total_steps)
    loop = Loop(loop_cfg, trainer)
    res = loop.run()
    model.eval()
    final = res.epoch_history[-1]
    metrics = {
        "vae/test_loss": final["test_loss"],
        "vae/test_recon": final["test_recon"],
        "vae/test_kl": final["test_kl"],
        "vae/train_loss": final["train_loss"],
        "vae/epochs": final["epoch"],
        "vae/steps": res.step,
        "vae/bf16": int(res.bf16),
    }
    return VaeRun(model, res.epoch_history, res.history, metrics, trainer.figures, res.resumed_from_step,
                  res.train_seconds)

"""The DCGAN step: one D update and one G update per batch, plugged into the shared loop.

Speed: the uint8 image set lives on the device as one tensor and a batch is an index into it;
channels_last; D's weights stop requiring grad during G's step, so G's backward pass does not
compute D's weight gradients it would throw away. The saved generator is an exponential moving
average of G's weights (Yazici et al. 2019) whose BatchNorm statistics are measured again at
each epoch end. Batch order, resume, precision, the NaN guard, history and timing are the
loop's (:mod:`genlab.train.loop`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel

from genlab.data.arrays import to_uint8
from genlab.models import gan as gan_model
from genlab.models.contract import ConfigError
from genlab.models.gan import Discriminator, Generator, discriminator_accuracy, discriminator_loss, generator_loss
from genlab.distributed import is_main_process
from genlab.params import ModelSection, model_section
from genlab.params import resume_key as params_resume_key
from genlab.grids import make_grid, save_image
from genlab.train.diffaugment import diff_augment, parse_policy
from genlab.train.loop import Loop, LoopConfig, StepModule, adam


class _GanTrainParams(ModelSection):
    """The ``gan`` section of params.yaml: these training keys plus the model's (models/gan.py Config)."""

    loss: Literal["bce", "nonsaturating", "lsgan"] = "nonsaturating"
    conditional: bool = False  # class-conditional G and projection D (needs labels)
    epochs: int = Field(5, gt=0)
    # a budget in images seen: overrides epochs with the fewest whole epochs that see this many images
    images: int | None = Field(None, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(8.5e-4, gt=0)
    lr_d: float | None = Field(None, gt=0)  # overrides lr for D
    lr_g: float | None = Field(None, gt=0)  # overrides lr for G
    # adam (beta1, beta2) | rmsprop (alpha = beta2, momentum) | sgd (momentum): the seed report compared all three
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)  # rmsprop and sgd only
    # constant | linear: both lrs fall linearly to 0 over the last `decay_fraction` of the steps
    schedule: Literal["constant", "linear"] = "constant"
    decay_fraction: float = Field(0.5, gt=0.0, le=1.0)
    limit: int | None = Field(None, gt=0)  # train on the first N images only
    # ganhacks
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # one-sided: real target 1 - this
    instance_noise: float = Field(0.0, ge=0.0)  # std of noise on D's inputs, decays to 0
    # DiffAugment policy (Zhao et al. 2020) on D's inputs, real and fake, in both steps: "" = off
    diffaugment: str = ""
    label_flip: float = Field(0.0, ge=0.0, lt=0.5)  # chance to swap a D target
    # sample from an exponential moving average of G's weights, its BatchNorm statistics
    # recomputed; 0 = sample from G as trained
    ema: float = Field(0.999, ge=0.0, lt=1.0)
    # bookkeeping
    sample_every: int = Field(1, gt=0)  # epochs between grids
    # images seen between grids and EMA BatchNorm recalibrations (overrides sample_every; small sets)
    sample_every_images: int | None = Field(None, gt=0)
    recal_samples: int = Field(10240, gt=0)  # prior samples per recalibration (at most 4x the training images, >= 1024)
    n_samples: int = Field(64, gt=0, le=1024)  # images in each grid
    # images seen between frames of the progress video (fixed noise, G as trained); 0: no frames
    video_every: int = Field(6000, ge=0)
    video_fps: int = Field(10, gt=0, le=60)  # frames per second of reports/gan/progress.mp4
    log_every: int = Field(20, gt=0)  # steps per row of plots/gan/losses.tsv
    checkpoint_every: int = Field(100, gt=0)  # steps between resume checkpoints
    compile: bool = False  # torch.compile both nets
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA and CPUs with native bf16 (AMX, AVX512-BF16), fp32 elsewhere
    channels_last: bool = True  # NHWC memory format (faster convs on CUDA and with oneDNN on CPU)

    @field_validator("diffaugment")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        parse_policy(v)
        return v

    def placeholder_data(self) -> dict[str, Any]:
        return {"image_size": gan_model.SIZES[self.arch][0]}  # type: ignore[attr-defined]  # a size valid for the arch

    def model_config_for_data(self, channels: int, image_size: int, num_classes: int | None) -> gan_model.Config:
        return self.config_for(channels=channels, image_size=image_size,
                               num_classes=num_classes if self.conditional else None)  # type: ignore[attr-defined]


_DATA_KEYS = ("channels", "image_size", "num_classes")  # set from the data, not from params
DATA_KEY_PATHS = {"image_size": "prepare_images.image_size", "channels": "prepare_images.channels",
                  "num_classes": "gan.conditional"}
GanParams = model_section("GanParams", gan_model.Config, _GanTrainParams, section="gan", exclude=_DATA_KEYS,
                          data_key_paths=DATA_KEY_PATHS)
# The only gan keys that may differ between a run and its resume; every other key must match
# (genlab.params.resume_key). epochs and images: a run may be extended, unless something decays over the
# whole run (instance noise, the linear schedule); the rest is bookkeeping, grids (drawn from
# their own fixed noise) and compilation, which change no trained number.
RESUME_MAY_CHANGE = ("epochs", "images", "log_every", "checkpoint_every", "sample_every", "n_samples", "video_fps",
                     "compile")


@dataclass
class GanResult:
    generator: Generator  # the one to sample from: the EMA of G when gan.ema > 0
    discriminator: Discriminator
    model_config: gan_model.Config
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    grids: list[tuple[int, np.ndarray]]  # (epoch, uint8 (H, W, C))
    resumed_from_step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (images seen, uint8 (H, W, C)) video frames


def array_fingerprint(images: np.ndarray, labels: np.ndarray | None) -> str:
    """sha256 of the training arrays themselves (shape, pixels, labels), for the resume key; not
    :func:`genlab.tracking.data_fingerprint`, the hash of a data stage's meta.json."""
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).data)
    if labels is not None:
        h.update(np.ascontiguousarray(labels).data)
    return h.hexdigest()


def ema_multi_avg_fn(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """EMA for `AveragedModel` with warm-up: update n uses min(decay, (1 + n) / (10 + n)).

    Without the warm-up a 0.999 average still weighs the random initial G by 0.999^937 = 0.39
    after one epoch of 60k digits at batch 64, and its samples are noise.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


@torch.no_grad()
def recalibrate_batchnorm(gen: Generator, *, seed: int, n: int = 10240, batch_size: int = 256) -> Generator:
    """Set G's BatchNorm running statistics to their average over `n` prior samples, in place.

    An averaged G's weights do not match the statistics G collected while it trained, so they
    are measured again, as SWA does (`torch.optim.swa_utils.update_bn`), but with latents as
    the input. A seeded CPU generator draws the latents (and balanced labels): the global RNG
    that training uses is left alone. Returns `gen` in eval mode. Batches of 256: on a CPU,
    oneDNN's transposed convolutions are slower per image at batch 1024 (cache misses;
    docs/speed.md).
    """
    bns = [m for m in gen.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        return gen.eval()
    device = next(gen.parameters()).device
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    rng = torch.Generator().manual_seed(seed)
    gen.train()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = torch.randn(b, gen.z_dim, generator=rng).to(device)
        y = (torch.arange(start, start + b) % gen.num_classes).to(device) if gen.num_classes else None
        gen(z, y)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return gen.eval()


@torch.no_grad()
def sample_grid(gen: Generator, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    """The fixed-noise grid in eval mode and fp32 (BatchNorm running stats: what `decode` will produce)."""
    was_training = gen.training
    gen.eval()
    x = gen(z, y).float()
    gen.train(was_training)
    return make_grid(to_uint8(x.cpu().numpy()), pad_value=0)  # tanh range -> uint8 grid (H', W', C)


@torch.no_grad()
def sample_grid_as_trained(gen: Generator, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    """The fixed-noise grid from G in train mode, fp32: BatchNorm normalises with the fixed
    batch's own statistics, as in G's training steps. (G's running statistics lag behind its
    weights for the first hundred or so steps, and eval-mode samples are flat grey there.) G's
    buffers are put back, so training goes on as if this had not run."""
    buffers = [b.clone() for b in gen.buffers()]
    was_training = gen.training
    gen.train()
    try:
        x = gen(z, y).float()
    finally:
        gen.train(was_training)
        for b, saved in zip(gen.buffers(), buffers):
            b.copy_(saved)
    return make_grid(to_uint8(x.cpu().numpy()), pad_value=0)  # tanh range -> uint8 grid (H', W', C)


def make_optimizer(cfg: Any, params: Any, lr: float) -> torch.optim.Optimizer:
    """gan.optimizer with its settings; Adam's (beta1, beta2) are the DCGAN paper's (0.5, 0.999).
    Adam is torch's fused kernel on CPU and CUDA (genlab.train.loop.adam)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.beta2, momentum=cfg.momentum)
    return adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))


def linear_decay(total_steps: int, fraction: float) -> Callable[[int], float]:
    """lr factor at step s: 1 until the last `fraction` of `total_steps`, then linearly down to 0
    at the last step (the average of late, small steps is what the samples show)."""
    start = total_steps * (1 - fraction)

    def factor(step: int) -> float:
        return 1.0 if step < start else max(0.0, (total_steps - step) / max(total_steps - start, 1))

    return factor


class GanStep(StepModule):
    """(1) Update D: maximise log D(x) + log(1 - D(G(z))); (2) update G: maximise log D(G(z))."""

    def __init__(self, cfg: Any, mcfg: gan_model.Config, data: torch.Tensor, labels: torch.Tensor | None,
                 *, seed: int, grid_dir: Path | None, on_epoch_end: Callable | None, total_steps: int,
                 epochs: int | None = None, images_per_epoch: int | None = None):
        self.cfg, self.mcfg, self.data, self.labels, self.seed = cfg, mcfg, data, labels, seed
        self.epochs = epochs or cfg.epochs  # gan.images turned into whole epochs by train_gan
        self.images_per_epoch = images_per_epoch or data.shape[0]
        self.policy = parse_policy(cfg.diffaugment)
        self.recal_samples = recal_count(cfg.recal_samples, data.shape[0])
        self.grid_dir, self.callback = grid_dir, on_epoch_end
        device = data.device
        torch.manual_seed(seed)  # weight init from the params' seed, whoever calls
        gen, disc = gan_model.build(mcfg)
        gen, disc = gen.to(device), disc.to(device)
        if cfg.channels_last:
            gen, disc = gen.to(memory_format=torch.channels_last), disc.to(memory_format=torch.channels_last)
        self.gen, self.disc = gen, disc
        # the EMA of G's weights (its buffers follow G's until recalibrate_batchnorm); the first update copies G
        self.ema = AveragedModel(gen, multi_avg_fn=ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
        self.opt_g = make_optimizer(cfg, gen.parameters(), cfg.lr_g or cfg.lr)
        self.opt_d = make_optimizer(cfg, disc.parameters(), cfg.lr_d or cfg.lr)
        self.modules = {"generator": gen, "discriminator": disc, **({"ema": self.ema} if self.ema else {})}
        self.optimizers = {"opt_g": self.opt_g, "opt_d": self.opt_d}
        if cfg.schedule == "linear":
            factor = linear_decay(total_steps, cfg.decay_fraction)
            self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.optimizers.items()}
        self.g_step, self.d_step = (torch.compile(gen), torch.compile(disc)) if cfg.compile else (gen, disc)
        self.d_frozen = self.d_step  # D in G's step: its weights frozen, never through DDP
        fixed = torch.Generator().manual_seed(seed + 1)
        self.fixed_z = torch.randn(cfg.n_samples, mcfg.z_dim, generator=fixed).to(device)
        k = mcfg.num_classes
        self.fixed_y = (torch.arange(cfg.n_samples) % k).to(device) if k else None
        self.grids: list[tuple[int, np.ndarray]] = []
        self.frames: list[tuple[int, np.ndarray]] = []  # (images seen, grid): the progress video
        self.real_target = 1.0 - cfg.label_smoothing

    @property
    def sampled(self) -> Generator:
        """The generator that would be saved: the EMA of G when gan.ema > 0."""
        return self.ema.module if self.ema is not None else self.gen

    def step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, loop, device = self.cfg, self.loop, self.data.device
        b = idx.numel()
        x = self.data[idx].float().mul_(2 / 255).sub_(1)  # uint8 (B, C, H, W) -> [-1, 1]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.labels[idx] if self.labels is not None else None
        z = torch.randn(b, self.mcfg.z_dim, device=device)
        sigma = cfg.instance_noise * (1 - loop.step / loop.total_steps) if cfg.instance_noise else 0.0
        if cfg.label_flip:
            flip = torch.rand(2, b, device=device) < cfg.label_flip
            t_real = torch.where(flip[0], 0.0, self.real_target)
            t_fake = torch.where(flip[1], self.real_target, 0.0)
        else:
            t_real, t_fake = self.real_target, 0.0

        with loop.autocast():
            fake = self.g_step(z, y)  # (B, C, H, W)
        # (1) Update D: maximise log D(x) + log(1 - D(G(z)))
        self.disc.requires_grad_(True)
        with loop.autocast():
            d_real_in, d_fake_in = diff_augment(x, self.policy), diff_augment(fake.detach(), self.policy)
            if sigma:
                d_real_in = d_real_in + sigma * torch.randn_like(d_real_in)
                d_fake_in = d_fake_in + sigma * torch.randn_like(d_fake_in)
            out_real = self.d_step(d_real_in, y).float()
            out_fake = self.d_step(d_fake_in, y).float()
            loss_real, loss_fake = discriminator_loss(out_real, out_fake, cfg.loss, t_real, t_fake)
        self.opt_d.zero_grad(set_to_none=True)
        (loss_real + loss_fake).backward()
        self.opt_d.step()
        # (2) Update G: maximise log D(G(z)); D's weights need no gradient here
        self.disc.requires_grad_(False)
        with loop.autocast():
            g_in = diff_augment(fake, self.policy)  # the same policy as D saw: G's gradient flows through it
            g_in = g_in + sigma * torch.randn_like(g_in) if sigma else g_in
            out_g = self.d_frozen(g_in, y).float()
            loss_g = generator_loss(out_g, cfg.loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for sched in self.schedulers.values():
            sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.gen)
        return {
            "d_loss_real": loss_real.detach(), "d_loss_fake": loss_fake.detach(), "g_loss": loss_g.detach(),
            "d_acc_real": discriminator_accuracy(out_real.detach(), cfg.loss, True),
            "d_acc_fake": discriminator_accuracy(out_fake.detach(), cfg.loss, False),
        }

    def distribute(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        """G and D each in DDP; G's step calls the bare D. With D's weights frozen (requires_grad
        off) there, G's backward pass computes no D weight gradient, D's DDP reducer never runs in
        G's step, and each D backward gives every D weight a gradient, as DDP's default
        (find_unused_parameters=False) requires. Chosen over ``no_sync`` (D's gradients would
        still be computed, then thrown away) and ``static_graph`` (D's wrapper would see two
        graph shapes a step, and it still would not skip D's weight gradients)."""
        gen, disc = data_parallel(self.gen), data_parallel(self.disc)
        self.g_step, self.d_step = (torch.compile(gen), torch.compile(disc)) if self.cfg.compile else (gen, disc)

    def does_epoch_work(self, epoch: int) -> bool:
        """Whether the end of `epoch` (1-based) recalibrates the EMA and draws a grid: every epoch,
        or with gan.sample_every_images each time the images seen pass a multiple of it (on a
        small set an epoch is a few steps, and the work would outweigh them); always the last."""
        every = self.cfg.sample_every_images
        if every is None or epoch == self.epochs:
            return True
        seen = epoch * self.images_per_epoch
        return seen // every > (seen - self.images_per_epoch) // every

    def on_epoch_end(self, epoch: int) -> None:
        if not self.does_epoch_work(epoch):
            return None
        sampled = self.gen
        if self.ema is not None:
            sampled = recalibrate_batchnorm(self.ema.module, seed=self.seed * 1_000_003 + epoch, n=self.recal_samples)
        if self.cfg.sample_every_images is not None or epoch % self.cfg.sample_every == 0 or epoch == self.epochs:
            grid = sample_grid(sampled, self.fixed_z, self.fixed_y)
            self.grids.append((epoch, grid))
            if self.grid_dir is not None:
                save_image(grid, self.grid_dir / f"epoch_{epoch:03d}.png")
        if self.callback is not None:
            self.callback(epoch, sampled, self.gen)
        return None

    def on_eval(self, step: int) -> None:
        """A video frame every `video_every` images: the fixed noise through G as it trains (one
        forward pass; the EMA generator would need its BatchNorm statistics measured again)."""
        self.frames.append((step * self.loop.cfg.batch, sample_grid_as_trained(self.gen, self.fixed_z, self.fixed_y)))
        return None

    def extra_state(self) -> dict[str, Any]:
        return {"grid_epochs": [e for e, _ in self.grids], "grids": [torch.from_numpy(g) for _, g in self.grids],
                "frame_images": [i for i, _ in self.frames], "frames": [torch.from_numpy(f) for _, f in self.frames]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.grids = [(int(e), g.cpu().numpy()) for e, g in zip(state["grid_epochs"], state["grids"])]
        self.frames = [(int(i), f.cpu().numpy()) for i, f in zip(state.get("frame_images", []), state.get("frames", []))]
        if self.grid_dir is not None:  # DVC removed the grids of the interrupted run
            for e, g in self.grids:
                save_image(g, self.grid_dir / f"epoch_{e:03d}.png")


def recal_count(recal_samples: int, n_images: int) -> int:
    """Prior samples for one EMA BatchNorm recalibration: gan.recal_samples, but at most 4x the
    training images (at least 1024), so that a 500-image set does not spend longer measuring
    statistics than training."""
    return min(recal_samples, max(1024, 4 * n_images))


def budget_epochs(cfg: Any, n_images: int, batch: int, steps_per_epoch: int) -> int:
    """gan.epochs, or with gan.images the fewest whole epochs that see at least that many images
    (whole epochs: the batch order stays a pure function of seed and epoch)."""
    if cfg.images is None:
        return cfg.epochs
    return max(1, math.ceil(cfg.images / (steps_per_epoch * batch)))


def resume_key(cfg: Any) -> dict[str, Any]:
    """The config values a resume checkpoint must share with this run: all but RESUME_MAY_CHANGE."""
    decays = cfg.instance_noise or cfg.schedule != "constant"
    return params_resume_key(cfg, [k for k in RESUME_MAY_CHANGE if not (k in ("epochs", "images") and decays)])


def train_gan(
    cfg: Any,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume_path: str | Path | None = None,
    grid_dir: str | Path | None = None,
    on_epoch_end: Callable[[int, Generator, Generator], None] | None = None,
    history_sinks: dict[str, Any] | None = None,
) -> GanResult:
    """Train a DCGAN (`cfg`: a :data:`GanParams`) on uint8 images (N, C, H, W).

    `on_epoch_end(epoch, sampled, trained)` is called after each epoch with the generator that
    would be saved (the EMA one when ``cfg.ema`` > 0, in eval mode) and the one being trained;
    it must change neither, and what it draws from torch's RNG cannot change training.
    A :class:`~genlab.models.contract.ConfigError` names the model field that does not fit the data.
    """
    device = torch.device(device)
    if cfg.limit:
        images = images[: cfg.limit]
        labels = labels[: cfg.limit] if labels is not None else None
    if cfg.conditional and labels is None:
        raise ConfigError("num_classes", "gan.conditional: true needs labelled images")
    n, channels, size = images.shape[0], images.shape[1], images.shape[2]
    num_classes = int(labels.max()) + 1 if (cfg.conditional and labels is not None) else None
    mcfg = cfg.model_config_for_data(channels, size, num_classes)
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8, resident
    label_data = torch.from_numpy(labels.astype(np.int64)).to(device) if num_classes else None
    grid_dir = grid_dir if is_main_process() else None  # under DDP, rank 0 writes
    probe = LoopConfig(name="gan", n_items=n, batch_size=cfg.batch_size, epochs=1, seed=seed, device=device)
    epochs = budget_epochs(cfg, n, probe.batch, probe.steps_per_epoch)  # the batch: at most the set
    loop_cfg = LoopConfig(
        name="gan", n_items=n, batch_size=cfg.batch_size, epochs=epochs, seed=seed, device=device, amp=cfg.amp,
        drop_last=True,  # BatchNorm dislikes tiny last batches
        log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, resume_path=resume_path,
        history_sinks=history_sinks or {},
        resume_key=resume_key(cfg), data_fingerprint=array_fingerprint(images, labels if num_classes else None),
        eval_every=max(1, cfg.video_every // min(cfg.batch_size, n)) if cfg.video_every else None,  # video frames
    )
    trainer = GanStep(cfg, mcfg, data, label_data, seed=seed, grid_dir=Path(grid_dir) if grid_dir else None,
                      on_epoch_end=on_epoch_end, total_steps=loop_cfg.total_steps, epochs=epochs,
                      images_per_epoch=loop_cfg.steps_per_epoch * loop_cfg.batch)
    loop = Loop(loop_cfg, trainer)
    res = loop.run()
    batch = loop.cfg.batch
    metrics = {f"gan/{k}": round(v, 6) for k, v in res.last_epoch_means.items()}
    metrics.update({
        "gan/img_per_s": round(res.step * batch / res.train_seconds, 1) if res.train_seconds > 0 else 0.0,
        "gan/train_seconds": round(res.train_seconds, 2),
        "gan/steps": res.step,
        "gan/epochs": epochs,
        "gan/bf16": int(res.bf16),
    })
    gen = trainer.sampled.eval()
    trainer.disc.eval()
    return GanResult(gen, trainer.disc, mcfg, res.history, metrics, trainer.grids, res.resumed_from_step,
                     {"images_this_run": (res.step - res.resumed_from_step) * batch}, frames=trainer.frames)


def save_generator_checkpoint(result: GanResult, path: str | Path, class_names: list[str] | None = None) -> Path:
    """The self-describing checkpoint :func:`genlab.models.gan.load` reads (G and D, config, steps),
    with the data's class names for a conditional G (so `genlab serve` shows the folder names)."""
    extra = {"class_names": [str(c) for c in class_names]} if class_names and result.generator.num_classes else {}
    return gan_model.save(path, (result.generator, result.discriminator),
                          step=int(result.metrics["gan/steps"]), epoch=int(result.metrics["gan/epochs"]), **extra)

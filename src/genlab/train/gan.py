"""The DCGAN training loop: device-resident data, resumable, bit-exact on CPU.

Speed: the uint8 image set lives on the device as one tensor; a batch is an index into a
per-epoch permutation drawn from a generator seeded by (seed, epoch), so no DataLoader, no
per-sample Python transforms. channels_last; bf16 autocast on CUDA and AMX CPUs; ``compile`` wraps
both nets in ``torch.compile``. D's weights stop requiring grad during G's step, so G's
backward pass does not compute D's weight gradients it would throw away.

Resume: every ``checkpoint_every`` steps and at each epoch end, the full training state
(both nets, both optimizers, epoch/step, every RNG, the loss history and the grids so far) is
written atomically to ``resume_path``. A new run with the same config (params, model, data,
device) continues from it; on CPU it ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel

from genlab.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from genlab.models.gan import (
    CHECKPOINT_KIND,
    Discriminator,
    GanModelConfig,
    Generator,
    discriminator_accuracy,
    discriminator_loss,
    generator_loss,
)
from genlab.data.arrays import to_uint8
from genlab.params import StrictModel
from genlab.render.grids import make_grid, save_image
from genlab.runtime import log, progress

METRICS = ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")
RESUME_KIND = "gan-resume"


class GanParams(StrictModel):
    """The ``gan`` section of params.yaml."""

    arch: Literal["mnist28", "dcgan64"] = "mnist28"
    loss: Literal["bce", "nonsaturating", "lsgan"] = "nonsaturating"
    conditional: bool = False  # class-conditional G and projection D (needs labels)
    z_dim: int = Field(100, gt=0)
    init: Literal["normal", "xavier"] = "normal"
    # mnist28 only
    g_layers: int = Field(3, ge=2, le=6)
    g_width: int = Field(64, gt=0)
    d_layout: Literal["dcgan", "report"] = "dcgan"
    d_layers: int = Field(3, ge=2, le=4)
    d_width: int | None = Field(None, gt=0)
    d_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # dcgan64 only
    ngf: int = Field(64, gt=0)
    ndf: int = Field(64, gt=0)
    batchnorm: bool = True
    # optimisation
    epochs: int = Field(1, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(2e-4, gt=0)
    lr_d: float | None = Field(None, gt=0)  # overrides lr for D
    lr_g: float | None = Field(None, gt=0)  # overrides lr for G
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    limit: int | None = Field(None, gt=0)  # train on the first N images only
    # ganhacks
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # one-sided: real target 1 - this
    instance_noise: float = Field(0.0, ge=0.0)  # std of noise on D's inputs, decays to 0
    label_flip: float = Field(0.0, ge=0.0, lt=0.5)  # chance to swap a D target
    # sample from an exponential moving average of G's weights (Yazici et al. 2019), its
    # BatchNorm statistics recomputed; 0 = sample from G as trained
    ema: float = Field(0.999, ge=0.0, lt=1.0)
    # bookkeeping
    sample_every: int = Field(1, gt=0)  # epochs between grids
    n_samples: int = Field(64, gt=0, le=1024)  # images in each grid
    log_every: int = Field(20, gt=0)  # steps per row of plots/gan/losses.tsv
    checkpoint_every: int = Field(100, gt=0)  # steps between resume checkpoints
    compile: bool = False  # torch.compile both nets
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA and AMX CPUs, fp32 elsewhere
    channels_last: bool = True  # NHWC memory format (faster convs on CUDA and with oneDNN on CPU)

    def arch_config(self, channels: int, image_size: int, num_classes: int | None) -> GanModelConfig:
        return GanModelConfig(
            arch=self.arch, channels=channels, image_size=image_size, z_dim=self.z_dim,
            num_classes=num_classes if self.conditional else None, init=self.init,
            g_layers=self.g_layers, g_width=self.g_width, d_layout=self.d_layout, d_layers=self.d_layers,
            d_width=self.d_width, d_dropout=self.d_dropout, ngf=self.ngf, ndf=self.ndf, batchnorm=self.batchnorm,
        ).check()


@dataclass
class GanResult:
    generator: Generator  # the one to sample from: the EMA of G when gan.ema > 0
    discriminator: Discriminator
    model_config: GanModelConfig
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    grids: list[tuple[int, np.ndarray]]  # (epoch, uint8 (H, W, C))
    resumed_from_step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def data_fingerprint(images: np.ndarray, labels: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).data)
    if labels is not None:
        h.update(np.ascontiguousarray(labels).data)
    return h.hexdigest()


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The batch order of `epoch`, a pure function of (seed, epoch): resuming mid-epoch needs no state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon 4th gen and later): bf16 convs run natively."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # another torch build or platform
        return False


def resolve_bf16(amp: str, device: torch.device) -> bool:
    """`gan.amp` -> bf16 autocast or not. ``auto``: on CUDA, and on CPUs with AMX, where it is
    2-2.5x faster than fp32 (`benchmarks/gan_throughput.py --amp`); elsewhere bf16 is emulated
    and slower, so fp32. The metrics of a bf16 run differ from an fp32 run's (both deterministic)."""
    if amp == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_amx())
    return amp == "bf16"


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
def recalibrate_batchnorm(gen: Generator, *, seed: int, n: int = 10240, batch_size: int = 1024) -> Generator:
    """Set G's BatchNorm running statistics to their average over `n` prior samples, in place.

    An averaged G's weights do not match the statistics G collected while it trained, so they
    are measured again, as SWA does (`torch.optim.swa_utils.update_bn`), but with latents as
    the input. A seeded CPU generator draws the latents (and balanced labels): the global RNG
    that training uses is left alone. Returns `gen` in eval mode.
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


def _stop_after_steps() -> int | None:
    """GENLAB_STOP_AFTER_STEPS=N: SIGKILL this process after global step N (tests a hard crash)."""
    v = os.environ.get("GENLAB_STOP_AFTER_STEPS")
    return int(v) if v else None


def train_gan(
    cfg: GanParams,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume_path: str | Path | None = None,
    grid_dir: str | Path | None = None,
    on_epoch_end: Callable[[int, Generator, Generator], None] | None = None,
) -> GanResult:
    """Train a DCGAN on uint8 images (N, C, H, W); see the module docstring for resume and speed.

    `on_epoch_end(epoch, sampled, trained)` is called after each epoch with the generator that
    would be saved (the EMA one when ``cfg.ema`` > 0, in eval mode) and the one being trained
    (in training mode); it must change neither. Torch's RNG state is restored after it, so it
    cannot change what training draws next.
    """
    device = torch.device(device)
    if cfg.limit:
        images = images[: cfg.limit]
        labels = labels[: cfg.limit] if labels is not None else None
    n, channels, size = images.shape[0], images.shape[1], images.shape[2]
    num_classes = int(labels.max()) + 1 if (cfg.conditional and labels is not None) else None
    if cfg.conditional and labels is None:
        raise ValueError("gan.conditional: true needs labels")
    mcfg = cfg.arch_config(channels, size, num_classes)
    cuda = device.type == "cuda"

    gen, disc = Generator(mcfg).to(device), Discriminator(mcfg).to(device)
    if cfg.channels_last:
        gen, disc = gen.to(memory_format=torch.channels_last), disc.to(memory_format=torch.channels_last)
    # the EMA of G's weights (its buffers follow G's until recalibrate_batchnorm); the first update copies G
    ema = AveragedModel(gen, multi_avg_fn=ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g or cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d or cfg.lr, betas=(cfg.beta1, cfg.beta2))

    batch = min(cfg.batch_size, n)
    steps_per_epoch = n // batch  # drop the last partial batch (BatchNorm dislikes tiny ones)
    total_steps = steps_per_epoch * cfg.epochs
    fixed = torch.Generator().manual_seed(seed + 1)
    fixed_z = torch.randn(cfg.n_samples, mcfg.z_dim, generator=fixed).to(device)
    fixed_y = (torch.arange(cfg.n_samples) % num_classes).to(device) if num_classes else None

    use_bf16 = resolve_bf16(cfg.amp, device)
    run_config = {
        "bf16": use_bf16,  # a resume on a machine that picks the other precision starts fresh
        "model": mcfg.to_dict(),
        "train": cfg.model_dump(mode="json"),
        "seed": seed,
        "device": device.type,
        "data": data_fingerprint(images, labels if num_classes else None),
    }
    history: list[dict[str, Any]] = []
    grids: list[tuple[int, np.ndarray]] = []
    epoch, step_in_epoch, step, train_s = 0, 0, 0, 0.0
    resumed_from = 0
    sums = torch.zeros(len(METRICS))  # since the last history row
    epoch_sums = torch.zeros(len(METRICS))  # since the epoch began: the final metrics
    count = epoch_count = 0
    if resume_path is not None and Path(resume_path).exists():
        try:
            ck = load_checkpoint(resume_path, RESUME_KIND, map_location=device)
        except CheckpointError as exc:
            log(f"gan: ignoring resume checkpoint: {exc}")
            ck = None
        if ck is not None and ck["config"] != run_config:
            log(f"gan: {resume_path} was written for other params/data; starting fresh")
        elif ck is not None and ck.get("finished"):
            log(f"gan: {resume_path} holds a finished run; starting fresh")
        elif ck is not None:
            gen.load_state_dict(ck["generator"])
            disc.load_state_dict(ck["discriminator"])
            opt_g.load_state_dict(ck["opt_g"])
            opt_d.load_state_dict(ck["opt_d"])
            if ema is not None:
                ema.load_state_dict(ck["ema"])
            epoch, step_in_epoch, step, train_s = ck["epoch"], ck["step_in_epoch"], ck["step"], ck["train_s"]
            history = ck["history"]
            sums, epoch_sums = ck["sums"].cpu(), ck["epoch_sums"].cpu()
            count, epoch_count = ck["count"], ck["epoch_count"]
            grids = [(int(e), g.numpy()) for e, g in zip(ck["grid_epochs"], ck["grids"])]
            set_rng_state(ck["rng"])
            resumed_from = step
            log(f"gan: resuming from {resume_path} at epoch {epoch + 1}, step {step}/{total_steps}")
            if grid_dir is not None:  # DVC removed the grids of the interrupted run
                for e, g in grids:
                    save_image(g, Path(grid_dir) / f"epoch_{e:03d}.png")

    def save_resume(finished: bool = False) -> None:
        if resume_path is None:
            return
        save_checkpoint(
            resume_path, kind=RESUME_KIND, config=run_config, finished=finished,
            generator=gen.state_dict(), discriminator=disc.state_dict(),
            opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(),
            ema=ema.state_dict() if ema is not None else None,
            epoch=epoch, step_in_epoch=step_in_epoch, step=step, train_s=train_s,
            history=history, sums=sums.cpu(), epoch_sums=epoch_sums.cpu(), count=count, epoch_count=epoch_count,
            grid_epochs=[e for e, _ in grids],
            grids=[torch.from_numpy(g) for _, g in grids], rng=rng_state(),
        )

    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8, resident
    label_data = torch.from_numpy(labels.astype(np.int64)).to(device) if num_classes else None
    g_step, d_step = gen, disc
    if cfg.compile:
        g_step, d_step = torch.compile(gen), torch.compile(disc)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    real_target = 1.0 - cfg.label_smoothing
    stop_at = _stop_after_steps()
    sums, epoch_sums = sums.to(device), epoch_sums.to(device)

    bar = progress(total=total_steps, initial=step, desc="train_gan", unit="step")
    while epoch < cfg.epochs:
        perm = epoch_permutation(n, seed, epoch).to(device)
        if step_in_epoch == 0:
            epoch_sums.zero_()
            epoch_count = 0
        t0 = time.perf_counter()
        while step_in_epoch < steps_per_epoch:
            idx = perm[step_in_epoch * batch: (step_in_epoch + 1) * batch]
            x = data[idx].float().mul_(2 / 255).sub_(1)  # uint8 (B, C, H, W) -> [-1, 1]
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = label_data[idx] if label_data is not None else None
            z = torch.randn(batch, mcfg.z_dim, device=device)
            sigma = cfg.instance_noise * (1 - step / total_steps) if cfg.instance_noise else 0.0
            if cfg.label_flip:
                flip = torch.rand(2, batch, device=device) < cfg.label_flip
                t_real = torch.where(flip[0], 0.0, real_target)
                t_fake = torch.where(flip[1], real_target, 0.0)
            else:
                t_real, t_fake = real_target, 0.0

            with amp:
                fake = g_step(z, y)  # (B, C, H, W)
            # --- D step: maximise log D(x) + log(1 - D(G(z)))
            disc.requires_grad_(True)
            with amp:
                d_real_in, d_fake_in = x, fake.detach()
                if sigma:
                    d_real_in = d_real_in + sigma * torch.randn_like(d_real_in)
                    d_fake_in = d_fake_in + sigma * torch.randn_like(d_fake_in)
                out_real = d_step(d_real_in, y).float()
                out_fake = d_step(d_fake_in, y).float()
                loss_real, loss_fake = discriminator_loss(out_real, out_fake, cfg.loss, t_real, t_fake)
            opt_d.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
            opt_d.step()
            # --- G step: D's weights need no gradient here
            disc.requires_grad_(False)
            with amp:
                g_in = fake + sigma * torch.randn_like(fake) if sigma else fake
                out_g = d_step(g_in, y).float()
                loss_g = generator_loss(out_g, cfg.loss)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if ema is not None:
                ema.update_parameters(gen)

            vals = torch.stack([
                loss_real.detach(), loss_fake.detach(), loss_g.detach(),
                discriminator_accuracy(out_real.detach(), cfg.loss, True),
                discriminator_accuracy(out_fake.detach(), cfg.loss, False),
            ])
            sums += vals
            epoch_sums += vals
            count += 1
            epoch_count += 1
            step += 1
            step_in_epoch += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                row = dict(zip(METRICS, (sums / count).tolist()))
                history.append({"step": step, "epoch": epoch + 1, **{k: round(v, 6) for k, v in row.items()}})
                sums.zero_()
                count = 0
                bar.set_postfix(d=f"{row['d_loss_real'] + row['d_loss_fake']:.3f}", g=f"{row['g_loss']:.3f}")
            if step % cfg.checkpoint_every == 0 and step_in_epoch < steps_per_epoch:
                train_s += time.perf_counter() - t0
                save_resume()
                t0 = time.perf_counter()
            if stop_at is not None and step >= stop_at:
                os.kill(os.getpid(), signal.SIGKILL)  # a hard crash, as kill -9 would be
        train_s += time.perf_counter() - t0
        epoch += 1
        step_in_epoch = 0
        sampled = gen
        if ema is not None:
            sampled = recalibrate_batchnorm(ema.module, seed=seed * 1_000_003 + epoch)
        if epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
            grid = _sample_grid(sampled, fixed_z, fixed_y)
            grids.append((epoch, grid))
            if grid_dir is not None:
                save_image(grid, Path(grid_dir) / f"epoch_{epoch:03d}.png")
        save_resume(finished=epoch == cfg.epochs)
        if on_epoch_end is not None:
            with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
                on_epoch_end(epoch, sampled, gen)
    bar.close()

    last = dict(zip(METRICS, (epoch_sums / max(epoch_count, 1)).tolist()))
    images_seen = (step - resumed_from) * batch
    metrics = {f"gan/{k}": round(v, 6) for k, v in last.items()}
    metrics.update({
        "gan/img_per_s": round(step * batch / train_s, 1) if train_s > 0 else 0.0,
        "gan/train_seconds": round(train_s, 2),
        "gan/steps": step,
        "gan/epochs": cfg.epochs,
        "gan/bf16": int(use_bf16),
    })
    out_gen = ema.module if ema is not None else gen
    out_gen.eval()
    disc.eval()
    return GanResult(out_gen, disc, mcfg, history, metrics, grids, resumed_from, {"images_this_run": images_seen})


@torch.no_grad()
def _sample_grid(gen: Generator, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    """The fixed-noise grid in eval mode and fp32 (BatchNorm running stats: what `decode` will produce)."""
    was_training = gen.training
    gen.eval()
    x = gen(z, y).float()
    gen.train(was_training)
    return make_grid(to_uint8(x.float().cpu().numpy()), pad_value=0)  # tanh range -> uint8 grid (H', W', C)


def save_generator_checkpoint(result: GanResult, path: str | Path) -> Path:
    """The self-describing checkpoint `load_generator` reads (G and D states, config, steps)."""
    return save_checkpoint(
        path, kind=CHECKPOINT_KIND, config={"model": result.model_config.to_dict()},
        generator=result.generator.state_dict(), discriminator=result.discriminator.state_dict(),
        step=int(result.metrics["gan/steps"]), epoch=int(result.metrics["gan/epochs"]),
    )

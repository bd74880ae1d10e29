"""Training loop, resume and figures of the VAE stage.

Data stay resident on the device as uint8 tensors; each epoch's batches come from a
permutation drawn from a dedicated seeded generator, whose state (with every other RNG, the
model and the optimizer) is saved after each epoch in the resume checkpoint. A run resumed
from that checkpoint on CPU ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pydantic import Field  # noqa: E402

from genlab.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from genlab.models.vae import KIND, VAE, VAEConfig, build_vae  # noqa: E402
from genlab.params import StrictModel  # noqa: E402
from genlab.runtime import log, progress, save_figure  # noqa: E402


class VaeParams(StrictModel):
    """The `vae` section of params.yaml."""

    arch: Literal["conv", "mlp"] = "mlp"  # conv: the seed report's; mlp: EECS598's
    conditional: bool = False  # one-hot label concatenated to encoder input and latent
    z_dim: int = Field(2, ge=1, le=4096)  # 2 draws the manifold and the latent scatter
    hidden: int = Field(400, ge=1, le=16384)  # mlp: width of each hidden layer
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    gaussian_std: float = Field(0.1, gt=0)  # the decoder's fixed std for likelihood: gaussian
    beta: float = Field(1.0, ge=0)  # KL weight; 1 is the plain VAE
    lr: float = Field(1e-3, gt=0)  # Adam
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=2)
    recon_every: int = Field(1, ge=1)  # reconstructions of fixed test images every N epochs
    resume: bool = True  # continue from models/vae_resume/resume.pt when its config matches


# Keys that do not change the trajectory of training: a resume checkpoint written under other
# values of these is still a valid prefix of this run.
_NOT_IN_RESUME_KEY = {"epochs", "recon_every", "resume"}
N_RECON = 16  # fixed test images shown in each reconstruction figure
EVAL_BATCH = 1000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the epoch and step."""


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
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    checkpoint: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    resumed_from: int = 0
    wall_s: float = 0.0


def model_config(params: VaeParams, image_shape: tuple[int, int, int], num_classes: int) -> VAEConfig:
    """The model part of the params (a ValueError names the key if the data does not fit)."""
    return VAEConfig(
        arch=params.arch,
        image_shape=image_shape,
        z_dim=params.z_dim,
        num_classes=num_classes if params.conditional else None,
        likelihood=params.likelihood,
        gaussian_std=params.gaussian_std,
        hidden=params.hidden,
    )


def resume_key(params: VaeParams, seed: int, fingerprint: str, device: torch.device) -> dict[str, Any]:
    p = {k: v for k, v in params.model_dump(mode="json").items() if k not in _NOT_IN_RESUME_KEY}
    return {"params": p, "seed": seed, "data": fingerprint, "device": device.type}


def _to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(
    model: VAE, images: torch.Tensor, labels: torch.Tensor, seed: int, batch: int = EVAL_BATCH
) -> dict[str, float]:
    """Test negative ELBO (beta = 1) and its parts, nats per image, one z per image drawn from a
    generator seeded by `seed` (the same noise at every evaluation; the global RNG is untouched)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    recon_sum = kl_sum = 0.0
    for i in range(0, images.shape[0], batch):
        x = _to_unit(images[i : i + batch])
        y = labels[i : i + batch]
        eps = torch.randn(x.shape[0], model.z_dim, generator=gen).to(x.device)
        with _autocast(x.device):
            out = model.loss(x, y, 1.0, eps)
        recon_sum += out.recon.double().sum().item()
        kl_sum += out.kl.double().sum().item()
    model.train(was_training)
    n = images.shape[0]
    return {"recon": recon_sum / n, "kl": kl_sum / n, "loss": (recon_sum + kl_sum) / n}


def _params_finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def _try_resume(path: Path, key: dict[str, Any], epochs: int) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path, KIND)
    except CheckpointError as exc:
        log(f"vae: cannot resume ({exc}); starting fresh")
        return None
    old = ckpt["config"].get("resume_key")
    if old != key:
        diff = _describe_diff(old or {}, key)
        log(f"vae: {path} was trained under other settings ({diff}); starting fresh")
        return None
    if ckpt["epoch"] > epochs:
        log(f"vae: {path} holds epoch {ckpt['epoch']} > vae.epochs={epochs}; starting fresh")
        return None
    return ckpt


def _describe_diff(old: dict, new: dict) -> str:
    parts = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            parts += [f"{k}.{kk}: {a.get(kk)!r} -> {b.get(kk)!r}" for kk in sorted(set(a) | set(b)) if a.get(kk) != b.get(kk)]
        elif a != b:
            parts.append(f"{k}: {a!r} -> {b!r}")
    return ", ".join(parts[:4]) or "unreadable config"


def train_vae(
    params: VaeParams,
    data: VaeData,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    resume_path: str | Path | None = None,
    reports_dir: str | Path | None = None,
) -> VaeRun:
    """Train a VAE on `data`; write the resume checkpoint after every epoch and reconstruction
    figures every `params.recon_every` epochs. Raises :class:`TrainingDiverged` on a NaN/Inf
    loss, leaving the last good resume checkpoint in place."""
    device = torch.device(device)
    start = time.perf_counter()
    shape = tuple(int(v) for v in data.train_images.shape[1:])
    mcfg = model_config(params, shape, data.num_classes)
    torch.manual_seed(seed)
    model = build_vae(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    batch_gen = torch.Generator(device="cpu").manual_seed(seed)
    key = resume_key(params, seed, data.fingerprint, device)
    config = {"model": mcfg.to_dict(), "train": params.model_dump(mode="json"), "resume_key": key}

    x_train = torch.from_numpy(np.ascontiguousarray(data.train_images)).to(device)
    y_train = torch.from_numpy(np.asarray(data.train_labels, dtype=np.int64)).to(device)
    x_test = torch.from_numpy(np.ascontiguousarray(data.test_images)).to(device)
    y_test = torch.from_numpy(np.asarray(data.test_labels, dtype=np.int64)).to(device)
    n = x_train.shape[0]
    if n < 2:
        raise ValueError("vae: needs at least 2 training images")

    history: list[dict[str, Any]] = []
    epoch = step = 0
    resume_path = Path(resume_path) if resume_path else None
    ckpt = _try_resume(resume_path, key, params.epochs) if (resume_path and params.resume) else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        batch_gen.set_state(ckpt["batch_rng"])
        set_rng_state(ckpt["rng"])
        epoch, step, history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])
        ckpt = {k: ckpt[k] for k in ("model", "optimizer", "epoch", "step", "rng", "batch_rng", "history")}
        ckpt["config"] = config  # same resume key; epochs/recon_every may differ
        log(f"vae: resuming from {resume_path} at epoch {epoch}/{params.epochs}")
    resumed_from = epoch

    reports_dir = Path(reports_dir) if reports_dir else None
    figures: list[Path] = []
    recon_idx = fixed_test_indices(data.test_labels, N_RECON, seed)
    last = ckpt
    steps_per_epoch = math.ceil(n / params.batch_size)
    model.train()
    while epoch < params.epochs:
        epoch += 1
        perm = torch.randperm(n, generator=batch_gen).to(device)
        recon_sum = torch.zeros((), dtype=torch.float64, device=device)
        kl_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        bar = progress(range(steps_per_epoch), desc=f"vae epoch {epoch}/{params.epochs}", unit="batch")
        for b in bar:
            idx = perm[b * params.batch_size : (b + 1) * params.batch_size]
            if idx.numel() < 2 and seen:  # BatchNorm needs 2 images; a lone last image is skipped
                continue
            x = _to_unit(x_train[idx])
            y = y_train[idx]
            step += 1
            with _autocast(device):
                out = model.loss(x, y, params.beta)
            if not torch.isfinite(out.loss):
                where = f"epoch {epoch}, step {step} (batch {b + 1}/{steps_per_epoch} of the epoch)"
                kept = (f"the last good checkpoint ({resume_path}, epoch {last['epoch']}) is kept"
                        if last is not None else "no checkpoint had been written yet")
                raise TrainingDiverged(
                    f"vae: the loss became {out.loss.item()} at {where}; {kept}. "
                    f"Lower vae.lr (now {params.lr:g}) or check the data."
                )
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            recon_sum += out.recon.detach().double().sum()
            kl_sum += out.kl.detach().double().sum()
            seen += idx.numel()
        if not _params_finite(model):
            raise TrainingDiverged(
                f"vae: the weights became NaN/Inf at epoch {epoch}, step {step}; "
                + (f"the last good checkpoint ({resume_path}, epoch {last['epoch']}) is kept"
                   if last is not None else "no checkpoint had been written yet")
            )
        train_recon, train_kl = recon_sum.item() / seen, kl_sum.item() / seen
        test = evaluate(model, x_test, y_test, seed)
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": train_recon + train_kl,
            "train_recon": train_recon,
            "train_kl": train_kl,
            "test_loss": test["loss"],
            "test_recon": test["recon"],
            "test_kl": test["kl"],
        }
        history.append(row)
        log(f"vae epoch {epoch}: train -ELBO {row['train_loss']:.2f} (recon {train_recon:.2f}, KL {train_kl:.2f}); "
            f"test -ELBO {test['loss']:.2f} (recon {test['recon']:.2f}, KL {test['kl']:.2f}) nats/image")
        last = {
            "config": config,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "step": step,
            "rng": rng_state(),
            "batch_rng": batch_gen.get_state(),
            "history": history,
        }
        if resume_path is not None:
            save_checkpoint(resume_path, kind=KIND, **last)
        if reports_dir is not None and (epoch % params.recon_every == 0 or epoch == params.epochs):
            figures.append(plot_reconstructions(model, x_test[recon_idx], y_test[recon_idx],
                                                reports_dir / f"recon_epoch{epoch:03d}.png", f"epoch {epoch}"))

    if last is None:  # nothing left to train and nothing to resume from cannot happen (epochs >= 1)
        raise RuntimeError("vae: no epoch was trained")
    model.eval()
    final = history[-1]
    metrics = {
        "vae/test_loss": final["test_loss"],
        "vae/test_recon": final["test_recon"],
        "vae/test_kl": final["test_kl"],
        "vae/train_loss": final["train_loss"],
        "vae/epochs": final["epoch"],
    }
    last = {**last, "metrics": metrics}
    return VaeRun(model, history, metrics, last, figures, resumed_from, time.perf_counter() - start)


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


# ----------------------------------------------------------------------------- figures


def _grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> (rows*H', nrow*W', C) for imshow, 1 px padding."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()  # (C, H', W') -> (H', W', C)


def _show(ax, img: np.ndarray) -> None:
    ax.imshow(img[..., 0] if img.shape[-1] == 1 or np.allclose(img[..., 0], img[..., 1]) else img,
              cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")


@torch.no_grad()
def plot_reconstructions(model: VAE, x_uint8: torch.Tensor, labels: torch.Tensor, path: Path, title: str) -> Path:
    """Top row: fixed test images; bottom row: the decoded posterior means (z = mu)."""
    was_training = model.training
    model.eval()
    x = _to_unit(x_uint8)
    mu, _ = model.encode(x, labels)
    recon = model.decode(mu, labels)
    model.train(was_training)
    fig, ax = plt.subplots(figsize=(max(4, x.shape[0] * 0.5), 1.4))
    _show(ax, _grid(torch.cat([x, recon]), nrow=x.shape[0]))
    ax.set_title(f"VAE reconstructions, {title} (top: test images, bottom: decoded means)", fontsize=8)
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def plot_manifold(model: VAE, path: Path, steps: int = 20, label: int | None = None) -> Path:
    """Decode a steps x steps grid of z over the prior's quantiles 0.05..0.95 (z_dim 2)."""
    device = next(model.parameters()).device
    q = torch.linspace(0.05, 0.95, steps, dtype=torch.float64)
    vals = torch.distributions.Normal(0.0, 1.0).icdf(q).float()  # prior quantiles
    z1, z2 = torch.meshgrid(vals, vals.flip(0), indexing="xy")  # z2 grows upwards
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1).to(device)  # (steps^2, 2)
    labels = None if not model.conditional else torch.full((z.shape[0],), label or 0, device=device)
    images = model.decode(z, labels)
    fig, ax = plt.subplots(figsize=(8, 8))
    _show(ax, _grid(images, nrow=steps))
    extra = f", class {label or 0}" if model.conditional else ""
    ax.set_title(f"VAE manifold: decoded z over N(0,1) quantiles 0.05..0.95{extra}", fontsize=9)
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def plot_latent_scatter(model: VAE, x_uint8: torch.Tensor, labels: torch.Tensor, path: Path,
                        class_names: list[str] | None = None, max_points: int = 5000) -> Path:
    """Encoded posterior means of test images (z_dim 2), coloured by label."""
    model.eval()
    mus = []
    for i in range(0, min(max_points, x_uint8.shape[0]), EVAL_BATCH):
        mu, _ = model.encode(_to_unit(x_uint8[i : min(i + EVAL_BATCH, max_points)]),
                             labels[i : min(i + EVAL_BATCH, max_points)])
        mus.append(mu.float().cpu())
    mu = torch.cat(mus).numpy()
    lab = labels[: mu.shape[0]].cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=lab, cmap="tab10", s=3, alpha=0.7,
                    vmin=-0.5, vmax=max(9, int(lab.max())) + 0.5)
    cbar = fig.colorbar(sc, ax=ax, ticks=sorted(set(lab.tolist())))
    if class_names:
        cbar.ax.set_yticklabels([class_names[i] if i < len(class_names) else str(i) for i in sorted(set(lab.tolist()))])
    ax.set_xlabel("z[0] (posterior mean)")
    ax.set_ylabel("z[1] (posterior mean)")
    ax.set_title(f"VAE latent space: {mu.shape[0]} encoded test images")
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def plot_class_grid(model: VAE, path: Path, seed: int, n_noise: int = 8) -> Path:
    """Conditional VAE: one row per class, one column per fixed noise vector."""
    device = next(model.parameters()).device
    k = model.num_classes
    z = model.sample_latent(n_noise, torch.Generator(device="cpu").manual_seed(seed + 2))  # (n_noise, Z)
    z = z.repeat(k, 1)  # (k*n_noise, Z), the same noise in every row
    labels = torch.arange(k, device=device).repeat_interleave(n_noise)
    fig, ax = plt.subplots(figsize=(n_noise * 0.6, k * 0.6))
    _show(ax, _grid(model.decode(z, labels), nrow=n_noise))
    ax.set_title("conditional VAE: rows = classes, columns = fixed noise", fontsize=8)
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def plot_samples(model: VAE, path: Path, seed: int, n: int = 64) -> Path:
    """Decoded prior samples from fixed noise (balanced labels when conditional)."""
    device = next(model.parameters()).device
    z = model.sample_latent(n, torch.Generator(device="cpu").manual_seed(seed + 3))
    labels = torch.arange(n, device=device) % model.num_classes if model.conditional else None
    fig, ax = plt.subplots(figsize=(6, 6))
    _show(ax, _grid(model.decode(z, labels), nrow=int(math.sqrt(n))))
    ax.set_title("VAE samples from the prior (fixed noise)", fontsize=9)
    return save_figure(fig, path, dpi=120)


def write_figures(model: VAE, data: VaeData, reports_dir: str | Path, seed: int,
                  class_names: list[str] | None = None) -> list[Path]:
    """The end-of-training figures: samples; with z_dim 2 the manifold and latent scatter;
    conditional: the class x noise grid."""
    reports_dir = Path(reports_dir)
    model.eval()
    device = next(model.parameters()).device
    out = [plot_samples(model, reports_dir / "samples.png", seed)]
    if model.z_dim == 2:
        x = torch.from_numpy(np.ascontiguousarray(data.test_images)).to(device)
        y = torch.from_numpy(np.asarray(data.test_labels, dtype=np.int64)).to(device)
        out.append(plot_manifold(model, reports_dir / "manifold.png"))
        out.append(plot_latent_scatter(model, x, y, reports_dir / "latent_scatter.png", class_names))
    if model.conditional:
        out.append(plot_class_grid(model, reports_dir / "class_grid.png", seed))
    return out

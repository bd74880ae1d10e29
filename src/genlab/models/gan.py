"""DCGAN generators and discriminators, and the GAN losses as pure functions.

Two architecture families, picked by ``Config.arch``:

* ``mnist28``: the seed report's MNIST generator (Linear -> 128xSxS -> ConvT 64 -> ConvT 64 ->
  ConvT C, BatchNorm/ReLU/Tanh; ``g_layers`` transposed convs, the last two upsample x2) for
  28 or 32 px, with two discriminator layouts:
  ``dcgan`` (no BatchNorm on the first layer, BatchNorm before LeakyReLU, 64-128-256 channels:
  the layout that learns on 28 px digits) and ``report`` (BatchNorm after LeakyReLU and on the
  first layer, 16-32-64-128 channels: the seed report's, kept for comparison).
* ``dcgan64``: Radford et al. 2016 ("Unsupervised Representation Learning with Deep
  Convolutional GANs") for any channel count at 32, 64 or 128 px, BatchNorm optional.

Discriminators return logits (B,): the sigmoid of the papers lives in the losses
(``binary_cross_entropy_with_logits`` is the numerically stable sigmoid + BCE), and the
least-squares loss reads the raw output as Mao et al. 2017 do.

Conditional models (``num_classes`` set) feed a one-hot label to the generator and use a
projection discriminator (Miyato & Koyama 2018): logit = w.h + embed(y).h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import ConfigError, ModelConfig, bounds, load_model, save_model
from genlab.models.prior import sample_standard_normal

KIND = "gan"
ARCHS = ("mnist28", "dcgan64", "mlp")
LOSSES = ("bce", "nonsaturating", "lsgan")
# image sizes each architecture can produce
SIZES = {"mnist28": (28, 32), "dcgan64": (32, 64, 128), "mlp": (28, 32, 64)}
# fields that only some architectures read: setting them for another is an error
APPLIES = {
    "g_layers": ("mnist28",), "g_width": ("mnist28",), "d_layout": ("mnist28",), "d_layers": ("mnist28",),
    "d_width": ("mnist28",), "d_dropout": ("mnist28",),
    "ngf": ("dcgan64",), "ndf": ("dcgan64",), "batchnorm": ("dcgan64",),
    "g_hidden": ("mlp",), "d_hidden": ("mlp",),
}


@dataclass
class Config(ModelConfig):
    """Everything needed to rebuild both networks; stored as a plain dict in checkpoints."""

    arch: Literal["mnist28", "dcgan64", "mlp"] = "mnist28"
    channels: int = 1
    image_size: int = 28
    z_dim: int = field(default=100, metadata=bounds(gt=0))
    num_classes: int | None = field(default=None, metadata=bounds(ge=2))  # None: unconditional
    init: Literal["normal", "xavier"] = "normal"  # normal: N(0, 0.02) as Radford et al.; xavier: Glorot uniform
    # mnist28
    # transposed convs in G (the last two upsample); 4 since issue 12 (a 64-channel 3x3 one at 7x7: better per CPU-second)
    g_layers: int = field(default=4, metadata=bounds(ge=2, le=6))
    g_width: int = field(default=64, metadata=bounds(gt=0))  # channels of G's transposed convs (the report's 64)
    d_layout: Literal["dcgan", "report"] = "dcgan"
    # stride-2 layers in D (4 since issue 12: better per image); on 28 px the 4th maps 3x3 -> 1x1 and is fully connected
    d_layers: int = field(default=4, metadata=bounds(ge=2, le=4))
    # D's first-layer channels. 32 since issue 12 (32-64-128: half the CPU time of 64-128-256, as good per image
    # at lr 6e-4); None keeps what checkpoints written before meant: 64 (dcgan) / 16 (report)
    d_width: int | None = field(default=32, metadata=bounds(gt=0))
    d_dropout: float = field(default=0.0, metadata=bounds(ge=0, lt=1))
    # dcgan64
    ngf: int = field(default=64, metadata=bounds(gt=0))
    ndf: int = field(default=64, metadata=bounds(gt=0))
    batchnorm: bool = True
    # mlp (EECS598's fully connected GAN: G z-1024-1024-CHW, D CHW-256-256-1)
    g_hidden: int = field(default=1024, metadata=bounds(gt=0))
    d_hidden: int = field(default=256, metadata=bounds(gt=0))

    def check(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError("channels", f"images must have 1 or 3 channels, got {self.channels}")
        if self.image_size not in SIZES[self.arch]:
            other = [a for a in ARCHS if self.image_size in SIZES[a]]
            hint = f"; arch {other[0]} makes them" if other else ""
            raise ConfigError("image_size", f"arch {self.arch} makes {' or '.join(map(str, SIZES[self.arch]))} px "
                                            f"images, got {self.image_size}{hint}")
        self.only_for("arch", APPLIES)

    @property
    def d_first_width(self) -> int:
        return self.d_width or (64 if self.d_layout == "dcgan" else 16)


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


# ----------------------------------------------------------------------------- networks


class Generator(nn.Module):
    """z (B, z_dim) [+ labels (B,)] -> images (B, C, H, W) in [-1, 1] (tanh)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.num_classes = cfg.num_classes
        self.image_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        in_dim = cfg.z_dim + (cfg.num_classes or 0)
        if cfg.arch == "mnist28":
            s = cfg.image_size // 4  # 7 for 28 px, 8 for 32 px
            self.fc = nn.Sequential(
                nn.Linear(in_dim, 128 * s * s, bias=False),  # (B, z) -> (B, 128*s*s)
                nn.BatchNorm1d(128 * s * s),
                nn.ReLU(True),
            )
            self.start = (128, s, s)
            layers: list[nn.Module] = []
            c = 128
            for _ in range(cfg.g_layers - 2):  # (B, c, s, s) -> (B, g_width, s, s)
                layers += [nn.ConvTranspose2d(c, cfg.g_width, 3, 1, 1, bias=False), nn.BatchNorm2d(cfg.g_width), nn.ReLU(True)]
                c = cfg.g_width
            layers += [  # (B, c, s, s) -> (B, g_width, 2s, 2s)
                nn.ConvTranspose2d(c, cfg.g_width, 4, 2, 1, bias=False), nn.BatchNorm2d(cfg.g_width), nn.ReLU(True),
                # (B, g_width, 2s, 2s) -> (B, C, 4s, 4s)
                nn.ConvTranspose2d(cfg.g_width, cfg.channels, 4, 2, 1), nn.Tanh(),
            ]
            self.net = nn.Sequential(*layers)
        elif cfg.arch == "mlp":  # EECS598's fully connected G: (B, z) -> (B, 1024) -> (B, 1024) -> (B, C*H*W)
            h, out = cfg.g_hidden, cfg.channels * cfg.image_size**2
            self.fc = nn.Sequential(
                nn.Linear(in_dim, h), nn.ReLU(True), nn.Linear(h, h), nn.ReLU(True), nn.Linear(h, out), nn.Tanh(),
            )
            self.start = self.image_shape
            self.net = nn.Identity()
        else:  # dcgan64: Radford et al., z as a (B, z, 1, 1) map
            n_up = int(math.log2(cfg.image_size // 4))  # 3 for 32 px, 4 for 64 px
            c = cfg.ngf * 2 ** (n_up - 1)
            norm = (lambda ch: nn.BatchNorm2d(ch)) if cfg.batchnorm else (lambda ch: nn.Identity())
            self.fc = None
            self.start = (in_dim, 1, 1)
            # (B, z, 1, 1) -> (B, ngf*2^(n_up-1), 4, 4)
            layers = [nn.ConvTranspose2d(in_dim, c, 4, 1, 0, bias=not cfg.batchnorm), norm(c), nn.ReLU(True)]
            for _ in range(n_up - 1):  # (B, c, h, h) -> (B, c/2, 2h, 2h)
                layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=not cfg.batchnorm), norm(c // 2), nn.ReLU(True)]
                c //= 2
            # (B, ngf, S/2, S/2) -> (B, C, S, S)
            layers += [nn.ConvTranspose2d(c, cfg.channels, 4, 2, 1), nn.Tanh()]
            self.net = nn.Sequential(*layers)
        init_weights(self, cfg.init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)  # (B, z+K)
        if self.fc is not None:
            h = self.fc(z).view(-1, *self.start)  # (B, z) -> (B, 128, s, s)
        else:
            h = z.view(-1, z.shape[1], 1, 1)  # (B, z) -> (B, z, 1, 1)
        return self.net(h)  # (B, C, H, W) in [-1, 1]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latent vectors from N(0, I): (n, z_dim), on the model's device."""
        return sample_standard_normal(n, self.z_dim, next(self.parameters()).device, generator)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, z_dim) -> float images (B, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        z = z.to(device=device, dtype=torch.float32)
        if labels is not None:
            labels = labels.to(device)
        x = self(z, labels).float()
        return ((x + 1) / 2).clamp_(0, 1)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [0, 1]; a conditional model draws labels uniformly when none are given."""
        z = self.sample_latent(n, generator)
        if self.num_classes and labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=generator.device if generator else "cpu")
        return self.decode(z, labels)


class Discriminator(nn.Module):
    """images (B, C, H, W) in [-1, 1] [+ labels] -> logits (B,)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.num_classes = cfg.num_classes
        layers: list[nn.Module] = []
        c_in, n = cfg.channels, cfg.image_size
        if cfg.arch == "mnist28":
            w = cfg.d_first_width
            for i in range(cfg.d_layers):
                c_out = w * 2**i
                if cfg.d_layout == "dcgan":
                    n_out = _conv_out(n, 4, 2, 1)
                    if n_out == 1 and i > 0:
                        # (B, c_in, 3, 3) -> (B, c_out): a 4x4 stride-2 conv that leaves a 1x1 map reads the
                        # whole 3x3 input (its other taps see only padding), so it is this fully connected
                        # layer: the same function, ~5x cheaper on CPU than oneDNN's conv (fwd + bwd)
                        layers += [nn.Flatten(), nn.Linear(c_in * n * n, c_out, bias=False), nn.BatchNorm1d(c_out)]
                    else:
                        # (B, c_in, n, n) -> (B, c_out, n/2, n/2); BN before LeakyReLU, none on layer 1
                        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0)]
                        if i > 0:
                            layers += [nn.BatchNorm2d(c_out)]
                    layers += [nn.LeakyReLU(0.2, True)]
                    if cfg.d_dropout > 0:
                        layers += [nn.Dropout(cfg.d_dropout)]
                    n = n_out
                else:  # the seed report: conv -> LeakyReLU -> dropout -> BatchNorm, on every layer
                    layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2, True)]
                    if cfg.d_dropout > 0:
                        layers += [nn.Dropout(cfg.d_dropout)]
                    layers += [nn.BatchNorm2d(c_out)]
                    n = _conv_out(n, 3, 2, 1)
                c_in = c_out
        elif cfg.arch == "mlp":  # (B, C, H, W) -> (B, C*H*W) -> (B, 256) -> (B, 256), LeakyReLU 0.01 (EECS598)
            h = cfg.d_hidden
            layers += [nn.Flatten(), nn.Linear(c_in * n * n, h), nn.LeakyReLU(0.01, True),
                       nn.Linear(h, h), nn.LeakyReLU(0.01, True)]
            c_in, n = h, 1
        else:  # dcgan64
            c_out = cfg.ndf
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, True)]  # (B, C, S, S) -> (B, ndf, S/2, S/2)
            c_in, n = c_out, cfg.image_size // 2
            while n > 4:  # (B, c, n, n) -> (B, 2c, n/2, n/2)
                layers += [nn.Conv2d(c_in, c_in * 2, 4, 2, 1, bias=not cfg.batchnorm)]
                layers += [nn.BatchNorm2d(c_in * 2)] if cfg.batchnorm else []
                layers += [nn.LeakyReLU(0.2, True)]
                c_in, n = c_in * 2, n // 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = c_in * n * n
        # (B, c*n*n) -> (B, 1): for dcgan64 this is Radford's final 4x4 valid conv
        self.head = nn.Linear(self.feature_dim, 1)
        self.embed = nn.Embedding(cfg.num_classes, self.feature_dim) if cfg.num_classes else None
        init_weights(self, cfg.init)
        self._register_load_state_dict_pre_hook(self._from_conv_4th_layer)

    def _from_conv_4th_layer(self, state_dict: dict, prefix: str, *_: Any) -> None:
        """Checkpoints written before the 28 px D's 1x1-output layer became fully connected hold it
        as a 4x4 conv (then its BatchNorm) where a Flatten now sits: take its live 3x3 taps."""
        k = next((i for i, m in enumerate(self.features) if isinstance(m, nn.Flatten)), None)
        old = f"{prefix}features.{k}.weight"
        if k is None or old not in state_dict or state_dict[old].dim() != 4:
            return
        for key in [key for key in state_dict if key.startswith(f"{prefix}features.{k + 1}.")]:  # BN k+1 -> k+2
            state_dict[key.replace(f"features.{k + 1}.", f"features.{k + 2}.", 1)] = state_dict.pop(key)
        w = state_dict.pop(old)  # (c_out, c_in, 4, 4) -> (c_out, c_in * 3 * 3)
        state_dict[f"{prefix}features.{k + 1}.weight"] = w[:, :, 1:, 1:].reshape(w.shape[0], -1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).flatten(1)  # (B, C, H, W) -> (B, c*n*n)
        out = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            out = out + (self.embed(labels) * h).sum(1)  # projection term
        return out


def init_weights(module: nn.Module, kind: str) -> None:
    """``normal``: conv/linear weights N(0, 0.02), BatchNorm scale N(1, 0.02) (Radford et al.);
    ``xavier``: Glorot-uniform weights, BatchNorm scale 1. Biases 0."""
    if kind not in ("normal", "xavier"):
        raise ConfigError("init", f"must be one of 'normal', 'xavier', got {kind!r}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if kind == "normal":
                nn.init.normal_(m.weight, 1.0, 0.02)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build(cfg: Config) -> tuple[Generator, Discriminator]:
    return Generator(cfg), Discriminator(cfg)


# ----------------------------------------------------------------------------- losses


def discriminator_loss(
    real_out: torch.Tensor,
    fake_out: torch.Tensor,
    kind: str,
    real_target: torch.Tensor | float = 1.0,
    fake_target: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss on real, loss on fake) for D; D minimises their sum.

    bce / nonsaturating (Goodfellow et al. 2014): BCE(sigmoid(out), target), i.e. D maximises
    log D(x) + log(1 - D(G(z))). lsgan (Mao et al. 2017, a=0, b=1): 1/2 (out - target)^2.
    Targets other than 1/0 give one-sided label smoothing (real_target 0.9) and label flipping
    (per-sample target tensors).
    """
    real_t = torch.as_tensor(real_target, dtype=real_out.dtype, device=real_out.device).expand_as(real_out)
    fake_t = torch.as_tensor(fake_target, dtype=fake_out.dtype, device=fake_out.device).expand_as(fake_out)
    if kind in ("bce", "nonsaturating"):
        return (F.binary_cross_entropy_with_logits(real_out, real_t),
                F.binary_cross_entropy_with_logits(fake_out, fake_t))
    if kind == "lsgan":
        return 0.5 * ((real_out - real_t) ** 2).mean(), 0.5 * ((fake_out - fake_t) ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r} (expected one of {', '.join(LOSSES)})")


def generator_loss(fake_out: torch.Tensor, kind: str) -> torch.Tensor:
    """G's loss on D's output for its samples.

    bce: the original minimax game, G minimises log(1 - D(G(z))) = -softplus(out) (saturates
    when D wins: small gradients early on). nonsaturating: G minimises -log D(G(z)) =
    softplus(-out) (Goodfellow et al. 2014, Sec. 3; what BCE with "real" labels computes).
    lsgan: 1/2 (out - 1)^2 (Mao et al. 2017, c=1).
    """
    if kind == "bce":
        return -F.softplus(fake_out).mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_out).mean()
    if kind == "lsgan":
        return 0.5 * ((fake_out - 1.0) ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r} (expected one of {', '.join(LOSSES)})")


def discriminator_accuracy(out: torch.Tensor, kind: str, real: bool) -> torch.Tensor:
    """Fraction of a batch D classifies correctly (threshold: logit 0, or 0.5 for lsgan)."""
    thresh = 0.5 if kind == "lsgan" else 0.0
    return ((out > thresh) if real else (out <= thresh)).float().mean()


# ----------------------------------------------------------------------------- checkpoints


def save(path: str | Path, model: tuple[Generator, Discriminator], **extra: Any) -> Path:
    """A self-describing checkpoint of (G, D): config, both states, and `extra` (step, epoch...)."""
    gen, disc = model
    return save_model(path, KIND, gen.cfg, {"generator": gen, "discriminator": disc}, **extra)


def load(path: str | Path = "models/gan/checkpoint.pt", device: str | torch.device = "cpu"
         ) -> tuple[Generator, Discriminator]:
    """(G, D) of a ``train_gan`` checkpoint, in eval mode on `device`, rebuilt from the file alone."""
    (gen, disc), _ = load_model(path, KIND, Config, build, {"generator": lambda m: m[0],
                                                            "discriminator": lambda m: m[1]})
    return gen.to(device).eval(), disc.to(device).eval()


def load_generator(path: str | Path = "models/gan/checkpoint.pt", device: str | torch.device = "cpu") -> Generator:
    """The trained generator of a ``train_gan`` checkpoint (see :func:`load`)."""
    return load(path, device)[0]

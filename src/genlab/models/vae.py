"""Variational autoencoders: the seed report's convolutional VAE, EECS598's MLP VAE, and
their conditional variants (one-hot label concatenated to the encoder input and the latent).

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114): the
reparameterisation trick (Sec. 2.4) and the closed-form KL between a diagonal Gaussian
posterior and the N(0, I) prior (Appendix B). Losses are pure functions below; every loss is
in nats per image (summed over pixels and latent dimensions, never averaged over them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import ConfigError, ModelConfig, bounds, load_model, save_model
from genlab.models.prior import sample_standard_normal

KIND = "vae"
# log sigma^2 is soft-clamped to (-LOGVAR_BOUND, LOGVAR_BOUND): exp() can neither overflow nor
# underflow to a zero variance, and unlike a hard clamp the gradient never vanishes.
LOGVAR_BOUND = 15.0


# ----------------------------------------------------------------------------- losses (pure)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, in nats: (B, Z) -> (B,).

    Closed form of Kingma & Welling 2014, Appendix B:
    -KL = 1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) under independent Bernoullis with the given logits, per image, in nats.

    `x` in [0, 1] (intensities, as pytorch/examples' VAE); computed from logits
    (binary_cross_entropy_with_logits), so a saturated decoder gives a finite loss.
    (B, C, H, W) -> (B,).
    """
    nll = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return nll.flatten(1).sum(dim=1)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, std: float) -> torch.Tensor:
    """-log N(x; mean, std^2 I) per image, in nats: (B, C, H, W) -> (B,)."""
    d = x[0].numel()
    sq = (x.float() - mean.float()).pow(2).flatten(1).sum(dim=1)
    return 0.5 * sq / std**2 + d * (math.log(std) + 0.5 * math.log(2 * math.pi))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I) (Kingma & Welling 2014, Sec. 2.4): z is a
    differentiable function of mu and sigma, so the ELBO's gradient flows to the encoder."""
    return mu + torch.exp(0.5 * logvar) * eps


class VAELoss(NamedTuple):
    """Per-image terms (B,), in nats; `loss` is the training objective recon + beta * KL,
    averaged over the batch."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


# ----------------------------------------------------------------------------- model


@dataclass
class Config(ModelConfig):
    """Everything needed to rebuild a VAE; stored as a plain dict in its checkpoint."""

    arch: Literal["conv", "mlp"] = "mlp"  # mlp: EECS598's; conv: the seed report's
    image_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W)
    z_dim: int = field(default=2, metadata=bounds(ge=1, le=4096))
    num_classes: int | None = field(default=None, metadata=bounds(ge=2))  # set: conditional on labels 0..K-1
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    gaussian_std: float = field(default=0.1, metadata=bounds(gt=0))  # the gaussian decoder's fixed std, on [0, 1] pixels
    hidden: int = field(default=400, metadata=bounds(ge=1, le=16384))  # mlp: width of each hidden layer (EECS598: 400)
    conv_channels: tuple[int, ...] = (64, 64, 128)  # conv: the report's 64 -> 64 -> 128
    dense: int = field(default=100, metadata=bounds(ge=1))  # conv: the report's Dense 100

    def check(self) -> None:
        if len(self.image_shape) != 3:
            raise ConfigError("image_shape", f"must be (C, H, W), got {self.image_shape}")
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError("image_shape", f"images must have 1 or 3 channels, got {c}")
        if self.arch == "conv" and (h != w or h % 4 or h < 8):
            raise ConfigError("arch", f"conv needs square images whose side is divisible by 4 (e.g. 28, 32, 64), "
                                      f"got {h}x{w}; use arch: mlp for this size")
        if len(self.conv_channels) != 3 or min(self.conv_channels) < 1:
            raise ConfigError("conv_channels", f"must be three positive widths, got {list(self.conv_channels)}")
        self.only_for("arch", {"hidden": ("mlp",), "conv_channels": ("conv",), "dense": ("conv",)})


class VAE(nn.Module):
    """q(z | x[, y]) = N(mu, diag sigma^2), p(z) = N(0, I), p(x | z[, y]) Bernoulli or Gaussian.

    `encode(x, labels)` -> (mu, logvar); `decode(z, labels)` -> the likelihood's mean in [0, 1];
    `labels` (int64 (B,)) is required when conditional and ignored otherwise.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.num_classes = config.num_classes
        self.image_shape = tuple(config.image_shape)
        c, h, w = self.image_shape
        k = config.num_classes or 0
        z = config.z_dim
        if config.arch == "mlp":
            d, hid = c * h * w, config.hidden
            # (B, C*H*W + K) -> (B, hid), three Linear-ReLU (EECS598)
            self.encoder = nn.Sequential(
                nn.Linear(d + k, hid), nn.ReLU(), nn.Linear(hid, hid), nn.ReLU(), nn.Linear(hid, hid), nn.ReLU()
            )
            enc_out = hid
            # (B, Z + K) -> (B, C*H*W) logits, three Linear-ReLU then the output layer
            self.decoder = nn.Sequential(
                nn.Linear(z + k, hid), nn.ReLU(), nn.Linear(hid, hid), nn.ReLU(), nn.Linear(hid, hid), nn.ReLU(),
                nn.Linear(hid, d),
            )
        else:
            c1, c2, c3 = config.conv_channels
            s = h // 4
            self._base = (c3, s, s)
            # one-hot labels enter as K constant channels of the input image
            self.encoder = nn.Sequential(
                nn.Conv2d(c + k, c1, 3, 1, 1), nn.BatchNorm2d(c1), nn.ReLU(),  # (B, C+K, H, W) -> (B, 64, H, W)
                nn.Conv2d(c1, c2, 3, 2, 1), nn.BatchNorm2d(c2), nn.ReLU(),  # -> (B, 64, H/2, W/2)
                nn.Conv2d(c2, c3, 3, 2, 1), nn.BatchNorm2d(c3), nn.ReLU(),  # -> (B, 128, H/4, W/4)
                nn.Flatten(),  # -> (B, 128*H/4*W/4), 6272 at 28 px
                nn.Linear(c3 * s * s, config.dense), nn.ReLU(),  # -> (B, 100)
            )
            enc_out = config.dense
            # mirrors the GAN generator: Dense 100 -> Dense 128*s*s -> ConvT 64 -> ConvT 64 -> ConvT C
            self.decoder = nn.Sequential(
                nn.Linear(z + k, config.dense), nn.ReLU(),  # (B, Z+K) -> (B, 100)
                nn.Linear(config.dense, c3 * s * s), nn.ReLU(),  # -> (B, 128*s*s)
                nn.Unflatten(1, (c3, s, s)),  # -> (B, 128, s, s), 7x7 at 28 px
                nn.ConvTranspose2d(c3, c2, 4, 2, 1), nn.BatchNorm2d(c2), nn.ReLU(),  # -> (B, 64, 2s, 2s)
                nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.BatchNorm2d(c1), nn.ReLU(),  # -> (B, 64, 4s, 4s)
                nn.ConvTranspose2d(c1, c, 3, 1, 1),  # -> (B, C, H, W) logits
            )
        self.mu_head = nn.Linear(enc_out, z)
        self.logvar_head = nn.Linear(enc_out, z)

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _one_hot(self, labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError("this VAE is conditional: pass labels (int64 (B,)) to encode/decode/sample")
        labels = torch.as_tensor(labels, device=device).long()
        if labels.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}")
        return F.one_hot(labels, self.num_classes).float()  # (B, K)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x float (B, C, H, W) in [0, 1] -> (mu, logvar), each (B, Z)."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        y = self._one_hot(labels, x.shape[0], x.device)
        if self.config.arch == "mlp":
            h = x.flatten(1)  # (B, C, H, W) -> (B, C*H*W)
            if y is not None:
                h = torch.cat([h, y.to(h.dtype)], dim=1)  # -> (B, C*H*W + K)
        else:
            h = x
            if y is not None:  # (B, K) -> (B, K, H, W) constant planes, -> (B, C+K, H, W)
                planes = y.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
                h = torch.cat([x, planes], dim=1)
        h = self.encoder(h)
        logvar = self.logvar_head(h)
        logvar = LOGVAR_BOUND * torch.tanh(logvar / LOGVAR_BOUND)  # soft clamp, see LOGVAR_BOUND
        return self.mu_head(h), logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, Z) -> pre-sigmoid outputs (B, C, H, W)."""
        y = self._one_hot(labels, z.shape[0], z.device)
        if y is not None:
            z = torch.cat([z, y.to(z.dtype)], dim=1)  # (B, Z) -> (B, Z+K)
        out = self.decoder(z)
        return out.view(z.shape[0], *self.image_shape)  # mlp: (B, C*H*W) -> (B, C, H, W)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, Z) -> the likelihood's mean, float (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, labels).float())

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (decoder logits, mu, logvar) with one reparameterised sample z ~ q(z | x)."""
        mu, logvar = self.encode(x, labels)
        if eps is None:
            eps = torch.randn_like(mu)
        z = reparameterize(mu.float(), logvar.float(), eps.float())
        return self.decode_logits(z, labels), mu, logvar

    def loss(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, beta: float = 1.0, eps: torch.Tensor | None = None
    ) -> VAELoss:
        """The beta-weighted negative ELBO (beta = 1: the plain VAE), per image in nats."""
        logits, mu, logvar = self(x, labels, eps)
        if self.config.likelihood == "bernoulli":
            recon = bernoulli_nll(logits, x)
        else:
            recon = gaussian_nll(torch.sigmoid(logits.float()), x, self.config.gaussian_std)
        kl = gaussian_kl(mu.float(), logvar.float())
        return VAELoss((recon + beta * kl).mean(), recon, kl)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the prior N(0, I): (n, Z), on the model's device."""
        return sample_standard_normal(n, self.z_dim, next(self.parameters()).device, generator)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the prior, float (n, C, H, W) in [0, 1]."""
        return self.decode(self.sample_latent(n, generator), labels)


def build(config: Config) -> VAE:
    return VAE(config)


def save(path: str | Path, model: VAE, **extra: Any) -> Path:
    """A self-describing checkpoint: config, weights and `extra` (epoch, step, metrics...)."""
    return save_model(path, KIND, model.config, {"model": model}, **extra)


def load(path: str | Path = "models/vae/checkpoint.pt", device: str | torch.device = "cpu") -> VAE:
    """Rebuild a trained VAE from its self-describing checkpoint alone, in eval mode."""
    model, _ = load_model(path, KIND, Config, build, {"model": lambda m: m})
    return model.to(device).eval()

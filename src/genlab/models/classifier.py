"""A small CNN image classifier: the judge of generated images and their feature extractor.

``Classifier.forward`` maps float images in [0, 1] to logits; ``Classifier.features`` returns
the penultimate layer, the space in which :mod:`genlab.evaluate` measures classifier FID/KID
(Inception features mean little on 28x28 digits). Works for 1 or 3 channels and any square
image size: the flatten size is computed from the number of pooling blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import ConfigError, ModelConfig, bounds, load_model, save_model

KIND = "classifier"


@dataclass
class Config(ModelConfig):
    """Everything needed to rebuild a :class:`Classifier` (stored in its checkpoint)."""

    in_channels: int = 1
    image_size: int = 28
    num_classes: int = field(default=10, metadata=bounds(ge=2))
    class_names: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv block per entry
    convs_per_block: int = field(default=1, metadata=bounds(ge=1, le=4))
    hidden: int = field(default=128, metadata=bounds(gt=0))  # width of the penultimate (feature) layer
    dropout: float = field(default=0.25, metadata=bounds(ge=0, lt=1))

    def check(self) -> None:
        if self.in_channels not in (1, 3):
            raise ConfigError("in_channels", f"must be 1 or 3, got {self.in_channels}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError("channels", f"must be a non-empty list of positive conv widths, got {self.channels}")
        if self.image_size // 2 ** len(self.channels) < 1:
            raise ConfigError("channels", f"{len(self.channels)} pooling blocks ({self.channels}) shrink "
                                          f"{self.image_size}x{self.image_size} images below 1 pixel; use fewer blocks")
        if not self.class_names:
            self.class_names = [str(i) for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ConfigError("class_names", f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def final_size(self) -> int:
        """Spatial size after the pooling blocks (each halves it, flooring)."""
        return self.image_size // 2 ** len(self.channels)


def _conv_block(c_in: int, c_out: int, n_convs: int) -> nn.Sequential:
    """n x (3x3 conv, BatchNorm, ReLU) then 2x2 max-pool: (B, c_in, S, S) -> (B, c_out, S//2, S//2)."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """Conv blocks -> flatten -> hidden ReLU layer (the features) -> dropout -> logits."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        widths = [config.in_channels, *config.channels]
        # (B, C, S, S) -> (B, channels[-1], S / 2**blocks, S / 2**blocks); e.g. 28 -> 14 -> 7
        self.conv = nn.Sequential(
            *[_conv_block(widths[i], widths[i + 1], config.convs_per_block) for i in range(len(config.channels))]
        )
        flat = config.channels[-1] * config.final_size**2
        # (B, channels[-1] * s * s) -> (B, hidden)
        self.fc = nn.Linear(flat, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        # (B, hidden) -> (B, num_classes)
        self.head = nn.Linear(config.hidden, config.num_classes)

    # the attributes the evaluation code and other stages rely on
    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def num_features(self) -> int:
        """Feature dimension (torchmetrics reads this name from custom feature extractors)."""
        return self.config.hidden

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (B, C, H, W) in [0, 1] -> penultimate activations (B, hidden)."""
        h = self.conv(x - 0.5)  # centre the input; (B, C, S, S) -> (B, c_last, s, s)
        h = h.flatten(1)  # (B, c_last, s, s) -> (B, c_last * s * s)
        return F.relu(self.fc(h))  # (B, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (B, C, H, W) in [0, 1] -> logits (B, num_classes)."""
        return self.head(self.dropout(self.features(x)))

    def loss(self, x: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return classification_loss(self(x), labels, label_smoothing)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy (optionally label-smoothed, Szegedy et al. 2016)."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def build(config: Config) -> Classifier:
    # channels_last: faster convolutions with oneDNN on CPU (docs/speed.md), native layout for cuDNN
    return Classifier(config).to(memory_format=torch.channels_last)


def save(path: str | Path, model: Classifier, **extra: Any) -> Path:
    """Self-describing checkpoint: config + weights (+ epoch, history, metrics in `extra`)."""
    return save_model(path, KIND, model.config, {"model": model}, **extra)


def load(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Rebuild a trained classifier from its checkpoint alone, in eval mode on `device`.

    Raises :class:`~genlab.checkpoint.CheckpointError` (a RuntimeError) with one clear message
    when the file is missing, corrupted, of another kind or does not match its own config.
    """
    model, _ = load_model(path, KIND, Config, build, {"model": lambda m: m})
    return model.to(device).eval()

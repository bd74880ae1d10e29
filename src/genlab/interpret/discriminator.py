"""The trained discriminator as an object to look inside: loading it, a copy fit for gradient
hooks, its layers found by module type (never by attribute names), and its per-layer features.

Everything here treats D as a black box ``D(x[, labels]) -> logits (B,)`` made of standard
``torch.nn`` modules; layers are found by iterating ``D.modules()`` in registration order
(the execution order of the Sequential stacks genlab's discriminators are built from).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


def load_discriminator(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """D of a ``train_gan`` checkpoint, in eval mode (through the model contract's ``load``,
    which rebuilds both networks from the file alone)."""
    from genlab.models import gan

    loaded = gan.load(path, device)
    disc = loaded[1] if isinstance(loaded, tuple) else loaded
    return disc.to(device).eval()


def attribution_copy(disc: nn.Module) -> nn.Module:
    """A deep copy of `disc` in eval mode with every in-place operation turned off: gradient
    hooks (Captum's layer hooks, guided backprop) need each layer's output intact."""
    d = copy.deepcopy(disc).eval()
    for m in d.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    for p in d.parameters():
        p.requires_grad_(False)
    return d


def conv_layers(disc: nn.Module) -> list[nn.Conv2d]:
    return [m for m in disc.modules() if isinstance(m, nn.Conv2d)]


def last_conv(disc: nn.Module) -> nn.Conv2d | None:
    """D's last convolution (Grad-CAM's layer); None for a fully connected D."""
    convs = conv_layers(disc)
    return convs[-1] if convs else None


def last_spatial_conv(disc: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> nn.Conv2d | None:
    """D's last convolution whose output map on `x` is larger than 1x1 (Grad-CAM's layer: a 1x1
    map, as a 4x4 conv on a 3x3 map makes, has no "where"); None for a fully connected D."""
    convs = conv_layers(disc)
    sizes: dict[int, int] = {}
    hooks = [c.register_forward_hook(lambda m, _i, o: sizes.__setitem__(id(m), o.shape[-1] * o.shape[-2]))
             for c in convs]
    try:
        with torch.no_grad():
            forward_logits(disc, x, labels)
    finally:
        for h in hooks:
            h.remove()
    spatial = [c for c in convs if sizes.get(id(c), 0) > 1]
    return spatial[-1] if spatial else (convs[-1] if convs else None)


def feature_taps(disc: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are D's per-layer features: for each conv (or linear hidden)
    layer, the first activation after it (its output: the layer's representation)."""
    taps, pending = [], False
    for m in disc.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            pending = True
        elif pending and isinstance(m, ACTIVATIONS):
            taps.append(m)
            pending = False
    return taps


def forward_logits(disc: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """D's logits (B,) for images in [-1, 1]; labels only for a class-conditional D."""
    out = disc(x, labels) if labels is not None else disc(x)
    return out.reshape(out.shape[0])


@torch.no_grad()
def layer_features(disc: nn.Module, x: torch.Tensor, grid: int = 4, labels: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Radford et al.'s probe features: every D layer's output max-pooled to at most
    `grid` x `grid`, flattened and concatenated. (B, C, H, W) in [-1, 1] -> (B, F) float32."""
    outs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().float())) for m in feature_taps(disc)]
    try:
        forward_logits(disc, x, labels)
    finally:
        for h in hooks:
            h.remove()
    feats = []
    for o in outs:
        if o.dim() == 4:  # (B, c, h, w) -> (B, c, g, g), g = min(grid, h)
            o = F.adaptive_max_pool2d(o, (min(grid, o.shape[2]), min(grid, o.shape[3])))
        feats.append(o.flatten(1))
    return torch.cat(feats, dim=1)


def randomly_initialised(disc: nn.Module, seed: int) -> nn.Module:
    """A copy of `disc` with fresh weights as at the start of training (Radford et al.: conv
    and linear weights N(0, 0.02), BatchNorm scale N(1, 0.02), biases 0, running statistics
    reset), drawn from `seed`: the probe's untrained baseline, same architecture."""
    d = copy.deepcopy(disc).cpu()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                if m.affine:
                    m.weight.copy_(1 + torch.randn(m.weight.shape, generator=gen) * 0.02)
                    m.bias.zero_()
    device = next(disc.parameters()).device
    return d.to(device).eval()

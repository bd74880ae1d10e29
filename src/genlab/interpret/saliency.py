"""Where the discriminator looks: Grad-CAM, guided backpropagation and guided Grad-CAM.

* Grad-CAM (Selvaraju et al. 2017) through Captum's ``LayerGradCam`` on D's last convolution:
  ReLU(sum_k alpha_k A^k), alpha_k the spatial mean of d(score)/dA^k, upsampled bilinearly to
  the input size.
* Guided backpropagation (Springenberg et al. 2015): the input gradient with every ReLU's
  backward pass also dropping negative gradients. Captum's ``GuidedBackprop`` overrides
  ``nn.ReLU`` modules only, and genlab's discriminators use LeakyReLU; so the rule is applied
  here with a custom autograd function that, for ReLU, is exactly Captum's rule (a test holds
  the two equal on a ReLU network) and extends to LeakyReLU the same way Captum's hook is
  written: the activation's usual input gradient, then ReLU'd (``relu(g) * f'(x)``).
* Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map.

Targets: D outputs one logit, "real" when positive. The score of target ``real`` is the
logit, of ``fake`` its negative (the logit of 1 - D(x)), as pytorch-grad-cam's binary target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import InputError
from genlab.interpret.discriminator import ACTIVATIONS, attribution_copy, forward_logits, last_conv, last_spatial_conv

TARGETS = {"real": 1.0, "fake": -1.0}


class _Score(nn.Module):
    """sign x D(x): the scalar-per-image score Captum differentiates."""

    def __init__(self, disc: nn.Module, sign: float):
        super().__init__()
        self.disc, self.sign = disc, sign

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.sign * forward_logits(self.disc, x, labels)  # (B,)


def grad_cam(disc: nn.Module, x: torch.Tensor, target: str = "real", labels: torch.Tensor | None = None,
             layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM heat maps (B, 1, H, W) >= 0 at input resolution for images in [-1, 1], on
    `layer` (default: D's last convolution with a map larger than 1x1) of a copy of `disc` (the
    model is not changed)."""
    from captum.attr import LayerAttribution, LayerGradCam

    d = attribution_copy(disc)
    if layer is None:
        layer = last_spatial_conv(d, x[:1], labels[:1] if labels is not None else None)
    if layer is None:
        raise InputError("Grad-CAM needs a convolutional discriminator (this one has no nn.Conv2d)")
    if not any(m is layer for m in d.modules()):  # a layer of the original: find its twin in the copy
        idx = [i for i, m in enumerate(disc.modules()) if m is layer][0]
        layer = list(d.modules())[idx]
    cam = LayerGradCam(_Score(d, TARGETS[target]), layer)
    args = (labels,) if labels is not None else None
    heat = cam.attribute(x, additional_forward_args=args, relu_attributions=True)  # (B, 1, h, w)
    return LayerAttribution.interpolate(heat.detach(), tuple(x.shape[2:]), interpolate_mode="bilinear").clamp_(min=0)


class _GuidedActivation(torch.autograd.Function):
    """LeakyReLU (slope 0: ReLU) forward; guided backward: relu(grad_out * f'(x))."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        local = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ctx.slope))  # f'(x)
        return F.relu(grad * local), None


class GuidedActivation(nn.Module):
    """Drop-in for nn.ReLU / nn.LeakyReLU with the guided-backprop backward pass."""

    def __init__(self, slope: float = 0.0):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedActivation.apply(x, self.slope)


def guided_model(disc: nn.Module) -> nn.Module:
    """A copy of `disc` with every ReLU / LeakyReLU module replaced by :class:`GuidedActivation`."""
    d = attribution_copy(disc)
    for parent in list(d.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATIONS):
                slope = child.negative_slope if isinstance(child, nn.LeakyReLU) else 0.0
                setattr(parent, name, GuidedActivation(slope))
    return d


def guided_backprop(disc: nn.Module, x: torch.Tensor, target: str = "real",
                    labels: torch.Tensor | None = None) -> torch.Tensor:
    """Guided-backprop gradients (B, C, H, W) of the target's score w.r.t. the input."""
    d = guided_model(disc)
    x = x.detach().clone().requires_grad_(True)
    score = TARGETS[target] * forward_logits(d, x, labels)
    (grad,) = torch.autograd.grad(score.sum(), x)
    return grad.detach()


def guided_grad_cam(disc: nn.Module, x: torch.Tensor, target: str = "real",
                    labels: torch.Tensor | None = None) -> torch.Tensor:
    """Guided backprop x upsampled Grad-CAM (Selvaraju et al. 2017), (B, C, H, W)."""
    return guided_backprop(disc, x, target, labels) * grad_cam(disc, x, target, labels)


# ----------------------------------------------------------------------------- figures

def _normalise_map(m: np.ndarray) -> np.ndarray:
    """(H, W) >= 0 -> [0, 1] by its own maximum (an all-zero map stays zero)."""
    top = m.max()
    return m / top if top > 0 else m


def gradient_image(g: np.ndarray) -> np.ndarray:
    """A gradient (C, H, W) as a displayable image (C, H, W) in [0, 1]: centred on grey,
    0.1 per standard deviation (pytorch-grad-cam's ``deprocess_image``; its absolute epsilon
    1e-5 is relative here: guided Grad-CAM's products can be ~1e-9 and would show flat grey)."""
    std = float(g.std())
    if std == 0:
        return np.full_like(g, 0.5)
    return np.clip((g - g.mean()) / std * 0.1 + 0.5, 0, 1)


def _rgb(x: np.ndarray) -> np.ndarray:
    """An image (C, H, W) in [0, 1] -> (H, W, 3)."""
    x = x.transpose(1, 2, 0)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def _heat_overlay(img: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Half the image (H, W, 3), half the jet-coloured heat (H, W) scaled by its own maximum."""
    from matplotlib import colormaps

    return 0.5 * img + 0.5 * colormaps["jet"](_normalise_map(heat))[..., :3]


def tile_rows(cells: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Rows of (H, W, 3) images in [0, 1] -> one (H', W', 3) image on white, rows padded."""
    h, w = cells[0][0].shape[:2]
    ncols = max(len(r) for r in cells)
    out = np.ones((len(cells) * (h + pad) + pad, ncols * (w + pad) + pad, 3), np.float32)
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = cell
    return out


def saliency_tiles(images: np.ndarray, maps: dict[str, np.ndarray], pad: int = 2) -> np.ndarray:
    """The figure's pixels: one row per image, the input (grey or colour, as it is) then each
    map, every cell at the image's own size; (H', W', 3) float in [0, 1]. Grad-CAM heat is drawn
    over the input; gradients keep one colour per input channel."""
    rows = []
    for i in range(len(images)):
        img = _rgb(images[i])
        row = [img]
        for name, m in maps.items():
            if m.shape[1] == 1 and name.startswith("Grad-CAM"):
                row.append(_heat_overlay(img, m[i, 0]))
            else:
                row.append(_rgb(gradient_image(m[i])))
        rows.append(row)
    return tile_rows(rows, pad)


def saliency_figure(images: np.ndarray, probs: np.ndarray, maps: dict[str, np.ndarray], path: str | Path,
                    title: str) -> Path:
    """One row per image: the input (with D's P(real)) beside each map. `images` float
    (N, C, H, W) in [0, 1]; `maps` name -> (N, 1, H, W) heat (Grad-CAM, drawn over the input)
    or (N, C, H, W) gradients (guided backprop, guided Grad-CAM). The cells are tiled into one
    image (one axes: a figure of many small axes took seconds to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.runtime import save_figure

    grid = saliency_tiles(images, maps)
    n, cols, size = len(images), 1 + len(maps), images.shape[2] + 2
    fig, ax = plt.subplots(figsize=(1.1 * cols + 0.8, 1.1 * n + 0.7))
    ax.imshow(grid, interpolation="nearest")
    for j, name in enumerate(["input", *maps]):
        ax.text(2 + size * (j + 0.5), -2, name, ha="center", va="bottom", fontsize=6)
    for i, p in enumerate(probs):
        ax.text(-2, 2 + size * (i + 0.5), f"P(real)\n{p:.2f}", ha="right", va="center", fontsize=6)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8, pad=14)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def saliency_maps(disc: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Every map of the figure for images `x` in [-1, 1]: Grad-CAM for both targets (when D
    has a convolution), guided backprop and guided Grad-CAM for both targets."""
    maps: dict[str, np.ndarray] = {}
    has_conv = last_conv(disc) is not None
    for target in TARGETS:
        gb = guided_backprop(disc, x, target, labels)
        if has_conv:
            cam = grad_cam(disc, x, target, labels)
            maps[f"Grad-CAM {target}"] = cam.cpu().numpy()
        maps[f"guided BP {target}"] = gb.cpu().numpy()
        if has_conv:
            maps[f"guided Grad-CAM {target}"] = (gb * cam).cpu().numpy()
    return dict(sorted(maps.items(), key=lambda kv: (kv[0].split()[-1] != "real", kv[0])))


def heat_on_mask(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the total heat (N, 1, H, W) that falls on `mask` (N, 1, H, W) bool."""
    total = heat.sum()
    return float((heat * mask).sum() / total) if total > 0 else float("nan")


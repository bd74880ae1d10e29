"""SVHN-like colour digits, rendered offline: the synthetic digits of
:mod:`genlab.data.synthetic_digits` in colour on varied coloured and textured backgrounds.

Each image is one centred digit (the label), scaled to 0.55-0.85 of the image height and moved a
little off centre, with partial neighbouring digits at the left and right edge in half of the
images (house numbers have neighbours: SVHN's "cropped digits" keep them). The background is a
linear gradient between two random colours at a random angle, plus smooth blotches and, in a
third of the images, stripes; the digit and its neighbours share one colour whose luma differs
from the background's mean luma by 0.3-0.6 (on a 0..1 scale), so every digit stays readable;
a little Gaussian pixel noise comes last.

Determinism: the glyphs come from :func:`~genlab.data.synthetic_digits.render_digits` with a
generator spawned from the split's seed, every other random number from a second one, drawn
up front in a fixed order; the per-pixel work is element-wise float32 (``grid_sample``,
blends), so the images depend only on the seed, the split sizes and the image size.
"""

from __future__ import annotations

import numpy as np

from genlab.data.sources_base import ImageSet, limits, val_size
from genlab.data.synthetic_digits import BOX, OUT, render_digits

CLASS_NAMES = [str(d) for d in range(10)]
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's convert("L")


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA


def _colour_with_luma(rgb: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Move each colour (N, 3) towards black or white until its luma is `target` (N,): luma is
    linear, so scaling towards black (or white) hits the target exactly and keeps the hue."""
    lum = _luma(rgb)
    darker = rgb * (target / np.maximum(lum, 1e-6))[:, None]
    lighter = 1 - (1 - rgb) * ((1 - target) / np.maximum(1 - lum, 1e-6))[:, None]
    return np.where((target <= lum)[:, None], darker, lighter).clip(0, 1)


def _draw_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Every random number of the composition, in one fixed order."""
    p: dict[str, np.ndarray] = {}
    p["height"] = rng.uniform(0.55, 0.85, n)                 # digit height / image height
    p["shift"] = rng.uniform(-0.06, 0.06, (n, 2))            # digit centre offset / image side
    p["neighbours"] = rng.random(n) < 0.5                    # partial digits at both edges
    p["neighbour_gap"] = rng.uniform(0.6, 0.8, n)            # their centre distance / digit height
    p["neighbour_pick"] = rng.integers(0, n, (n, 2))         # which other glyphs they are
    p["bg0"] = rng.random((n, 3))
    p["bg1"] = rng.random((n, 3))
    p["angle"] = rng.uniform(0, 2 * np.pi, n)                # gradient direction
    p["blotch_amp"] = rng.uniform(0.0, 0.25, n)
    p["blotch"] = rng.standard_normal((n, 3, 4, 4))          # coarse noise, upsampled smoothly
    p["stripes"] = rng.random(n) < 1 / 3
    p["stripe_freq"] = rng.uniform(2.0, 6.0, n)              # periods per image side
    p["stripe_angle"] = rng.uniform(0, np.pi, n)
    p["stripe_amp"] = rng.uniform(0.05, 0.15, n)
    p["fg_hue"] = rng.random((n, 3))
    p["contrast"] = rng.uniform(0.3, 0.6, n)                 # |luma(fg) - mean luma(bg)|
    p["fg_darker"] = rng.random(n) < 0.5                     # preferred sign, if both fit
    p["noise_std"] = rng.uniform(0.0, 0.04, n)
    p["noise_seed"] = rng.integers(0, 2**31 - 1, n)
    return p


def _place(masks, scale: np.ndarray, dx: np.ndarray, dy: np.ndarray, size: int):
    """MNIST-normalised masks (B, 1, 28, 28) in [0, 1] -> (B, 1, size, size): the 20-px box
    scaled to `scale` x size, its centre moved by (dx, dy) x size, bilinear, zero outside."""
    import torch
    import torch.nn.functional as F

    b = masks.shape[0]
    f = scale * size / BOX                                   # output px per mask px
    theta = np.zeros((b, 2, 3), np.float32)
    # output pixel u (normalised -1..1 over `size` px) samples mask coordinate (u*size/2 - d*size) / (OUT/2 * f)
    theta[:, 0, 0] = theta[:, 1, 1] = size / (OUT * f)
    theta[:, 0, 2] = -dx * size / (OUT / 2 * f)
    theta[:, 1, 2] = -dy * size / (OUT / 2 * f)
    grid = F.affine_grid(torch.from_numpy(theta), (b, 1, size, size), align_corners=False)
    return F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _background(p: dict[str, np.ndarray], sl: slice, size: int):
    """(B, 3, size, size) float32 in [0, 1]: gradient + blotches + optional stripes."""
    import torch
    import torch.nn.functional as F

    pos = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5           # pixel centres, -0.5..0.5
    y, x = pos.view(1, size, 1), pos.view(1, 1, size)
    ang = torch.from_numpy(p["angle"][sl].astype(np.float32)).view(-1, 1, 1)
    t = (x * torch.cos(ang) + y * torch.sin(ang)) / 1.4143 + 0.5                 # (B, S, S) in [0, 1]
    bg0 = torch.from_numpy(p["bg0"][sl].astype(np.float32))[:, :, None, None]
    bg1 = torch.from_numpy(p["bg1"][sl].astype(np.float32))[:, :, None, None]
    bg = bg0 + (bg1 - bg0) * t[:, None]                                            # (B, 3, S, S)
    blotch = torch.from_numpy(p["blotch"][sl].astype(np.float32))                 # (B, 3, 4, 4)
    blotch = F.interpolate(blotch, size=(size, size), mode="bicubic", align_corners=False)
    bg = bg + torch.from_numpy(p["blotch_amp"][sl].astype(np.float32)).view(-1, 1, 1, 1) * blotch
    sang = torch.from_numpy(p["stripe_angle"][sl].astype(np.float32)).view(-1, 1, 1)
    freq = torch.from_numpy(p["stripe_freq"][sl].astype(np.float32)).view(-1, 1, 1)
    wave = torch.sin(2 * np.pi * freq * (x * torch.cos(sang) + y * torch.sin(sang)))  # (B, S, S)
    amp = torch.from_numpy((p["stripe_amp"][sl] * p["stripes"][sl]).astype(np.float32)).view(-1, 1, 1, 1)
    return (bg + amp * wave[:, None]).clamp_(0, 1)


def compose(glyphs: np.ndarray, p: dict[str, np.ndarray], sl: slice, size: int) -> np.ndarray:
    """Glyph masks (N, 1, 28, 28) uint8 of the whole split + params -> images uint8 (B, 3, size, size)
    for the samples in `sl`."""
    import torch

    idx = np.arange(len(glyphs))[sl]
    b = len(idx)
    masks = torch.from_numpy(glyphs[idx].astype(np.float32) / 255.0)               # (B, 1, 28, 28)
    h, (dx, dy) = p["height"][sl], p["shift"][sl].T
    alpha = _place(masks, h, dx, dy, size)                                         # (B, 1, S, S)
    gap = p["neighbour_gap"][sl] * h
    for side, sign in enumerate((-1.0, 1.0)):
        other = torch.from_numpy(glyphs[p["neighbour_pick"][sl, side]].astype(np.float32) / 255.0)
        neigh = _place(other, h, dx + sign * gap, dy, size)
        on = torch.from_numpy(p["neighbours"][sl].astype(np.float32)).view(-1, 1, 1, 1)
        alpha = torch.maximum(alpha, neigh * on)
    bg = _background(p, sl, size)                                                  # (B, 3, S, S)
    bg_luma = (bg * torch.from_numpy(LUMA.astype(np.float32)).view(1, 3, 1, 1)).sum(1).mean((1, 2)).numpy()
    # foreground luma: bg luma -/+ contrast, on the preferred side when it fits in [0, 1]
    c = p["contrast"][sl]
    dark, light = bg_luma - c, bg_luma + c
    use_dark = np.where(p["fg_darker"][sl], dark >= 0, light > 1)
    target = np.clip(np.where(use_dark, dark, light), 0.0, 1.0)
    fg = torch.from_numpy(_colour_with_luma(p["fg_hue"][sl], target).astype(np.float32))[:, :, None, None]
    img = bg * (1 - alpha) + fg * alpha                                            # (B, 3, S, S)
    noise = np.stack([np.random.default_rng(s).standard_normal((3, size, size), np.float32)
                      for s in p["noise_seed"][sl]]) if b else np.zeros((0, 3, size, size), np.float32)
    img = img + torch.from_numpy(p["noise_std"][sl].astype(np.float32)).view(-1, 1, 1, 1) * torch.from_numpy(noise)
    return np.clip(np.rint(img.clamp_(0, 1).numpy() * 255.0), 0, 255).astype(np.uint8)


def render_rgb_digits(n: int, seed_seq: np.random.SeedSequence, size: int = 32, *, batch_size: int = 2048,
                      progress_desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`n` colour digits with balanced classes: (images uint8 (n, 3, size, size), labels int64 (n,))."""
    from genlab.runtime import progress

    glyph_ss, scene_ss = seed_seq.spawn(2)
    glyphs, labels = render_digits(n, np.random.default_rng(glyph_ss), progress_desc=f"{progress_desc or 'rgb'} glyphs")
    p = _draw_params(np.random.default_rng(scene_ss), n)
    out = np.empty((n, 3, size, size), np.uint8)
    starts = range(0, n, batch_size)
    for start in progress(starts, desc=progress_desc or "render rgb digits", total=len(starts), unit="batch"):
        sl = slice(start, min(n, start + batch_size))
        out[sl] = compose(glyphs, p, sl, size)
    return out, labels


def synthetic_rgb(n_train: int = 60000, n_test: int = 10000, seed: int = 0, size: int = 32, n_val: int = 0
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, test and (`n_val` > 0) val splits, each from its own child of ``SeedSequence(seed)``
    (a different child than :func:`~genlab.data.synthetic_digits.synthetic_digits` uses, so the
    glyphs are not those of the grey digits at the same seed)."""
    train_ss, test_ss, val_ss = np.random.SeedSequence([seed, 0x5EB6]).spawn(3)
    splits = {
        "train": render_rgb_digits(n_train, train_ss, size, progress_desc="rgb train"),
        "test": render_rgb_digits(n_test, test_ss, size, progress_desc="rgb test"),
    }
    if n_val:
        splits["val"] = render_rgb_digits(n_val, val_ss, size, progress_desc="rgb val")
    return splits


def load_synthetic_rgb(cfg, seed: int) -> ImageSet:
    """The ``synthetic-rgb`` source for `prepare_images` (`cfg`: its ``PrepareImagesParams``),
    rendered at ``cfg.image_size`` (32 px is SVHN's size)."""
    n_tr, n_te = limits(cfg.limit)
    n_test = min(cfg.n_test, n_te or cfg.n_test)
    splits = synthetic_rgb(min(cfg.n_train, n_tr or cfg.n_train), n_test, seed, cfg.image_size,
                           n_val=val_size(n_test))
    return ImageSet(splits["train"], splits["test"], list(CLASS_NAMES), {"rendered_size": cfg.image_size},
                    val=splits["val"])

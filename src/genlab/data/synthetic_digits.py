"""MNIST-like handwritten-looking digits, rendered offline from the fonts matplotlib ships.

Each digit is a font glyph (from the TrueType fonts in ``matplotlib.get_data_path()/fonts/ttf``
whose digit glyphs really are digits) pushed through a random affine map (rotation, shear,
aspect), a smooth elastic displacement field and a random stroke width, then normalised the
way MNIST was built (LeCun et al. 1998): the digit is scaled to fit a 20x20 box keeping its
aspect ratio, and placed in a 28x28 image so that its centre of mass is at the image centre
(moved only as far as needed to keep the digit inside the frame).

All randomness comes from one ``numpy.random.Generator`` per split, drawn up front, so the
result depends only on the seed and the split size (not on batch size or thread count): the
per-pixel work is element-wise (``grid_sample``, sigmoid, 3x3 average) and the reductions
(bounding box, centre of mass) are done in float64 NumPy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = [str(d) for d in range(10)]
_DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

CANVAS = 64          # side of the high-resolution glyph canvas (templates and warped digits)
GLYPH_HEIGHT = 38    # tallest side of a glyph on that canvas, leaving room for rotation/shear
OUT = 28             # MNIST image side
BOX = 20             # MNIST normalises each digit to fit a BOX x BOX square
SUPER = 3            # final placement is rendered at SUPER x OUT and averaged down (anti-aliasing)
BLUR_SIGMA = 1.6     # template blur (hi-res px); thresholding the blur at t sets the stroke width


@dataclass(frozen=True)
class DigitFont:
    path: str
    name: str


class NoDigitFonts(RuntimeError):
    """No usable digit font was found (matplotlib's font folder is missing or changed)."""


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _render_glyph(font, text: str, size: int = 96) -> np.ndarray:
    """`text` drawn white-on-black on a generous canvas, cropped to its ink (float32 0..1)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(img).text((size, size // 2), text, font=font, fill=255)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(arr.max(1) > 0), np.flatnonzero(arr.max(0) > 0)
    if rows.size == 0:
        return np.zeros((0, 0), np.float32)
    return arr[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _glyph_is_digit(ft, digit: int) -> bool:
    """The font maps the digit's code point to a glyph named like that digit.

    Catches fonts without the glyph (index 0, ``.notdef``) and symbol fonts whose code point
    '0' is some other symbol (matplotlib's cmsy10 maps '0' to 'prime', cmex10 to a bracket).
    """
    idx = ft.get_char_index(ord(str(digit)))
    if idx == 0:
        return False
    name = ft.get_glyph_name(idx).lower()
    return name.startswith(_DIGIT_NAMES[digit]) or name in (f"uni{0x30 + digit:04x}", f"u{0x30 + digit:04x}")


@functools.lru_cache(maxsize=4)
def digit_fonts(folder: str | None = None) -> tuple[DigitFont, ...]:
    """Fonts in `folder` (default: matplotlib's) whose ten digit glyphs are real, distinct digits.

    Every glyph is checked three ways: the cmap names a digit glyph, the rendering has ink, and
    it differs from the font's "missing glyph" box and from the font's other digits.
    """
    from matplotlib import ft2font
    from PIL import ImageFont

    folder_path = Path(folder) if folder else font_dir()
    good = []
    for path in sorted(folder_path.glob("*.ttf")):
        try:
            ft = ft2font.FT2Font(str(path))
            pil = ImageFont.truetype(str(path), 64)
        except Exception:  # noqa: BLE001  (an unreadable font is simply not used)
            continue
        if not all(_glyph_is_digit(ft, d) for d in range(10)):
            continue
        notdef = _render_glyph(pil, "\ue000")  # private-use code point: the notdef box, if any
        glyphs = [_render_glyph(pil, str(d)) for d in range(10)]
        if any(g.size == 0 or g.max() < 0.5 for g in glyphs):
            continue
        if any(g.shape == notdef.shape and np.array_equal(g, notdef) for g in glyphs):
            continue
        if len({(g.shape, g.tobytes()) for g in glyphs}) < 10:
            continue
        good.append(DigitFont(str(path), path.stem))
    if not good:
        raise NoDigitFonts(f"no font with digit glyphs found in {folder_path}")
    return tuple(good)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma, mode="constant")


@functools.lru_cache(maxsize=4)
def glyph_templates(folder: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(templates float32 (F*10, CANVAS, CANVAS), labels (F*10,)): every digit of every usable
    font, blurred, tallest side GLYPH_HEIGHT, centred. The blur lets a per-sample threshold
    set the stroke width (lower threshold -> thicker stroke)."""
    from PIL import Image, ImageFont

    fonts = digit_fonts(folder)
    templates, labels = [], []
    for font in fonts:
        pil = ImageFont.truetype(font.path, 96)
        for d in range(10):
            g = _render_glyph(pil, str(d))
            h, w = g.shape
            scale = GLYPH_HEIGHT / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            g = np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((nw, nh), Image.LANCZOS),
                           dtype=np.float32) / 255.0
            canvas = np.zeros((CANVAS, CANVAS), np.float32)
            top, left = (CANVAS - nh) // 2, (CANVAS - nw) // 2
            canvas[top : top + nh, left : left + nw] = g
            canvas = _blur(canvas, BLUR_SIGMA)
            templates.append(canvas / max(canvas.max(), 1e-6))
            labels.append(d)
    return np.stack(templates), np.asarray(labels, np.int64)


@dataclass(frozen=True)
class Distortion:
    """Ranges of the random distortions (defaults tuned by eye against MNIST)."""

    rotation_deg: float = 12.0      # std of the rotation, clipped at 2.5 std
    shear: float = 0.25             # uniform in [-shear, shear] (x shear: slant)
    aspect: tuple[float, float] = (0.75, 1.2)   # x-scale relative to y (log-uniform)
    elastic: float = 0.08           # max std of the elastic displacement (normalised coords)
    elastic_grid: int = 5           # coarse grid the displacement noise is drawn on
    threshold: tuple[float, float] = (0.2, 0.55)  # blur threshold range (stroke width)


def _draw_params(rng: np.random.Generator, n: int, n_fonts: int, dist: Distortion) -> dict[str, np.ndarray]:
    """Every random number a split needs, drawn in one fixed order."""
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)  # balanced classes
    font = rng.integers(0, n_fonts, size=n)
    rot = np.deg2rad(np.clip(rng.normal(0.0, dist.rotation_deg, n), -2.5 * dist.rotation_deg, 2.5 * dist.rotation_deg))
    shear = rng.uniform(-dist.shear, dist.shear, n)
    aspect = np.exp(rng.uniform(np.log(dist.aspect[0]), np.log(dist.aspect[1]), n))
    elastic_amp = rng.uniform(0.0, dist.elastic, n)
    g = dist.elastic_grid
    noise = rng.standard_normal((n, 2, g, g)).astype(np.float32)
    thresh = rng.uniform(*dist.threshold, n)
    return dict(labels=labels, font=font, rot=rot, shear=shear, aspect=aspect, elastic_amp=elastic_amp,
                noise=noise, thresh=thresh)


def _affine_grid(theta: np.ndarray, size: int):
    """``F.affine_grid(theta, (B, 1, size, size), align_corners=False)`` by broadcasting: the
    same numbers, several times faster on CPU. (B, 2, 3) -> (B, size, size, 2)."""
    import torch

    t = torch.from_numpy(theta.astype(np.float32))[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    base = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # pixel centres in -1..1
    x, y = base.view(1, 1, size), base.view(1, size, 1)
    gx = t[:, 0, 0] * x + t[:, 0, 1] * y + t[:, 0, 2]                       # (B, size, size)
    gy = t[:, 1, 0] * x + t[:, 1, 1] * y + t[:, 1, 2]
    return torch.stack([gx, gy], dim=-1)


@functools.lru_cache(maxsize=4)
def _smooth_basis(grid: int, size: int):
    """(size, grid) Gaussian bumps centred on a coarse grid, rows summing to 1: ``M @ noise @ M.T``
    turns (grid, grid) white noise into a smooth (size, size) displacement field."""
    import torch

    centres = (np.arange(grid) + 0.5) / grid
    pos = (np.arange(size) + 0.5) / size
    m = np.exp(-0.5 * ((pos[:, None] - centres[None]) * grid / 0.8) ** 2)
    return torch.from_numpy((m / m.sum(1, keepdims=True)).astype(np.float32))


def _warp(templates, p: dict[str, np.ndarray], sl: slice):
    """Affine + elastic warp of each sample's template, then the stroke threshold.
    Returns float32 (B, CANVAS, CANVAS) in [0, 1]."""
    import torch
    import torch.nn.functional as F

    idx = p["font"][sl] * 10 + p["labels"][sl]
    src = torch.from_numpy(templates[idx]).unsqueeze(1)  # (B, 1, 64, 64)
    b = src.shape[0]
    c, s = np.cos(p["rot"][sl]), np.sin(p["rot"][sl])
    # Output->input map (grid_sample samples the input at theta @ [x, y, 1]): the inverse of
    # "scale x by aspect, shear, rotate", composed as rotation @ shear @ scale, then inverted.
    fwd = np.zeros((b, 2, 2))
    a, sh = p["aspect"][sl], p["shear"][sl]
    fwd[:, 0, 0] = c * a
    fwd[:, 0, 1] = c * sh - s
    fwd[:, 1, 0] = s * a
    fwd[:, 1, 1] = s * sh + c
    inv = np.linalg.inv(fwd)
    grid = _affine_grid(np.concatenate([inv, np.zeros((b, 2, 1))], axis=2), CANVAS)  # (B, 64, 64, 2)
    # smooth elastic field from coarse white noise: (B, 2, g, g) -> (B, 2, 64, 64)
    noise = torch.from_numpy(p["noise"][sl] * p["elastic_amp"][sl, None, None, None].astype(np.float32))
    basis = _smooth_basis(noise.shape[-1], CANVAS)                           # (64, g)
    field = basis @ noise @ basis.T
    grid = grid + field.permute(0, 2, 3, 1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # stroke width: a soft threshold of the blurred glyph (anti-aliased edge ~0.04 wide)
    haze = warped <= 0.02  # far from any stroke: exactly 0, not the sigmoid's tail
    t = torch.from_numpy(p["thresh"][sl].astype(np.float32)).view(b, 1, 1, 1)
    ink = warped.sub_(t).div_(0.04).sigmoid_().masked_fill_(haze, 0.0)
    return ink[:, 0].numpy()


def _place_mnist(ink: np.ndarray) -> np.ndarray:
    """MNIST normalisation: fit the ink's bounding box into BOX x BOX (aspect kept), centre of
    mass at the centre of the OUT x OUT image. (B, 64, 64) float -> (B, 28, 28) uint8."""
    import torch
    import torch.nn.functional as F

    b = ink.shape[0]
    mask = ink > 0.1
    rows, cols = mask.any(2), mask.any(1)
    r0, r1 = rows.argmax(1), CANVAS - 1 - rows[:, ::-1].argmax(1)
    c0, c1 = cols.argmax(1), CANVAS - 1 - cols[:, ::-1].argmax(1)
    extent = np.maximum(r1 - r0 + 1, c1 - c0 + 1).astype(np.float64)
    row_mass = ink.sum(2, dtype=np.float64)  # (B, 64): NumPy's pairwise sums, thread-independent
    col_mass = ink.sum(1, dtype=np.float64)
    mass = row_mass.sum(1)
    mass = np.where(mass > 0, mass, 1.0)
    coords = np.arange(CANVAS) + 0.5  # pixel centres, in pixels from the top-left corner
    cy = (row_mass * coords).sum(1) / mass
    cx = (col_mass * coords).sum(1) / mass
    # output pixel u (in 28-px units, 0..28) samples the source at  c + (u - 14) * extent / BOX
    k = extent / BOX                       # source px per output px
    # A lopsided digit (a font's 7: heavy bar, thin stem) centred by mass alone would run off
    # the image; shift it just enough to keep its box 1.5 px inside the frame.
    half = (OUT / 2 - 1.5) * k
    cy = np.clip(cy, r1 + 1 - half, r0 + half)
    cx = np.clip(cx, c1 + 1 - half, c0 + half)
    # in grid_sample's normalised coords (align_corners=False: -1..1 spans the whole image)
    theta = np.zeros((b, 2, 3))
    theta[:, 0, 0] = k * OUT / CANVAS
    theta[:, 1, 1] = k * OUT / CANVAS
    theta[:, 0, 2] = cx / CANVAS * 2 - 1
    theta[:, 1, 2] = cy / CANVAS * 2 - 1
    grid = _affine_grid(theta, OUT * SUPER)                            # (B, 84, 84, 2)
    big = F.grid_sample(torch.from_numpy(ink).unsqueeze(1), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=False)      # (B, 1, 84, 84)
    small = F.avg_pool2d(big, SUPER)                                   # (B, 1, 84, 84) -> (B, 1, 28, 28)
    return np.clip(np.rint(small[:, 0].numpy() * 255.0), 0, 255).astype(np.uint8)


def render_digits(n: int, rng: np.random.Generator, *, distortion: Distortion = Distortion(),
                  batch_size: int = 256, progress_desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`n` digits with balanced classes: (images uint8 (n, 1, 28, 28), labels int64 (n,)).
    The output does not depend on `batch_size`; 256 keeps each batch's sampling grids in cache
    (timed in docs/speed.md)."""
    from genlab.runtime import progress

    templates, _ = glyph_templates()
    n_fonts = templates.shape[0] // 10
    p = _draw_params(rng, n, n_fonts, distortion)
    out = np.empty((n, 1, OUT, OUT), np.uint8)
    starts = range(0, n, batch_size)
    for start in progress(starts, desc=progress_desc or "render digits", total=len(starts), unit="batch"):
        sl = slice(start, min(n, start + batch_size))
        out[sl, 0] = _place_mnist(_warp(templates, p, sl))
    return out, p["labels"]


def synthetic_digits(n_train: int = 60000, n_test: int = 10000, seed: int = 0, n_val: int = 0
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, test and (`n_val` > 0) val splits, each from its own child of ``SeedSequence(seed)``:
    the test set does not change when only `n_train` or `n_val` does."""
    train_ss, test_ss, val_ss = np.random.SeedSequence(seed).spawn(3)
    splits = {
        "train": render_digits(n_train, np.random.default_rng(train_ss), progress_desc="digits train"),
        "test": render_digits(n_test, np.random.default_rng(test_ss), progress_desc="digits test"),
    }
    if n_val:
        splits["val"] = render_digits(n_val, np.random.default_rng(val_ss), progress_desc="digits val")
    return splits

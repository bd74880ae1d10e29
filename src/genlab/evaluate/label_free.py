"""Judges that need no labels: any image set, digits or photos.

Offline, with no download, always:

- **two-sample test** (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests"): a small
  CNN learns to tell real held-out images from generated ones on one half of each; its accuracy
  on the other half is ``c2st_acc``. 0.5: the CNN cannot tell them apart; 1.0: every sample
  gives itself away.
- **precision and recall** (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models"): each set's manifold is the union of balls around its points
  reaching the k-th nearest neighbour (k=3); precision is the share of samples inside the real
  manifold (fidelity), recall the share of real images inside the samples' manifold (coverage).
  The feature space is a fixed, randomly initialised convolutional net (:class:`RandomFeatures`):
  see its docstring for why.
- **memorisation**: each sample's distance to its nearest training image against the same for
  real held-out images (which the generator never saw), in downsampled pixel space, where a copy
  of a training image is at distance 0. ``memorisation`` is the share of samples closer to the
  training set than the 5th percentile of the held-out images' distances (about 0.05 for a
  generator that copies nothing, towards 1.0 for one that copies), ``memorisation_ratio`` the
  ratio of the two medians (below 1: samples sit closer to the training set than new real data).

When the Inception-v3 weights that torch-fidelity and torchmetrics use
(``pt_inception-2015-12-05``) are in the local torch hub cache, also the FID and KID that papers
report (``inception_fid``, ``inception_kid``, ``inception_kid_std``): torch-fidelity's
``FeatureExtractorInceptionV3`` pool3 features (2048-d, its TF-1.x bilinear resize to 299 px,
grey images repeated to three channels), and torchmetrics' float64 Fréchet and polynomial-kernel
distances on them. The weights are never downloaded here; without them one line names the file
and how to fetch it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from genlab.data.arrays import ImageArrayError, check_images
from genlab.params import StrictModel
from genlab.runtime import log, sha256_file

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
INCEPTION_SHA256_PREFIX = "6726825d"  # the hub convention: the file name carries its hash's prefix
FEATURE_SEED = 20190412  # the random feature net's weights: fixed, so every run embeds alike
FEATURE_SIZE = 32  # images are resized to this side before the random feature net
MEMO_SIDE = 16  # memorisation's pixel space: images area-averaged to at most this side
MEMO_QUANTILE = 0.05  # a sample "close" to the training set: nearer than this quantile of held-out real


class LabelFreeParams(StrictModel):
    """`evaluate.label_free` in params.yaml (defaults mirror it)."""

    c2st_n: int = Field(2000, ge=4)  # images per side (real held-out, generated); half train, half test
    c2st_epochs: int = Field(4, ge=1)
    c2st_batch_size: int = Field(64, ge=2)
    c2st_lr: float = Field(2e-3, gt=0)
    c2st_width: int = Field(16, ge=1)  # channels of the first conv; doubled per downsampling
    pr_n: int = Field(2000, ge=8)  # images per side for precision / recall
    pr_k: int = Field(3, ge=1)  # the k of the k-NN manifolds
    mem_n: int = Field(1000, ge=2)  # samples (and held-out real images) matched to the training set
    inception: Literal["auto", "on", "off"] = "auto"  # auto: only on CUDA (CPU: too slow at 299 px)
    inception_n: int = Field(10000, ge=2)  # images per side through Inception-v3
    kid_subset_size: int = Field(1000, ge=2)


# ---------------------------------------------------------------- shared helpers


def _subsample(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` images drawn without replacement (all of them, in a seeded order, when fewer)."""
    idx = rng.permutation(len(images))[: min(n, len(images))]
    return images[np.sort(idx)]


def _to_float(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(127.5).sub_(1.0)


_CACHE: dict[str, tuple[tuple, Any]] = {}


def _digest(images: np.ndarray) -> tuple:
    return hashlib.sha1(np.ascontiguousarray(images).data).hexdigest(), images.shape


def _cached(kind: str, key: tuple, compute: Any) -> Any:
    """`compute()` once per (kind, key): the evaluate stage judges every row against the same
    held-out and training images; one entry per kind is kept."""
    hit = _CACHE.get(kind)
    if hit is None or hit[0] != key:
        _CACHE[kind] = (key, compute())
    return _CACHE[kind][1]


def _min_sq_dist(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each row of a (N, D), the squared distance to its nearest row of b (M, D), in float64 sums."""
    b_sq = (b * b).sum(1)
    out = []
    for i in range(0, len(a), chunk):
        ai = a[i : i + chunk]
        d = (ai * ai).sum(1, keepdim=True) + b_sq[None] - 2.0 * ai @ b.T  # (n, M)
        out.append(d.min(1).values.clamp_min_(0.0))
    return torch.cat(out)


# ---------------------------------------------------------------- two-sample test


class TwoSampleCNN(nn.Module):
    """Real-or-generated classifier: stride-2 conv blocks until the map is at most 8 px, then a
    global average and one logit. No BatchNorm, so training and test passes compute alike."""

    def __init__(self, channels: int, image_size: int, width: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out, size = channels, width, image_size
        while True:  # (B, c_in, s, s) -> (B, c_out, ceil(s/2), ceil(s/2))
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in, c_out, size = c_out, c_out * 2, (size + 1) // 2
            if size <= 8 and len(layers) >= 4:
                break
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)  # (B, C, h, w) -> (B, C) -> (B,)


def two_sample_accuracy(samples: np.ndarray, real: np.ndarray, *, seed: int, device: Any,
                        cfg: LabelFreeParams) -> tuple[float, int]:
    """(held-out accuracy, test images) of a CNN trained to tell `real` from `samples`.

    Each side is subsampled to ``cfg.c2st_n`` (the smaller side sets both), split in halves:
    the first trains, the second tests. Seeded: the same inputs give the same number.
    """
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    n = min(cfg.c2st_n, len(samples), len(real))
    if n < 4:
        raise ImageArrayError(f"the two-sample test needs at least 4 images per side, got {n}")
    fake, real = _subsample(samples, n, rng), _subsample(real, n, rng)
    half = n // 2
    x_train = np.concatenate([real[:half], fake[:half]])
    y_train = np.concatenate([np.zeros(half), np.ones(half)]).astype(np.float32)
    x_test = np.concatenate([real[half:], fake[half:]])
    y_test = np.concatenate([np.zeros(n - half), np.ones(n - half)]).astype(np.float32)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = TwoSampleCNN(samples.shape[1], samples.shape[2], cfg.c2st_width).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.c2st_lr, betas=(0.5, 0.999))
        xt, yt = _to_float(x_train, device), torch.from_numpy(y_train).to(device)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(cfg.c2st_epochs):
            order = torch.randperm(len(xt), generator=gen).to(device)
            for i in range(0, len(order), cfg.c2st_batch_size):
                idx = order[i : i + cfg.c2st_batch_size]
                loss = F.binary_cross_entropy_with_logits(net(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            correct = 0
            for i in range(0, len(x_test), 500):
                logits = net(_to_float(x_test[i : i + 500], device)).cpu().numpy()
                correct += int(((logits > 0).astype(np.float32) == y_test[i : i + 500]).sum())
    return correct / len(x_test), len(x_test)


# ---------------------------------------------------------------- precision and recall


class RandomFeatures(nn.Module):
    """A fixed, randomly initialised conv net as a download-free embedding for k-NN metrics.

    Why this space: it needs no download and no training; with a fixed seed it is the same
    function in every run, for every generator and for the real row, so the numbers compare
    across rows and runs (the two-sample CNN is fitted to each row, so its space differs per row
    and favours what it saw). Compared with raw pixels, convolutions with ReLU and pooling respond
    to local structure (strokes, edges, texture) and tolerate shifts of a pixel or two, where
    pixel distance is ruled by exact alignment and overall brightness. Random convolutional
    features are a known, weaker stand-in for trained ones (Naeem et al. 2020 discuss randomly
    initialised embeddings for precision/recall-type metrics); docs/judges.md shows how they
    respond on this project's data.

    uint8 (B, C, H, W) -> (B, 32 + 64 + 128 * 4) float32: every block's global mean and the
    last block's 2x2 average.
    """

    def __init__(self, channels: int):
        super().__init__()
        gen = torch.Generator().manual_seed(FEATURE_SEED)
        self.convs = nn.ModuleList()
        c_in = channels
        for c_out in (32, 64, 128):
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            with torch.no_grad():  # He init (fan_in, ReLU): activations keep their scale across blocks
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / (c_in * 9)))
                conv.bias.zero_()
            self.convs.append(conv)
            c_in = c_out
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(127.5).sub(1.0)
        x = F.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)  # (B, C, H, W) -> (B, C, 32, 32)
        pooled = []
        for conv in self.convs:  # (B, c, s, s) -> (B, 2c, s/2, s/2): 32 -> 16 -> 8 -> 4
            x = F.avg_pool2d(F.relu(conv(x)), 2)
            pooled.append(x.mean((2, 3)))
        pooled.append(F.adaptive_avg_pool2d(x, 2).flatten(1))  # (B, 128, 4, 4) -> (B, 512)
        return torch.cat(pooled, 1)


@torch.no_grad()
def random_features(images: np.ndarray, device: Any, batch_size: int = 500) -> torch.Tensor:
    """:class:`RandomFeatures` of uint8 images (N, C, H, W): (N, 608) float32 on `device`."""
    device = torch.device(device)
    net = RandomFeatures(images.shape[1]).to(device)
    return torch.cat([net(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device))
                      for i in range(0, len(images), batch_size)])


def _knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest other point of the same set."""
    sq = (feats * feats).sum(1)
    out = []
    for i in range(0, len(feats), 1024):
        fi = feats[i : i + 1024]
        d = (fi * fi).sum(1, keepdim=True) + sq[None] - 2.0 * fi @ feats.T  # (n, N), self at ~0
        out.append(d.clamp_min_(0.0).kthvalue(k + 1, dim=1).values)  # k + 1: the point itself is first
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each point lies in at least one ball (centre, squared radius)."""
    c_sq = (centres * centres).sum(1)
    out = []
    for i in range(0, len(points), 1024):
        p = points[i : i + 1024]
        d = (p * p).sum(1, keepdim=True) + c_sq[None] - 2.0 * p @ centres.T  # (n, M)
        out.append((d <= radii[None]).any(1))
    return torch.cat(out)


def precision_recall(sample_feats: torch.Tensor, real_feats: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of two feature sets (N, D), (M, D)."""
    if min(len(sample_feats), len(real_feats)) <= k:
        raise ImageArrayError(f"precision/recall with k={k} needs more than {k} images per side")
    precision = _inside(sample_feats, real_feats, _knn_radii(real_feats, k)).double().mean().item()
    recall = _inside(real_feats, sample_feats, _knn_radii(sample_feats, k)).double().mean().item()
    return precision, recall


# ---------------------------------------------------------------- memorisation


def memo_pixels(images: np.ndarray, device: Any) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C*h*w) float32 in [0, 1], area-averaged to sides of at most 16."""
    factor = max(1, math.ceil(max(images.shape[2:]) / MEMO_SIDE))
    out = []
    for i in range(0, len(images), 4096):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + 4096])).to(device).float().div_(255)
        if factor > 1:  # (B, C, H, W) -> (B, C, ceil(H/f), ceil(W/f))
            x = F.avg_pool2d(x, factor, ceil_mode=True)
        out.append(x.flatten(1))
    return torch.cat(out)


def nearest_distances(points_px: torch.Tensor, train_px: torch.Tensor) -> np.ndarray:
    """Each point's Euclidean distance to its nearest training image, (N,) float64."""
    return _min_sq_dist(points_px, train_px).sqrt().cpu().double().numpy()


def memorisation(d_fake: np.ndarray, d_real: np.ndarray) -> dict[str, float]:
    """Samples' nearest-training-image distances `d_fake` against held-out real images' `d_real`."""
    threshold = float(np.quantile(d_real, MEMO_QUANTILE))
    med_real = float(np.median(d_real))
    return {
        "memorisation": float((d_fake < threshold).mean()),
        "memorisation_ratio": float(np.median(d_fake)) / max(med_real, 1e-12),
    }


# ---------------------------------------------------------------- Inception FID / KID


def inception_weights_path() -> Path:
    """Where torch.hub (torch-fidelity, torchmetrics) caches the weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_missing_line(path: Path) -> str:
    """The one line said when the weights are not cached: which file, and how to get it."""
    return (f"Inception FID/KID skipped: {path} is missing (never downloaded here); on a machine with network run "
            f"`curl -L --create-dirs -o {path} {INCEPTION_URL}` and copy the file to this path")


def inception_plan(cfg: LabelFreeParams, device: Any) -> tuple[Path | None, str]:
    """(weights file to use, or None; a one-line reason when not used, else how it runs)."""
    if cfg.inception == "off":
        return None, "Inception FID/KID skipped: evaluate.label_free.inception is off"
    path = inception_weights_path()
    if not path.is_file():
        return None, inception_missing_line(path)
    if cfg.inception == "auto" and torch.device(device).type != "cuda":
        return None, ("Inception FID/KID skipped on CPU (Inception-v3 at 299 px is slow there): "
                      "set evaluate.label_free.inception: on to run it anyway")
    return path, f"Inception-v3 pool3 features from {path}"


_SAID: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _SAID:
        _SAID.add(line)
        log(f"evaluate: {line}")


class InceptionFeatures(nn.Module):
    """torch-fidelity's FeatureExtractorInceptionV3 (the torchmetrics FID/KID network) on a local
    weights file: uint8 (B, 1 or 3, H, W) -> pool3 features (B, 2048) float64."""

    def __init__(self, weights: Path):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        torch.load(weights, map_location="cpu", weights_only=True)  # a plain state_dict, or refuse
        digest = sha256_file(weights)
        if not digest.startswith(INCEPTION_SHA256_PREFIX):
            _say_once(f"{weights}: sha256 {digest[:8]} is not the published weights' {INCEPTION_SHA256_PREFIX}: "
                      f"Inception FID/KID are not comparable to published numbers")
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=str(weights))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:  # grey: the same plane in R, G and B
            images = images.expand(-1, 3, -1, -1)
        return self.net(images.contiguous())[0].double()  # resized to 299 px inside (TF-1.x bilinear)


@torch.no_grad()
def inception_features(images: np.ndarray, weights: Path, device: Any, batch_size: int = 64) -> torch.Tensor:
    """Pool3 features (N, 2048) float64 on CPU of uint8 images (N, 1 or 3, H, W)."""
    net = InceptionFeatures(weights).to(device)
    return torch.cat([net(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


def inception_scores(samples: np.ndarray, real: np.ndarray, weights: Path, *, seed: int, device: Any,
                     cfg: LabelFreeParams) -> dict[str, float]:
    """FID and KID (mean, std over 100 subsets) on Inception-v3 pool3 features, torchmetrics' formulas."""
    from genlab.evaluate.metrics import frechet_distance, kernel_distance

    rng = np.random.default_rng(seed)
    fake_f = inception_features(_subsample(samples, cfg.inception_n, rng), weights, device).numpy()
    real = _subsample(real, cfg.inception_n, np.random.default_rng(seed))
    st = weights.stat()
    real_f = _cached("inception", (_digest(real), str(weights), st.st_size, st.st_mtime_ns, str(device)),
                     lambda: inception_features(real, weights, device)).numpy()
    kid, kid_std, _ = kernel_distance(fake_f, real_f, subset_size=cfg.kid_subset_size, seed=seed)
    return {"inception_fid": frechet_distance(fake_f, real_f), "inception_kid": kid, "inception_kid_std": kid_std}


# ---------------------------------------------------------------- all of them


def judge_label_free(samples: np.ndarray, real_train: np.ndarray, real_heldout: np.ndarray, *, seed: int,
                     device: Any, cfg: LabelFreeParams | None = None) -> dict[str, float]:
    """Judge uint8 `samples` (N, C, H, W) against real images, with no labels and no download.

    `real_train`: the images the generator was trained on (memorisation looks for copies of
    them); `real_heldout`: real images it never saw (the reference of every judge). Returns flat
    floats: ``c2st_acc`` (0.5 best), ``precision``, ``recall`` (1 best), ``memorisation``
    (about 0.05 for no copying; 1 when every sample copies), ``memorisation_ratio``, and, when
    the Inception weights are cached and ``cfg.inception`` allows it, ``inception_fid``,
    ``inception_kid``, ``inception_kid_std``. Seeded and deterministic on one machine.
    """
    cfg = cfg or LabelFreeParams()
    device = torch.device(device)
    for name, arr in (("samples", samples), ("real_train", real_train), ("real_heldout", real_heldout)):
        check_images(arr, name)
        if arr.shape[1:] != samples.shape[1:]:
            raise ImageArrayError(f"{name}: images are {arr.shape[1:]}, the samples {samples.shape[1:]}")
    acc, _ = two_sample_accuracy(samples, real_heldout, seed=seed, device=device, cfg=cfg)
    fake_f = random_features(_subsample(samples, cfg.pr_n, np.random.default_rng(seed + 1)), device)
    real_pr = _subsample(real_heldout, cfg.pr_n, np.random.default_rng(seed + 2))
    real_f = _cached("pr_real", (_digest(real_pr), str(device)), lambda: random_features(real_pr, device))
    mu, sd = real_f.mean(0), real_f.std(0).clamp_min(1e-6)  # z-score by the real set: every feature counts
    precision, recall = precision_recall((fake_f - mu) / sd, (real_f - mu) / sd, k=cfg.pr_k)
    train_key = (_digest(real_train), str(device))
    train_px = _cached("memo_train", train_key, lambda: memo_pixels(real_train, device))
    real_memo = _subsample(real_heldout, cfg.mem_n, np.random.default_rng(seed + 3))
    d_real = _cached("memo_real", (_digest(real_memo), *train_key),
                     lambda: nearest_distances(memo_pixels(real_memo, device), train_px))
    d_fake = nearest_distances(memo_pixels(_subsample(samples, cfg.mem_n, np.random.default_rng(seed + 4)), device),
                               train_px)
    mem = memorisation(d_fake, d_real)
    out = {"c2st_acc": float(acc), "precision": precision, "recall": recall, **mem}
    weights, line = inception_plan(cfg, device)
    if weights is None:
        _say_once(line)
    else:
        out.update(inception_scores(samples, real_heldout, weights, seed=seed, device=device, cfg=cfg))
    return out

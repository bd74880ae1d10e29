"""Judge a set of images with a trained classifier: confidence, class balance, FID/KID, IS.

All numbers are computed in the classifier's own spaces: its softmax (confidence, class
histogram, Inception-Score analogue) and its penultimate layer (Fréchet and kernel distances,
via torchmetrics with the classifier as a custom feature extractor). Inception-v3 features
mean little on 28x28 digits; a classifier trained on the data itself is the usual judge there.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.errors import StageError
from genlab.data.arrays import ImageArrayError, check_images
from genlab.models.classifier import Classifier, load as load_classifier

CONFIDENT = 0.9  # max-softmax threshold of `frac_confident`


class ClassifierFeatures(nn.Module):
    """torchmetrics feature extractor: uint8 images (B, C, H, W) -> float64 features (B, F).

    For use with ``normalize=False`` (torchmetrics then passes the uint8 batch unchanged); the
    [0, 1] scaling the classifier expects happens here. Features are float64 so the FID
    covariances and matrix square root run in double precision.
    """

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features  # torchmetrics reads it, skipping a dummy pass

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(255).contiguous(memory_format=torch.channels_last)
        return self.classifier.features(x).double()  # (B, C, H, W) -> (B, F)


class PrecomputedFeatures(nn.Module):
    """Identity "extractor" for features already computed by :func:`classifier_outputs`.

    `evaluate_images` runs the classifier once per image and reuses its penultimate features
    for FID and KID and its logits for the softmax numbers, instead of three passes.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _as_classifier(classifier: str | Path | Classifier, device: str | torch.device) -> Classifier:
    if isinstance(classifier, Classifier):
        return classifier.to(device).eval()
    return load_classifier(classifier, device=device)


def check_for_classifier(images: np.ndarray, classifier: Classifier, name: str = "images") -> np.ndarray:
    """The shared image format, with the channel count and size the classifier was trained on."""
    check_images(images, name, channels=classifier.in_channels)
    h, w = images.shape[2:]
    if (h, w) != (classifier.image_size, classifier.image_size):
        raise ImageArrayError(
            f"{name}: images are {h}x{w} pixels, the classifier expects "
            f"{classifier.image_size}x{classifier.image_size}"
        )
    return images


@torch.no_grad()
def classifier_outputs(
    images: np.ndarray, classifier: str | Path | Classifier, *, device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over uint8 images (N, C, H, W): (features (N, F), softmax probabilities (N, K)), float64."""
    clf = _as_classifier(classifier, device)
    check_for_classifier(images, clf)
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        xb = xb.float().div_(255).contiguous(memory_format=torch.channels_last)
        f = clf.features(xb)  # (B, C, H, W) -> (B, F)
        logits = clf.head(f)  # dropout is the identity in eval mode; (B, F) -> (B, K)
        feats.append(f.double().cpu())
        probs.append(torch.softmax(logits.double(), dim=1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def predict_proba(
    images: np.ndarray, classifier: str | Path | Classifier, *, device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """Softmax probabilities (N, K) float64 of uint8 images (N, C, H, W)."""
    return classifier_outputs(images, classifier, device=device, batch_size=batch_size)[1]


def predict(
    images: np.ndarray, classifier_path: str | Path | Classifier, *, device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class int64 (N,), max-softmax confidence float64 (N,)) of uint8 images."""
    probs = predict_proba(images, classifier_path, device=device, batch_size=batch_size)
    return probs.argmax(1).astype(np.int64), probs.max(1)


def class_histogram(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of each predicted class, (K,) int64."""
    return np.bincount(np.asarray(preds, dtype=np.int64), minlength=num_classes)[:num_classes]


def kl_to_uniform(hist: np.ndarray) -> float:
    """KL(p || uniform) in nats of the normalised histogram: 0 when balanced, ln K for one class."""
    p = np.asarray(hist, dtype=np.float64)
    p = p / p.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] * len(p))))


def inception_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over the whole set (Salimans et al. 2016, one split).

    With the dataset's own classifier in place of Inception-v3: between 1 (every image gets
    the same prediction) and K (confident and class-balanced).
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def _feed(metric: Any, features: np.ndarray, real: bool, batch_size: int = 4096) -> None:
    for i in range(0, len(features), batch_size):
        metric.update(torch.from_numpy(features[i : i + batch_size]), real=real)


def frechet_distance(features: np.ndarray, reference_features: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    torchmetrics' FID in float64 (its trace of the matrix square root comes from the
    eigenvalues of the covariance product), on features computed by the classifier.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=PrecomputedFeatures(features.shape[1]), normalize=False)
    _feed(fid, np.asarray(reference_features, dtype=np.float64), True)
    _feed(fid, np.asarray(features, dtype=np.float64), False)
    return max(float(fid.compute()), 0.0)  # round-off can give -1e-12 for identical sets


def kernel_distance(
    features: np.ndarray, reference_features: np.ndarray, *, subset_size: int = 1000, subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float, int]:
    """(mean, std, subset size) of KID (Bińkowski et al. 2018, cubic kernel) over random subsets.

    The subset size is capped at the smaller set; subsets come from a seeded RNG, so the same
    inputs give the same numbers.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(features), len(reference_features))
    if size < 2:
        raise ImageArrayError("KID needs at least 2 images in each set")
    with warnings.catch_warnings():  # "will save all extracted features": intended, N x F floats
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        kid = KernelInceptionDistance(feature=PrecomputedFeatures(features.shape[1]), subsets=subsets,
                                      subset_size=size, normalize=False)
    _feed(kid, np.asarray(reference_features, dtype=np.float64), True)
    _feed(kid, np.asarray(features, dtype=np.float64), False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws its subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std), size


_REFERENCE_CACHE: dict[tuple, np.ndarray] = {}


def _reference_features(
    reference: np.ndarray, classifier_path: str | Path | Classifier, clf: Classifier, device: Any, batch_size: int
) -> np.ndarray:
    """Features of the reference set, cached per (checkpoint file, reference content).

    The evaluate stage judges several generators against the same test set; this saves one
    classifier pass over it per generator. Only checkpoints on disk are cached (keyed by path,
    size and mtime); an in-memory model may change, so it is never cached.
    """
    if isinstance(classifier_path, Classifier):
        return classifier_outputs(reference, clf, device=device, batch_size=batch_size)[0]
    st = Path(classifier_path).stat()
    digest = hashlib.sha1(np.ascontiguousarray(reference).data).hexdigest()
    key = (str(Path(classifier_path).resolve()), st.st_size, st.st_mtime_ns, str(device), reference.shape, digest)
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()  # one reference set at a time is all the stages need
        _REFERENCE_CACHE[key] = classifier_outputs(reference, clf, device=device, batch_size=batch_size)[0]
    return _REFERENCE_CACHE[key]


def evaluate_images(
    images: np.ndarray,
    classifier_path: str | Path | Classifier,
    reference: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
    labels: np.ndarray | None = None,
    outputs: tuple[np.ndarray, np.ndarray] | None = None,
    reference_features: np.ndarray | None = None,
) -> dict[str, Any]:
    """Judge uint8 `images` (N, C, H, W) against real `reference` images with a trained classifier.

    Returns plain floats and lists: ``confidence_mean``, ``frac_confident`` (max-softmax >= 0.9),
    ``class_hist``, ``kl_uniform`` (nats), ``fid``, ``kid_mean``, ``kid_std``,
    ``inception_score``, ``n_images`` (plus ``accuracy`` when `labels` are given, e.g. for a
    class-conditional generator). `outputs` (features, probabilities of `images`, from
    :func:`classifier_outputs`) and `reference_features` spare those classifier passes when the
    caller already has them (the evaluate stage judges several rows against one test set).
    """
    clf = _as_classifier(classifier_path, device)
    check_for_classifier(images, clf, "images")
    check_for_classifier(reference, clf, "reference")
    if len(images) < 2 or len(reference) < 2:
        raise ImageArrayError("FID needs at least 2 images in each set (images and reference)")
    feats, probs = outputs if outputs is not None else classifier_outputs(images, clf, device=device,
                                                                          batch_size=batch_size)
    ref_feats = (reference_features if reference_features is not None
                 else _reference_features(reference, classifier_path, clf, device, batch_size))
    preds, conf = probs.argmax(1), probs.max(1)
    hist = class_histogram(preds, clf.num_classes)
    kid_mean, kid_std, kid_size = kernel_distance(feats, ref_feats, subset_size=kid_subset_size,
                                                  subsets=kid_subsets, seed=seed)
    out: dict[str, Any] = {
        "n_images": int(len(images)),
        "n_reference": int(len(reference)),
        "confidence_mean": float(conf.mean()),
        "frac_confident": float((conf >= CONFIDENT).mean()),
        "class_names": clf.class_names,
        "class_hist": [int(c) for c in hist],
        "kl_uniform": kl_to_uniform(hist),
        "inception_score": inception_score(probs),
        "fid": frechet_distance(feats, ref_feats),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": kid_size,
    }
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"labels: expected shape ({len(images)},), got {labels.shape}")
        out["accuracy"] = float((preds == labels).mean())
    if not all(math.isfinite(v) for v in out.values() if isinstance(v, float)):
        raise StageError(f"evaluation produced a non-finite number: {out}")
    return out

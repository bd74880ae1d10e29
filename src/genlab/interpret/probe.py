"""A linear probe on the discriminator's features (Radford et al. 2016, Sec. 5.1).

The DCGAN paper reads D as a feature extractor: every layer's output max-pooled to a 4x4 grid,
flattened and concatenated, with a regularised linear classifier on top (an L2-SVM there; a
multinomial logistic regression from scikit-learn here). Its claim: those features beat both
raw pixels and the same network with random weights. This module measures that claim on the
prepared image set, with 100, 1,000 and all labels (class-balanced subsets drawn from the seed).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from genlab.interpret.discriminator import layer_features
from genlab.runtime import progress


@torch.no_grad()
def disc_features(disc: nn.Module, images: np.ndarray, *, grid: int = 4, batch_size: int = 500,
                  device: torch.device | str = "cpu", desc: str = "D features") -> np.ndarray:
    """uint8 images (N, C, H, W) -> D's probe features (N, F) float32 (see
    :func:`~genlab.interpret.discriminator.layer_features`). A class-conditional D gets label 0:
    the features are read before its projection term, so the label cannot change them."""
    device = torch.device(device)
    disc = disc.to(device).eval()
    conditional = getattr(disc, "num_classes", None)
    out = []
    starts = range(0, len(images), batch_size)
    for s in progress(starts, desc=desc, total=len(starts), unit="batch"):
        x = torch.from_numpy(images[s:s + batch_size]).to(device).float() / 127.5 - 1  # uint8 -> [-1, 1]
        y = torch.zeros(len(x), dtype=torch.long, device=device) if conditional else None
        out.append(layer_features(disc, x, grid, y).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def pixel_features(images: np.ndarray) -> np.ndarray:
    """The raw-pixel baseline: uint8 (N, C, H, W) -> (N, C*H*W) float32 in [-1, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 127.5 - 1


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of `n` labelled examples, as class-balanced as the data allows (round-robin over
    the classes in a seeded random order); all indices when `n` >= len(labels)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = [idx[i] for i in range(max(map(len, per_class))) for idx in per_class if i < len(idx)]
    return np.sort(np.asarray(order[:n]))


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                   c: float = 1.0, max_iter: int = 200, seed: int = 0) -> float:
    """Test accuracy of a standardised multinomial logistic regression (L2, inverse strength `c`)
    fitted on (train_x, train_y)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    # one BLAS thread: these are small products, and on busy cores OpenBLAS's threads wait for
    # each other (docs/speed.md)
    with warnings.catch_warnings(), threadpool_limits(1):
        # a capped lbfgs run is the budget (steps, not seconds), not an error
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train_x, train_y)
        return float((clf.predict(test_x) == test_y).mean())


def label_count_name(n: int | None, n_train: int) -> str:
    """``100``, ``1000`` ... or ``all`` (every training example given, or a count beyond them)."""
    return "all" if n is None or n >= n_train else str(n)


def linear_probe(features: dict[str, tuple[np.ndarray, np.ndarray]], train_y: np.ndarray, test_y: np.ndarray,
                 label_counts: Sequence[int | None], *, c: float = 1.0, max_iter: int = 200, seed: int = 0
                 ) -> dict[str, dict[str, float]]:
    """For each feature set name -> (train (N, F), test (M, F)) and each label count (None: all
    training examples): the probe's test accuracy, ``{name: {"100": acc, ..., "all": acc}}``.
    The same balanced subsets serve every feature set, so the rows differ only in features."""
    n_train = len(train_y)
    subsets = {label_count_name(n, n_train): balanced_subset(train_y, n or n_train, seed) for n in label_counts}
    table: dict[str, dict[str, float]] = {}
    jobs = [(name, key) for name in features for key in subsets]
    for name, key in progress(jobs, desc="linear probe", total=len(jobs), unit="fit"):
        tr, te = features[name]
        idx = subsets[key]
        table.setdefault(name, {})[key] = round(probe_accuracy(tr[idx], train_y[idx], te, test_y, c=c,
                                                               max_iter=max_iter, seed=seed), 4)
    return table

"""The linear probe on D's features and the latent vector arithmetic, on data and decoders
whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.arrays import load_split
from genlab.interpret.arithmetic import attribute_arithmetic, contrast_map, ink, slant
from genlab.interpret.discriminator import feature_taps, layer_features, randomly_initialised
from genlab.interpret.probe import balanced_subset, disc_features, linear_probe, pixel_features, probe_accuracy
from genlab.models import gan


# ----------------------------------------------------------------------------- probe


def test_balanced_subset_is_balanced_seeded_and_all_when_asked():
    y = np.repeat(np.arange(10), [30, 5, 30, 30, 30, 30, 30, 30, 30, 30])
    idx = balanced_subset(y, 100, seed=3)
    counts = np.bincount(y[idx], minlength=10)
    assert len(idx) == 100 and counts[1] == 5 and counts.max() - counts[counts != 5].min() <= 1
    assert np.array_equal(idx, balanced_subset(y, 100, seed=3))
    assert not np.array_equal(idx, balanced_subset(y, 100, seed=4))
    assert np.array_equal(balanced_subset(y, 10_000, seed=0), np.arange(len(y)))


@pytest.mark.parametrize("arch,size,channels", [("mnist28", 28, 1), ("dcgan64", 32, 3)])
def test_layer_features_are_every_layer_max_pooled(arch, size, channels):
    kw = {"d_width": 8} if arch == "mnist28" else {"ndf": 8, "ngf": 8}
    _, d = gan.build(gan.Config(arch=arch, image_size=size, channels=channels, **kw))
    d.eval()
    taps = feature_taps(d)
    layers = [m for m in d.features if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(taps) == len(layers) == (4 if arch == "mnist28" else 3)  # mnist28: d_layers 4 by default (3 convs + FC)
    x = torch.rand(4, channels, size, size) * 2 - 1
    outs = []
    hooks = [t.register_forward_hook(lambda _m, _i, o: outs.append(o.clone())) for t in taps]
    d(x)
    for h in hooks:
        h.remove()
    feats = layer_features(d, x, grid=4)
    # a map smaller than the grid (3x3 here) is pooled to its own size, not repeated; the fully connected 4th layer is taken whole
    expected = torch.cat([(F.adaptive_max_pool2d(o, min(4, o.shape[-1])) if o.dim() == 4 else o).flatten(1) for o in outs], 1)
    torch.testing.assert_close(feats, expected)


def test_randomly_initialised_is_seeded_and_leaves_the_original():
    _, d = gan.build(gan.Config(d_width=8))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(1.0)  # "trained"
    before = {k: v.clone() for k, v in d.state_dict().items()}
    r1, r2, r3 = randomly_initialised(d, 0), randomly_initialised(d, 0), randomly_initialised(d, 1)
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    s1, s2, s3 = r1.state_dict(), r2.state_dict(), r3.state_dict()
    w = next(k for k in s1 if k.endswith("weight") and s1[k].dim() == 4)
    assert torch.equal(s1[w], s2[w]) and not torch.equal(s1[w], s3[w])
    assert abs(float(s1[w].std()) - 0.02) < 0.005 and not torch.equal(s1[w], before[w])


def test_probe_beats_chance_on_digits_and_falls_to_chance_on_shuffled_labels(digits_dir):
    x_tr, y_tr = load_split(digits_dir, "train")
    x_te, y_te = load_split(digits_dir, "test")
    _, d = gan.build(gan.Config(d_width=8))
    feats = {"random_D": (disc_features(d, x_tr), disc_features(d, x_te)),
             "pixels": (pixel_features(x_tr), pixel_features(x_te))}
    table = linear_probe(feats, y_tr, y_te, [100, None], max_iter=100)
    assert set(table) == {"random_D", "pixels"} and set(table["pixels"]) == {"100", "all"}
    for row in table.values():
        assert row["all"] > 0.6 and row["100"] > 0.3  # 10 classes: chance is 0.1
    shuffled = np.random.default_rng(0).permutation(y_tr)
    acc = probe_accuracy(feats["pixels"][0], shuffled, feats["pixels"][1], y_te, max_iter=100)
    assert acc < 0.2


# ----------------------------------------------------------------------------- attributes


def bar(width: int, shear: float, size: int = 28, value: float = 1.0) -> np.ndarray:
    """A vertical bar (1, size, size) of `width` px, sheared: x shifts by `shear` px per px up."""
    img = np.zeros((1, size, size), np.float32)
    for r in range(4, size - 4):
        c = size / 2 + shear * ((size - 1 - r) - size / 2)
        lo = int(round(c - width / 2))
        img[0, r, max(lo, 0):max(lo + width, 0)] = value
    return img


def test_ink_and_slant_measure_thickness_and_lean():
    thin, thick = bar(2, 0.0), bar(6, 0.0)
    right, left = bar(3, 0.4), bar(3, -0.4)
    imgs = np.stack([thin, thick, right, left])
    i, s = ink(imgs), slant(imgs)
    assert i[1] > 2.5 * i[0]
    assert abs(s[0]) < 0.05 and s[2] > 0.3 and s[3] < -0.3
    # the same bar in colour on a bright coloured background measures the same lean
    bg = np.array([0.9, 0.8, 0.2], np.float32)[:, None, None]
    rgb = np.where(right > 0, np.array([0.1, 0.1, 0.6], np.float32)[:, None, None], bg)[None]
    assert abs(slant(rgb)[0] - s[2]) < 0.05
    assert contrast_map(rgb).max() > 0.5 and ink(np.zeros((1, 1, 8, 8), np.float32))[0] == 0


class BarDecoder:
    """z (B, 3) -> a bar whose width follows z[0] and whose lean follows z[1]; the judge reads
    the class from the bar's brightness, set by z[2] (class 1: bright)."""

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        out = []
        for v in z.numpy():
            width = int(np.clip(round(4 + 2 * v[0]), 1, 9))
            out.append(bar(width, float(np.clip(0.25 * v[1], -0.5, 0.5)), value=0.9 if v[2] > 0 else 0.6))
        return torch.from_numpy(np.stack(out))


def judge_brightness(images: np.ndarray) -> np.ndarray:
    return (images.max(axis=(1, 2, 3)) > 0.75).astype(np.int64)


def test_vector_arithmetic_moves_the_attribute_it_should_and_only_that():
    dec = BarDecoder()
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((400, 3)).astype(np.float32))
    classes = judge_brightness(dec(z).numpy())
    kw = dict(target_class=1, class_names=["dim", "bright"], quantile=0.2, n_show=6, seed=0)
    res = attribute_arithmetic(dec, judge_brightness, z, classes, attribute="ink", **kw)
    m = res.metrics
    assert m["ink/after"] > m["ink/before"] and m["ink/increased"] > 0.9
    assert 0.6 < m["ink/transfer"] < 1.4  # the decoder is about linear in z[0]: most of the gap moves
    assert m["ink/class_kept"] > 0.9  # the direction does not touch z[2]
    assert list(res.rows) == ["A: thick", "B: thin", "C: thin, class bright", "A - B + C", "C + (A - B)"]
    assert all(r.shape[1:] == (1, 28, 28) for r in res.rows.values())
    # slant's direction moves slant, and hardly the ink
    s = attribute_arithmetic(dec, judge_brightness, z, classes, attribute="slant", **kw).metrics
    assert s["slant/transfer"] > 0.5
    # an attribute the decoder ignores cannot be transferred: a decoder blind to z[1]
    blind = lambda zz: dec(torch.cat([zz[:, :1], torch.zeros_like(zz[:, 1:2]), zz[:, 2:]], 1))  # noqa: E731
    s0 = attribute_arithmetic(blind, judge_brightness, z, classes, attribute="slant", **kw).metrics
    assert abs(s0["slant/after"] - s0["slant/before"]) < 0.02


def test_arithmetic_names_a_missing_class():
    dec = BarDecoder()
    z = torch.zeros(30, 3) - 1  # every bar dim: class 0 only
    with pytest.raises(ValueError, match="no sample of class 'bright'"):
        attribute_arithmetic(dec, judge_brightness, z, np.zeros(30, np.int64), attribute="ink", target_class=1,
                             class_names=["dim", "bright"])

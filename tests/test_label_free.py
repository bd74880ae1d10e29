"""Label-free judges: two-sample test, precision/recall, memorisation, Inception FID/KID loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.data.synthetic_digits import render_digits
from genlab.evaluate import label_free as lf
from genlab.evaluate.label_free import LabelFreeParams, judge_label_free

CFG = LabelFreeParams(c2st_n=400, c2st_epochs=4, pr_n=300, mem_n=200, inception="off")


@pytest.fixture(scope="module")
def digits():
    """1,300 synthetic digits: 700 "train", two "held-out" halves of 300."""
    images, _ = render_digits(1300, np.random.default_rng(7))
    return {"train": images[:700], "a": images[700:1000], "b": images[1000:]}


def test_two_sample_test_real_halves_vs_noise(digits):
    same, n_test = lf.two_sample_accuracy(digits["b"], digits["a"], seed=0, device="cpu", cfg=CFG)
    assert n_test == 300 and abs(same - 0.5) < 0.1  # two halves of one real set: indistinguishable
    noise = np.random.default_rng(0).integers(0, 256, digits["b"].shape, dtype=np.uint8)
    apart, _ = lf.two_sample_accuracy(noise, digits["a"], seed=0, device="cpu", cfg=CFG)
    assert apart > 0.95


def test_precision_recall_fall_for_collapse_and_noise(digits):
    def pr(samples):
        out = judge_label_free(samples, digits["train"], digits["a"], seed=0, device="cpu", cfg=CFG)
        return out["precision"], out["recall"]

    p_real, r_real = pr(digits["b"])
    assert p_real > 0.6 and r_real > 0.6
    p_one, r_one = pr(np.repeat(digits["b"][:1], 300, 0))  # mode collapse onto one real image
    assert r_one < 0.1 and r_one < r_real - 0.5
    p_noise, _ = pr(np.random.default_rng(1).integers(0, 256, digits["b"].shape, dtype=np.uint8))
    assert p_noise < 0.1


def test_memorisation_flags_copies_of_training_images(digits):
    fresh = judge_label_free(digits["b"], digits["train"], digits["a"], seed=0, device="cpu", cfg=CFG)
    copies = judge_label_free(digits["train"][:300], digits["train"], digits["a"], seed=0, device="cpu", cfg=CFG)
    assert fresh["memorisation"] < 0.2 and 0.7 < fresh["memorisation_ratio"] < 1.4
    assert copies["memorisation"] > 0.95 and copies["memorisation_ratio"] < 0.05
    # half copies, half new images: about half flagged
    mixed = np.concatenate([digits["train"][:150], digits["b"][:150]])
    half = judge_label_free(mixed, digits["train"], digits["a"], seed=0, device="cpu", cfg=CFG)
    assert 0.35 < half["memorisation"] < 0.7


def test_seeded_and_deterministic(digits):
    a = judge_label_free(digits["b"], digits["train"], digits["a"], seed=3, device="cpu", cfg=CFG)
    lf._CACHE.clear()
    b = judge_label_free(digits["b"], digits["train"], digits["a"], seed=3, device="cpu", cfg=CFG)
    assert a == b
    assert set(a) == {"c2st_acc", "precision", "recall", "memorisation", "memorisation_ratio"}


def test_rgb_photo_sized_images_and_shape_mismatch():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 3, 64, 64), dtype=np.uint8)
    imgs = np.clip(base.astype(int) + rng.integers(-30, 30, (120, 3, 64, 64)), 0, 255).astype(np.uint8)
    out = judge_label_free(imgs[:40], imgs[40:80], imgs[80:], seed=0, device="cpu",
                           cfg=LabelFreeParams(c2st_n=40, c2st_epochs=1, pr_n=40, mem_n=40, inception="off"))
    assert all(math.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match="real_train: images are"):
        judge_label_free(imgs[:40], imgs[40:80, :1], imgs[80:], seed=0, device="cpu", cfg=CFG)


# ---------------------------------------------------------------- Inception: the real loading path


def _write_random_inception(torch_home) -> None:
    """torch-fidelity's FeatureExtractorInceptionV3, randomly initialised (He init, so features
    neither vanish nor explode), saved as a state_dict under the file name the hub cache uses."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # the constructor loads {}
            return super().load_state_dict(state_dict, strict=False)

    empty = torch_home / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = torch_home / "hub" / "checkpoints" / lf.INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)


def test_inception_missing_weights_one_line_and_the_rest_goes_on(tmp_path, monkeypatch, capsys, digits):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    lf._SAID.clear()
    cfg = CFG.model_copy(update={"inception": "on"})
    out = judge_label_free(digits["b"], digits["train"], digits["a"], seed=0, device="cpu", cfg=cfg)
    assert "c2st_acc" in out and "inception_fid" not in out
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "Inception" in ln]
    expected = tmp_path / "hub" / "checkpoints" / lf.INCEPTION_FILE
    assert len(lines) == 1 and str(expected) in lines[0] and lf.INCEPTION_URL in lines[0]
    assert lf.inception_plan(CFG, "cpu")[1].endswith("inception is off")


def test_inception_fid_kid_through_the_real_loading_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _write_random_inception(tmp_path)
    lf._SAID.clear()
    cfg = LabelFreeParams(inception="on", inception_n=6, kid_subset_size=4)
    weights, how = lf.inception_plan(cfg, "cpu")
    assert weights == tmp_path / "hub" / "checkpoints" / lf.INCEPTION_FILE and "pool3" in how
    assert lf.inception_plan(LabelFreeParams(), "cpu")[0] is None  # auto: not on CPU
    rng = np.random.default_rng(0)
    grey, _ = render_digits(12, rng)
    real, other = grey[:6], grey[6:]
    same = lf.inception_scores(real, real, weights, seed=0, device="cpu", cfg=cfg)
    diff = lf.inception_scores(255 - other, real, weights, seed=0, device="cpu", cfg=cfg)
    assert all(math.isfinite(v) for v in (*same.values(), *diff.values()))
    assert diff["inception_fid"] > 0 and diff["inception_kid"] > 0
    assert abs(same["inception_fid"]) < 1e-6 * diff["inception_fid"]
    # KID is an unbiased estimate over random subsets: about 0 for one set against itself, not exactly
    assert abs(same["inception_kid"]) < 0.2 * diff["inception_kid"]
    assert "not the published weights" in capsys.readouterr().err  # a random file is not the real one
    # grey images go in as the same plane in R, G and B
    net = lf.InceptionFeatures(weights)
    with torch.no_grad():
        g = net(torch.from_numpy(grey[:2]))
        rgb = net(torch.from_numpy(np.repeat(grey[:2], 3, axis=1)))
    assert g.shape == (2, 2048) and torch.equal(g, rgb)

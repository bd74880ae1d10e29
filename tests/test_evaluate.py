"""Classifier-based evaluation: metric units, sanity checks on real data, figures, `genlab evaluate`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.cli import main as genlab_main
from genlab.data.idx import read_idx_split
from genlab.evaluate import evaluate_images, predict
from genlab.evaluate.figures import plot_class_histogram, plot_confusion, plot_labelled_samples
from genlab.evaluate.metrics import (
    ClassifierFeatures,
    classifier_outputs,
    frechet_distance,
    inception_score,
    kernel_distance,
    kl_to_uniform,
)
from genlab.models.classifier import Classifier
from genlab.models.classifier import Config as ClassifierConfig
from genlab.models.classifier import save as save_classifier
from genlab.train.classifier import ClassifierParams, train_classifier

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Fashion-MNIST slices and a tiny classifier trained on them once for this module."""
    if not FASHION.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    x_tr, y_tr = read_idx_split(FASHION, "train")
    x_te, y_te = read_idx_split(FASHION, "test")
    x_tr, y_tr, x_te, y_te = x_tr[:3000], y_tr[:3000], x_te[:1000], y_te[:1000]
    params = ClassifierParams(channels=[16, 32], hidden=64, epochs=3, batch_size=64)
    res = train_classifier(params, x_tr, y_tr, x_te, y_te, seed=0)
    assert res.metrics["classifier/test_acc"] > 0.75
    path = save_classifier(tmp_path_factory.mktemp("clf") / "checkpoint.pt", res.model)
    return {"train": x_tr, "test": x_te, "test_labels": y_te, "path": path, "model": res.model}


# ---------------------------------------------------------------- metric units


def test_kl_to_uniform_units():
    assert kl_to_uniform(np.full(10, 7)) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_uniform(np.eye(10)[3] * 500) == pytest.approx(math.log(10))
    assert kl_to_uniform([5, 5, 0, 0]) == pytest.approx(math.log(2))


def test_inception_score_bounds():
    onehot = np.eye(10)[np.arange(1000) % 10]
    assert inception_score(onehot) == pytest.approx(10.0, rel=1e-6)  # confident and balanced
    assert inception_score(np.tile(np.eye(10)[2], (100, 1))) == pytest.approx(1.0, abs=1e-6)  # one class
    assert inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0, abs=1e-6)  # unsure


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_in_float64():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(800, 16))
    b = rng.normal(size=(600, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kernel_distance_is_seeded_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    m1, s1, n = kernel_distance(a, b, subset_size=200, subsets=20, seed=1)
    assert (m1, s1) == kernel_distance(a, b, subset_size=200, subsets=20, seed=1)[:2] and n == 200
    far, _, _ = kernel_distance(a, b + 2.0, subset_size=200, subsets=20, seed=1)
    assert abs(m1) < 0.05 * far
    assert kernel_distance(a[:50], b, subset_size=1000, subsets=2)[2] == 50  # capped at the smaller set


# ---------------------------------------------------------------- sanity on real data


@needs_fashion
def test_real_images_vs_noise_and_one_class(real):
    rng = np.random.default_rng(0)
    test_vs_train = evaluate_images(real["test"], real["path"], real["train"], kid_subset_size=500)
    noise = rng.integers(0, 256, size=real["test"].shape, dtype=np.uint8)
    noise_vs_train = evaluate_images(noise, real["path"], real["train"], kid_subset_size=500)

    # real test vs real train: FID near 0 relative to noise, classes balanced
    assert test_vs_train["fid"] < 0.05 * noise_vs_train["fid"]
    assert test_vs_train["kid_mean"] < 0.05 * noise_vs_train["kid_mean"]
    assert test_vs_train["kl_uniform"] < 0.05
    assert test_vs_train["inception_score"] > 5.0
    # uniform noise: large FID, low confidence
    assert noise_vs_train["confidence_mean"] < test_vs_train["confidence_mean"] - 0.2
    assert noise_vs_train["frac_confident"] < 0.5 * test_vs_train["frac_confident"]

    # one class only (trousers): KL to uniform ~ ln 10
    trousers = real["test"][real["test_labels"] == 1]
    one = evaluate_images(trousers, real["path"], real["train"], kid_subset_size=50)
    assert abs(one["kl_uniform"] - math.log(10)) < 0.35
    assert int(np.argmax(one["class_hist"])) == 1 and sum(one["class_hist"]) == len(trousers)
    assert one["inception_score"] < 1.6

    keys = {"confidence_mean", "frac_confident", "class_hist", "kl_uniform", "fid", "kid_mean", "kid_std",
            "inception_score", "n_images"}
    assert keys <= set(test_vs_train)
    json.dumps(test_vs_train)  # plain floats and lists
    assert test_vs_train["n_images"] == len(real["test"])


@needs_fashion
def test_evaluate_is_deterministic_and_accepts_labels(real):
    a = evaluate_images(real["test"][:300], real["path"], real["train"][:600], kid_subset_size=200, seed=3,
                        labels=real["test_labels"][:300])
    b = evaluate_images(real["test"][:300], real["path"], real["train"][:600], kid_subset_size=200, seed=3,
                        labels=real["test_labels"][:300])
    assert a == b
    # the in-memory model gives the numbers of its checkpoint
    c = evaluate_images(real["test"][:300], real["model"], real["train"][:600], kid_subset_size=200, seed=3)
    assert c["class_hist"] == a["class_hist"]
    for k in ("fid", "kid_mean", "confidence_mean", "inception_score"):
        assert c[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6)
    preds, conf = predict(real["test"][:300], real["path"])
    assert a["accuracy"] == pytest.approx(float((preds == real["test_labels"][:300]).mean()))
    assert preds.dtype == np.int64 and conf.shape == (300,) and ((conf > 0.1) & (conf <= 1)).all()


def test_precomputed_outputs_give_the_same_numbers_and_are_used(real):
    """The evaluate stage passes one classifier pass per row and one over the test split."""
    from genlab.evaluate.metrics import classifier_outputs

    images, ref = real["test"][:300], real["train"][:600]
    plain = evaluate_images(images, real["path"], ref, kid_subset_size=200, seed=3)
    outputs = classifier_outputs(images, real["model"])
    ref_feats = classifier_outputs(ref, real["model"])[0]
    shared = evaluate_images(images, real["model"], ref, kid_subset_size=200, seed=3, outputs=outputs,
                             reference_features=ref_feats)
    assert shared["class_hist"] == plain["class_hist"]
    for k in ("fid", "kid_mean", "confidence_mean", "frac_confident", "inception_score"):
        assert shared[k] == pytest.approx(plain[k], rel=1e-5, abs=1e-6)
    # what is passed is what is judged: the test split's own features as reference give another FID
    other = evaluate_images(images, real["model"], ref, kid_subset_size=200, seed=3, outputs=outputs,
                            reference_features=outputs[0])
    assert other["fid"] < plain["fid"] / 10


@needs_fashion
def test_torchmetrics_with_classifier_as_extractor_matches_one_pass_features(real):
    """FID from torchmetrics running the classifier itself equals FID from features computed once."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    model, a, b = real["model"], real["test"][:400], real["train"][:600]
    fid = FrechetInceptionDistance(feature=ClassifierFeatures(model), normalize=False)
    fid.update(torch.from_numpy(b), real=True)
    fid.update(torch.from_numpy(a), real=False)
    fa, fb = classifier_outputs(a, model)[0], classifier_outputs(b, model)[0]
    assert float(fid.compute()) == pytest.approx(frechet_distance(fa, fb), rel=1e-5)


# ---------------------------------------------------------------- figures


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_are_written(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, channels, 28, 28), dtype=np.uint8)
    preds, conf = rng.integers(0, 10, 12), rng.random(12)
    p1 = plot_labelled_samples(images, preds, conf, tmp_path / "s.png", n=30, title="t")  # n > N is fine
    p2 = plot_class_histogram(np.bincount(preds, minlength=10), [f"class {i}" for i in range(10)], tmp_path / "h.png")
    p3 = plot_confusion(np.eye(10, dtype=int) * 5 + 1, [str(i) for i in range(10)], tmp_path / "c.png")
    for p in (p1, p2, p3):
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """An untrained tiny classifier and image files good and bad (the errors need no training)."""
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_classifier(d / "checkpoint.pt", Classifier(ClassifierConfig(channels=[8, 16], hidden=16)))
    rng = np.random.default_rng(0)
    np.save(d / "good.npy", rng.integers(0, 256, (64, 1, 28, 28), dtype=np.uint8))
    np.save(d / "ref.npy", rng.integers(0, 256, (80, 1, 28, 28), dtype=np.uint8))
    np.savez(d / "good.npz", images=rng.integers(0, 256, (40, 1, 28, 28), dtype=np.uint8))
    np.save(d / "no_channel_axis.npy", rng.integers(0, 256, (64, 28, 28), dtype=np.uint8))
    np.save(d / "float.npy", rng.random((64, 1, 28, 28)).astype(np.float32))
    np.save(d / "rgb.npy", rng.integers(0, 256, (64, 3, 28, 28), dtype=np.uint8))
    np.save(d / "size32.npy", rng.integers(0, 256, (64, 1, 32, 32), dtype=np.uint8))
    (d / "garbage.npy").write_bytes(b"\x00garbage")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    return d


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = genlab_main(["evaluate", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    "images, extra, message",
    [
        ("no_channel_axis.npy", [], "expected shape (N, C, H, W), got (64, 28, 28)"),
        ("float.npy", [], "expected dtype uint8 (0..255), got float32"),
        ("rgb.npy", [], "has 3 channel(s), the model expects 1"),
        ("size32.npy", [], "images are 32x32 pixels, the classifier expects 28x28"),
        ("missing.npy", [], "images file not found"),
        ("garbage.npy", [], "not a readable .npy/.npz file"),
        ("good.npy", ["--classifier", "{d}/nope.pt"], "checkpoint not found"),
        ("good.npy", ["--classifier", "{d}/corrupt.pt"], "is corrupted or not a genlab checkpoint"),
        ("good.npy", ["--reference", "{d}/rgb.npy"], "rgb.npy: has 3 channel(s), the model expects 1"),
        ("good.npy", ["--kid-subsets", "0"], "--kid-subsets must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_clear_error(capsys, cli_files, images, extra, message):
    d = cli_files
    args = [str(d / images), "--classifier", str(d / "checkpoint.pt"), "--reference", str(d / "ref.npy")]
    args += [a.format(d=d) for a in extra]
    rc, out, err = _cli(capsys, *args)
    assert rc == 2
    assert out == ""
    assert err.startswith("genlab evaluate: error: ") and message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_cli_npz_in_process(capsys, cli_files):
    d = cli_files
    rc, out, err = _cli(capsys, str(d / "good.npz"), "--classifier", str(d / "checkpoint.pt"),
                        "--reference", str(d / "ref.npy"), "--kid-subsets", "5")
    assert rc == 0, err
    assert json.loads(out)["n_images"] == 40


def test_reference_cache_follows_the_checkpoint(tmp_path):
    """Reference features are cached per checkpoint file: a retrained checkpoint is not stale."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 1, 28, 28), dtype=np.uint8)
    ref = rng.integers(0, 128, (60, 1, 28, 28), dtype=np.uint8)
    path = tmp_path / "checkpoint.pt"
    results = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = Classifier(ClassifierConfig(channels=[8], hidden=8))
        save_classifier(path, model)
        os.utime(path, ns=(seed, seed))  # same size, new mtime (as after retraining)
        results.append(evaluate_images(images, path, ref, kid_subsets=2))
        assert results[-1]["fid"] == pytest.approx(evaluate_images(images, model, ref, kid_subsets=2)["fid"], rel=1e-5)
    assert results[0]["fid"] != results[1]["fid"]


def test_cli_entry_point_prints_json_and_writes_figures(cli_files, tmp_path):
    d = cli_files
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("genlab")), "evaluate", str(d / "good.npy"),
         "--classifier", str(d / "checkpoint.pt"), "--reference", str(d / "ref.npy"),
         "--kid-subsets", "10", "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "GENLAB_PROGRESS": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["n_images"] == 64 and sum(result["class_hist"]) == 64
    assert result["kid_subset_size"] == 64
    for name in ("class_histogram.png", "samples.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == result

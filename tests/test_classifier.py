"""The CNN classifier: shapes, augmentation, training (and its no-leak check), checkpoints, stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_stage, tiny_params
from genlab.checkpoint import CheckpointError, save_checkpoint
from genlab.data.idx import read_idx_split
from genlab.models.classifier import Classifier
from genlab.models.classifier import Config as ClassifierConfig
from genlab.models.classifier import load as load_classifier
from genlab.models.classifier import save as save_classifier
from genlab.train.classifier import ClassifierParams, noise_images, outlier_loss, random_affine, train_classifier

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")

TINY = dict(channels=[8, 16], hidden=32, epochs=2, batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def fashion():
    """2,000 train and 500 test Fashion-MNIST images (uint8 N,1,28,28)."""
    x_tr, y_tr = read_idx_split(FASHION, "train")
    x_te, y_te = read_idx_split(FASHION, "test")
    return x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_shapes_for_channels_and_sizes(channels, size):
    cfg = ClassifierConfig(in_channels=channels, image_size=size, channels=[8, 16], hidden=24)
    model = Classifier(cfg).eval()
    x = torch.rand(5, channels, size, size)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, 24)
    assert (model.in_channels, model.image_size, model.num_classes) == (channels, size, 10)
    assert model.class_names == [str(i) for i in range(10)]


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="pooling blocks"):
        ClassifierConfig(image_size=8, channels=[8, 8, 8, 8])
    with pytest.raises(ValueError, match="in_channels: must be 1 or 3"):
        ClassifierConfig(in_channels=2)
    with pytest.raises(ValueError, match="3 class names for 10 classes"):
        ClassifierConfig(class_names=["a", "b", "c"])


def test_random_affine_is_batched_seeded_and_identity_at_zero():
    x = torch.rand(16, 1, 28, 28)
    same = random_affine(x, 0.0, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    a = random_affine(x, 2.0, 10.0, torch.Generator().manual_seed(1))
    b = random_affine(x, 2.0, 10.0, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert (a - x).abs().mean() > 0.05  # it moved things
    # a pure one-pixel shift of a centred blob keeps its mass and moves its centre by ~1 px
    blob = torch.zeros(1, 1, 28, 28)
    blob[..., 12:16, 12:16] = 1.0
    moved = random_affine(blob.expand(64, -1, -1, -1).contiguous(), 1.0, 0.0, torch.Generator().manual_seed(2))
    torch.testing.assert_close(moved.sum((1, 2, 3)), torch.full((64,), 16.0), atol=1e-3, rtol=0)
    cols = (moved.sum((1, 2)) * torch.arange(28.0)).sum(-1) / 16.0
    assert ((cols - 13.5).abs() <= 1.0 + 1e-4).all() and (cols - 13.5).abs().max() > 0.5


def test_outlier_exposure_pieces():
    x = noise_images(6, 3, 32, 32, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    # even rows: pixel noise (rough); odd rows: smooth blobs
    rough = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2, 3))
    assert (rough[0::2] > 3 * rough[1::2]).all()
    uniform, peaked = torch.zeros(4, 10), torch.eye(10)[:4] * 8
    assert outlier_loss(uniform).item() == pytest.approx(np.log(10), rel=1e-6)
    assert outlier_loss(peaked) > outlier_loss(uniform)


def test_params_validation():
    with pytest.raises(ValueError, match="positive conv widths"):
        ClassifierParams(channels=[8, 0])
    with pytest.raises(ValueError):
        ClassifierParams(optimizer="rmsprop")
    with pytest.raises(ValueError):
        ClassifierParams(lr=-1)


@needs_fashion
def test_training_learns_and_checkpoint_round_trips(fashion, tmp_path):
    x_tr, y_tr, x_te, y_te = fashion
    names = [f"c{i}" for i in range(10)]
    res = train_classifier(ClassifierParams(**TINY), x_tr, y_tr, x_te, y_te, class_names=names, seed=0)
    assert res.metrics["classifier/test_acc"] > 0.65  # chance is 0.10; ~0.75 here
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.confusion.sum() == len(x_te)
    assert np.trace(res.confusion) == round(res.metrics["classifier/test_acc"] * len(x_te))

    path = save_classifier(tmp_path / "ck.pt", res.model, epoch=2, history=res.history)
    loaded = load_classifier(path)
    assert not loaded.training and loaded.class_names == names
    x = torch.from_numpy(x_te[:64]).float() / 255
    res.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.model(x))
        torch.testing.assert_close(loaded.features(x), res.model.features(x))
    # the checkpoint is self-describing and opens with weights_only=True
    ck = torch.load(path, weights_only=True)
    assert ck["kind"] == "classifier" and ck["config"]["hidden"] == 32 and ck["epoch"] == 2


@needs_fashion
def test_shuffled_labels_give_chance_accuracy(fashion):
    """No leak between train and test: labels permuted at random cannot be learnt."""
    x_tr, y_tr, x_te, y_te = fashion
    shuffled = np.random.default_rng(0).permutation(y_tr)
    res = train_classifier(ClassifierParams(**TINY), x_tr, shuffled, x_te, y_te, seed=0)
    assert res.metrics["classifier/test_acc"] < 0.2


@needs_fashion
def test_same_seed_same_metrics_and_other_options_run(fashion):
    x_tr, y_tr, x_te, y_te = fashion
    p = ClassifierParams(**{**TINY, "epochs": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "cosine",
                            "augment": True, "label_smoothing": 0.1})
    a = train_classifier(p, x_tr[:600], y_tr[:600], x_te[:200], y_te[:200], seed=3)
    b = train_classifier(p, x_tr[:600], y_tr[:600], x_te[:200], y_te[:200], seed=3)
    assert a.metrics == b.metrics
    assert np.isfinite(a.metrics["classifier/test_loss"]) and a.metrics["classifier/test_acc"] > 0.2


def test_load_classifier_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_classifier(bad)
    other = save_checkpoint(tmp_path / "gan.pt", kind="gan", config={}, model={})
    with pytest.raises(CheckpointError, match="holds a 'gan' model"):
        load_classifier(other)
    model = Classifier(ClassifierConfig(channels=[8], hidden=16))
    good = save_classifier(tmp_path / "ck.pt", model)
    ck = torch.load(good, weights_only=True)
    ck["config"]["hidden"] = 17  # config no longer matches the weights
    torch.save(ck, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not hold a valid classifier"):
        load_classifier(tmp_path / "mismatch.pt")


def test_stage_end_to_end_on_tiny_params(stage_dir, digits_dir):
    shutil.copytree(digits_dir, stage_dir / "data" / "images")
    run_stage("train_classifier.py", stage_dir)

    metrics = json.loads((stage_dir / "metrics/classifier.json").read_text())
    assert {"classifier/test_acc", "classifier/test_loss", "classifier/train_acc"} <= set(metrics)
    assert metrics["classifier/test_acc"] > 0.3  # 600 synthetic digits, 2 tiny epochs; chance 0.10
    model = load_classifier(stage_dir / "models/classifier/checkpoint.pt")
    assert model.class_names == json.loads((digits_dir / "meta.json").read_text())["class_names"]
    for name, cols in (("loss", "epoch\ttrain_loss\ttest_loss"), ("accuracy", "epoch\ttrain_acc\ttest_acc")):
        lines = (stage_dir / f"plots/classifier/{name}.tsv").read_text().splitlines()
        assert lines[0] == cols and len(lines) == 1 + tiny_params()["classifier"]["epochs"]
    assert (stage_dir / "reports/classifier/confusion.png").stat().st_size > 1000

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name("genlab")
    runs = client.search_runs([exp.experiment_id], "tags.`genlab.stage` = 'train_classifier'")
    assert runs, "no MLflow run for the stage"
    run = runs[0]
    assert run.data.metrics["classifier/test_acc"] == pytest.approx(metrics["classifier/test_acc"])
    assert len(client.get_metric_history(run.info.run_id, "test_acc")) == tiny_params()["classifier"]["epochs"]


def test_stage_rejects_bad_params(stage_dir):
    params = tiny_params(classifier={"lr": -1})
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("train_classifier.py", stage_dir, check=False)
    assert proc.returncode == 2
    assert "classifier.lr: must be > 0" in proc.stderr

"""The RGB path end to end on CPU in a tiny configuration: synthetic-rgb at 64 px, a dcgan64
GAN (with and without BatchNorm), a judge and a VAE trained on it, then the interpret stage
script; and Grad-CAM on a discriminator trained to find the digits in synthetic-rgb images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import run_stage, tiny_params
from genlab.data.arrays import load_split
from genlab.data.images import PrepareImagesParams, prepare_images
from genlab.data.synthetic_rgb import _background, _draw_params, synthetic_rgb
from genlab.interpret.analysis import InterpretParams, stroke_mask
from genlab.interpret.saliency import grad_cam, heat_on_mask
from genlab.models import classifier as classifier_model
from genlab.models import gan as gan_model
from genlab.models import vae as vae_model
from genlab.train.classifier import ClassifierParams, train_classifier
from genlab.train.gan import GanParams, save_generator_checkpoint, train_gan
from genlab.train.vae import VaeData, VaeParams, train_vae

TINY_GAN = dict(arch="dcgan64", ngf=8, ndf=8, z_dim=16, epochs=1, batch_size=32, ema=0.0, n_samples=16,
                log_every=2, checkpoint_every=100)
TINY_INTERPRET = dict(n_images=2, heat_images=32, probe_labels=[50, None], probe_train=None, probe_test=None,
                      probe_max_iter=30, pool=64, batch_size=64)


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """A working folder with data/images (synthetic-rgb, 64 px), models/{gan,classifier,vae}."""
    root = tmp_path_factory.mktemp("rgb")
    data = root / "data" / "images"
    prepare_images(PrepareImagesParams(source="synthetic-rgb", image_size=64, channels=3, n_train=192, n_test=64),
                   data, seed=0)
    x_tr, y_tr = load_split(data, "train")
    x_te, y_te = load_split(data, "test")
    clf = train_classifier(ClassifierParams(channels=[4, 8], hidden=16, epochs=1, batch_size=64), x_tr, y_tr,
                           x_te, y_te, class_names=[str(d) for d in range(10)], seed=0)
    classifier_model.save(root / "models/classifier/checkpoint.pt", clf.model)
    gan = train_gan(GanParams(**TINY_GAN, batchnorm=True), x_tr, y_tr, seed=0)
    save_generator_checkpoint(gan, root / "models/gan/checkpoint.pt")
    vae = train_vae(VaeParams(arch="mlp", hidden=32, epochs=1, batch_size=64, z_dim=4, lr=1e-3, lr_schedule="constant"),
                    VaeData(x_tr, y_tr, x_te, y_te, 10), seed=0)
    vae_model.save(root / "models/vae/checkpoint.pt", vae.model)
    params = tiny_params(interpret=TINY_INTERPRET, prepare_images={"source": "synthetic-rgb", "image_size": 64,
                                                                    "channels": 3})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_dcgan64_without_batchnorm_trains_on_rgb(rgb_run):
    x_tr, y_tr = load_split(rgb_run / "data/images", "train")
    res = train_gan(GanParams(**TINY_GAN, batchnorm=False, limit=64), x_tr, y_tr, seed=0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in res.discriminator.modules())
    imgs = res.generator.sample(4, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (4, 3, 64, 64) and torch.isfinite(imgs).all()
    assert np.isfinite(res.metrics["gan/g_loss"])


def test_interpret_stage_on_the_rgb_run(rgb_run):
    from mlflow.tracking import MlflowClient

    run_stage("interpret.py", rgb_run)
    metrics = json.loads((rgb_run / "metrics/interpret.json").read_text())
    probe = metrics["probe"]
    assert set(probe) == {"trained_D", "random_D", "pixels"}
    for row in probe.values():
        assert set(row) == {"50", "all"} and all(0.0 <= v <= 1.0 for v in row.values())
    assert probe["pixels"]["all"] > 0.1  # a linear readout of the pixels learns something even here
    sal = metrics["saliency"]
    assert 0 <= sal["p_real_real"] <= 1 and 0 < sal["stroke_area"] < 1
    assert 0 <= sal["gradcam_real_heat_on_strokes"] <= 1
    for model in ("gan", "vae"):
        block = metrics["arithmetic"][model]
        assert {"ink/before", "ink/after", "ink/transfer", "slant/before", "slant/class_kept"} <= set(block)
    reports = rgb_run / "reports/interpret"
    for name in ("saliency_real.png", "saliency_generated.png", "arithmetic_gan.png", "arithmetic_vae.png",
                 "probe.md"):
        assert (reports / name).stat().st_size > 100, name
    assert "| trained_D |" in (reports / "probe.md").read_text()
    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`genlab.stage` = 'interpret'")
    assert runs and "interpret/probe/pixels/all" in runs[0].data.metrics


def test_interpret_params_refuse_an_unknown_attribute():
    from genlab.params import ParamsError, validate_section

    with pytest.raises(ParamsError) as err:
        validate_section({"attributes": ["ink", "curliness"]}, "interpret", InterpretParams)
    assert str(err.value) == ("params.yaml: interpret.attributes: unknown attribute curliness; allowed: ink, slant, "
                              "got ['ink', 'curliness']")
    assert validate_section({}, "interpret", InterpretParams).probe_labels == [100, 1000, None]


def test_grad_cam_of_a_digit_detector_lights_the_digit():
    """D (dcgan64 at 32 px) trained to tell synthetic-rgb images from the same backgrounds
    without their digits: Grad-CAM's "real" heat on its first convolution (16x16, fine enough
    to resolve strokes) sits on the strokes far more than their share of the image. (On the
    last, 4x4 convolution the heat is too coarse to resolve strokes; the stage reports it.)"""
    torch.manual_seed(0)
    n, size = 384, 32
    x, _ = synthetic_rgb(n, 1, seed=3, size=size)["train"]
    # the same scenes' backgrounds alone: the params of the train split, drawn as synthetic_rgb does
    ss = np.random.SeedSequence([3, 0x5EB6]).spawn(2)[0]
    p = _draw_params(np.random.default_rng(ss.spawn(2)[1]), n)
    bg = _background(p, slice(0, n), size).numpy()
    real = torch.from_numpy(x).float() / 127.5 - 1
    empty = torch.from_numpy(bg).float() * 2 - 1
    _, d = gan_model.build(gan_model.Config(arch="dcgan64", image_size=size, channels=3, ndf=8, batchnorm=False))
    opt = torch.optim.Adam(d.parameters(), 2e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, n, (32,), generator=gen)
        out = d(torch.cat([real[idx], empty[idx]]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.cat([torch.ones(32), torch.zeros(32)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.eval()
    with torch.no_grad():
        acc = ((d(real[:128]) > 0).float().mean() + (d(empty[:128]) <= 0).float().mean()) / 2
    assert acc > 0.7  # it learned to find digits
    first_conv = next(m for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    heat = grad_cam(d, real[:128], "real", layer=first_conv).numpy()
    mask = stroke_mask(x[:128].astype(np.float32) / 255)
    share, area = heat_on_mask(heat, mask), float(mask.mean())
    assert share > 1.6 * area, (share, area)
    # an untrained D of the same shape has no reason to prefer strokes
    _, d0 = gan_model.build(gan_model.Config(arch="dcgan64", image_size=size, channels=3, ndf=8, batchnorm=False))
    first0 = next(m for m in d0.modules() if isinstance(m, torch.nn.Conv2d))
    share0 = heat_on_mask(grad_cam(d0.eval(), real[:128], "real", layer=first0).numpy(), mask)
    assert share > share0 + 0.1, (share, share0)

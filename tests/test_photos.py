"""The offline photo folder (crops of scikit-image's sample photographs) and the data-efficient
GAN training for small sets: DiffAugment, the budget in images seen, the batch clamp."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ROOT, run_stage, tiny_params
from PIL import Image

pytest.importorskip("skimage", reason="the photo folder needs scikit-image (pip install 'genlab[photos]')")

from genlab.cli import main as genlab_main  # noqa: E402
from genlab.data.images import PrepareImagesParams, load_source  # noqa: E402
from genlab.data.photo_folder import make_photo_folder, photo_crops  # noqa: E402
from genlab.train.diffaugment import OPS, diff_augment, parse_policy  # noqa: E402
from genlab.train.gan import GanParams, train_gan  # noqa: E402


def test_photo_folder_is_flat_rgb_deterministic_and_loads_as_one_class(tmp_path):
    out = make_photo_folder(tmp_path / "photos", n=24, size=32, seed=3)
    files = sorted(out.iterdir())
    assert len(files) == 24 and all(f.suffix == ".png" and f.is_file() for f in files)  # flat, no sub-folders
    img = np.asarray(Image.open(files[0]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    crops = photo_crops(24, 32, seed=3)
    assert np.array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), crops)
    assert not np.array_equal(photo_crops(24, 32, seed=4), crops)
    # photographs, not flat colour: colour channels differ and every crop has texture
    x = crops.astype(np.float32)
    assert np.abs(x[..., 0] - x[..., 2]).mean() > 10
    assert x.std(axis=(1, 2, 3)).min() > 5
    # the folder source reads it as an unlabelled (one-class) RGB set
    cfg = PrepareImagesParams(source=f"folder:{out}", image_size=32, channels=3)
    s = load_source(cfg, seed=0)
    assert s.train[0].shape[1:] == (3, 32, 32) and len(s.class_names) == 1
    assert len(s.train[0]) + len(s.test[0]) == 24


def test_photo_folder_cli(tmp_path, capsys):
    assert genlab_main(["photos", str(tmp_path / "p"), "--n", "5", "--size", "16", "--seed", "1"]) == 0
    assert len(list((tmp_path / "p").glob("*.png"))) == 5
    assert "5 images" in capsys.readouterr().out


# ----------------------------------------------------------------------------- DiffAugment


def _batch(b: int = 8, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(b, 3, size, size, generator=g) * 2 - 1)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_changes_images_and_passes_gradients(policy):
    x = _batch().requires_grad_(True)
    torch.manual_seed(0)
    y = diff_augment(x, policy)
    assert y.shape == x.shape
    per_image = (y - x).detach().abs().flatten(1).amax(1)
    assert (per_image > 0).float().mean() >= 0.75  # nearly every image changed (a zero shift can leave one as is)
    w = torch.randn_like(x)
    (y * w).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: G learns through it
    torch.manual_seed(0)
    assert torch.equal(diff_augment(x.detach(), policy), y.detach())  # a function of torch's RNG state


def test_diffaugment_ops_do_what_the_paper_says():
    x = _batch(64)
    torch.manual_seed(1)
    t = OPS["translation"][0](x)
    # translation: each image is its own copy shifted by an integer, zero-filled, at most 1/8 of the side
    for i in range(8):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(t[i], torch.roll(F.pad(x[i], (2, 2, 2, 2)), (dy, dx), (1, 2))[:, 2:-2, 2:-2])]
        assert found, i
    c = OPS["cutout"][0](x)
    zeroed = (c == 0).all(1).flatten(1).sum(1)  # (B,) pixels zeroed in all channels
    assert zeroed.max() == 8 * 8 and zeroed.min() > 0  # a half-side square, clipped at the borders
    kept = c != 0
    assert torch.equal(c[kept], x[kept])
    torch.manual_seed(2)
    col = diff_augment(x, "color")
    assert not torch.equal(col, x) and col.shape == x.shape


def test_empty_policy_is_identity_and_bad_policy_names_the_op():
    x = _batch()
    assert diff_augment(x, "") is x and parse_policy("") == ()
    state = torch.get_rng_state()
    diff_augment(x, "")
    assert torch.equal(state, torch.get_rng_state())  # draws nothing: the default run is unchanged
    with pytest.raises(ValueError, match="'colour'"):
        parse_policy("colour,cutout")
    with pytest.raises(Exception, match="gan.diffaugment|diffaugment"):
        GanParams(diffaugment="zoom")


# ----------------------------------------------------------------------------- small-set training

def _tiny(**kw) -> GanParams:
    return GanParams(**{"epochs": 1, "batch_size": 16, "z_dim": 8, "g_width": 8, "d_width": 8, "n_samples": 4,
                        "log_every": 1, "recal_samples": 64, **kw})


def _images(n: int, size: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 1, size, size), dtype=np.uint8)


def test_images_budget_sets_whole_epochs_and_batch_is_clamped_to_the_set():
    # 40 images, batch 16: 2 steps (32 images) per epoch; 100 images -> 4 epochs, 8 steps
    res = train_gan(_tiny(images=100, epochs=99), _images(40), seed=0)
    assert res.metrics["gan/steps"] == 8 and res.metrics["gan/epochs"] == 4
    assert len(res.grids) == 4
    # grids and recalibrations every 64 images: at 64 and 128 images seen (epochs 2 and 4, the last)
    res = train_gan(_tiny(images=100, sample_every_images=64), _images(40), seed=0)
    assert [e for e, _ in res.grids] == [2, 4]
    # batch 64 on 12 images: batches of 12, one step per epoch
    res = train_gan(_tiny(batch_size=64, images=30), _images(12), seed=0)
    assert res.metrics["gan/steps"] == 3 and res.extra["images_this_run"] == 36


def test_default_params_leave_the_budget_and_augmentation_off():
    gan = yaml.safe_load((ROOT / "params.yaml").read_text())["gan"]
    assert gan["images"] is None and gan["diffaugment"] == "" and gan["sample_every_images"] is None


def test_diffaugment_changes_training():
    a = train_gan(_tiny(), _images(32), seed=0).generator.state_dict()
    b = train_gan(_tiny(diffaugment="color,translation,cutout"), _images(32), seed=0).generator.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


RESUME = dict(epochs=2, limit=None, batch_size=32, log_every=1, checkpoint_every=4, sample_every=1,
              diffaugment="color,translation,cutout", arch="dcgan64", ngf=8, ndf=8, z_dim=8)


@pytest.mark.slow
def test_resume_with_diffaugment_is_bit_identical(tmp_path):
    """96 RGB images at 32 px / batch 32 = 3 steps per epoch, 6 in all; checkpoints at 3 (epoch end), 4.
    SIGKILL after step 5 -> the rerun resumes from step 4 and ends as the uninterrupted run."""
    def workdir(name):
        root = tmp_path / name
        (root / "data/images").mkdir(parents=True)
        params = tiny_params(gan=RESUME, tracking={"enabled": False}, device="cpu")
        params["gan"].pop("g_width", None), params["gan"].pop("d_width", None)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        imgs = photo_crops(96, 32, seed=0).transpose(0, 3, 1, 2)
        np.save(root / "data/images/train_images.npy", np.ascontiguousarray(imgs))
        np.save(root / "data/images/train_labels.npy", np.zeros(96, np.int64))
        (root / "data/images/meta.json").write_text(json.dumps({"source": "test", "has_labels": False}))
        return root

    env = {"OMP_NUM_THREADS": "1"}
    straight = workdir("straight")
    run_stage("train_gan.py", straight, env=env)
    killed = workdir("killed")
    proc = run_stage("train_gan.py", killed, env={**env, "GENLAB_STOP_AFTER_STEPS": "5"}, check=False)
    assert proc.returncode == -signal.SIGKILL
    proc = run_stage("train_gan.py", killed, env=env)
    assert "resuming" in proc.stderr and "step 4/6" in proc.stderr
    a, b = (torch.load(r / "models/gan/checkpoint.pt", weights_only=True) for r in (straight, killed))
    for net in ("generator", "discriminator"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert (straight / "plots/gan/losses.tsv").read_text() == (killed / "plots/gan/losses.tsv").read_text()

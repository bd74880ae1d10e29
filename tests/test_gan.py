"""DCGAN: architectures, losses, one D step, bad params, resume after a hard kill, load_generator."""

from __future__ import annotations

import copy
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, gpu, run_stage, tiny_params

from genlab.models.gan import Config as GanModelConfig
from genlab.models.gan import (
    Discriminator,
    Generator,
    discriminator_accuracy,
    discriminator_loss,
    generator_loss,
    load_generator,
)
from genlab.models.contract import ConfigError
from genlab.params import ParamsError, config_error
from genlab.train.gan import DATA_KEY_PATHS, GanParams


# ----------------------------------------------------------------------------- architectures

ARCH_CASES = [
    ("mnist28", 28, {}), ("mnist28", 32, {}),
    ("mnist28", 28, {"d_layout": "report", "d_layers": 4, "g_layers": 4, "d_dropout": 0.3, "init": "xavier"}),
    ("dcgan64", 32, {}), ("dcgan64", 64, {}), ("dcgan64", 64, {"batchnorm": False}),
]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch,size,extra", ARCH_CASES)
def test_shapes(arch, size, extra, channels):
    small = {"g_width": 8, "d_width": 8} if arch == "mnist28" else {"ngf": 8, "ndf": 8}
    cfg = GanModelConfig(arch=arch, channels=channels, image_size=size, z_dim=10, **small, **extra)
    g, d = Generator(cfg), Discriminator(cfg)
    z = g.sample_latent(4)
    assert z.shape == (4, 10)
    x = g(z)
    assert x.shape == (4, channels, size, size) and g.image_shape == (channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (4,)


def test_conditional_shapes():
    cfg = GanModelConfig(z_dim=8, num_classes=10, g_width=8, d_width=8)
    g, d = Generator(cfg), Discriminator(cfg)
    y = torch.tensor([0, 3, 9])
    x = g(g.sample_latent(3), y)
    assert x.shape == (3, 1, 28, 28) and d(x, y).shape == (3,)
    with pytest.raises(ValueError, match="labels"):
        g(g.sample_latent(3))


@pytest.mark.parametrize("arch,size", [("mnist28", 64), ("dcgan64", 28)])
def test_image_size_the_arch_cannot_make_names_the_key(arch, size):
    with pytest.raises(ConfigError, match=rf"image_size: arch {arch} makes .* got {size}") as err:
        GanModelConfig(arch=arch, image_size=size)
    # through the params layer, the key path is the params key that sets the image size
    assert str(config_error(err.value, "gan", DATA_KEY_PATHS)).startswith("params.yaml: prepare_images.image_size: ")


# ----------------------------------------------------------------------------- losses

LOG2 = math.log(2.0)


def test_bce_losses_by_hand():
    real, fake = torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.0, -math.log(3.0)])
    # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25
    lr, lf = discriminator_loss(real, fake, "bce")
    assert lr.item() == pytest.approx((LOG2 - math.log(0.75)) / 2)
    assert lf.item() == pytest.approx((LOG2 - math.log(0.75)) / 2)
    # one-sided smoothing: real target 0.9 -> -(0.9 ln p + 0.1 ln(1-p))
    lr_s, lf_s = discriminator_loss(real, fake, "nonsaturating", real_target=0.9)
    assert lr_s.item() == pytest.approx((LOG2 - 0.9 * math.log(0.75) - 0.1 * math.log(0.25)) / 2)
    assert lf_s.item() == pytest.approx(lf.item())
    # per-sample targets (label flipping): flip the second real target to 0
    lr_f, _ = discriminator_loss(real, fake, "bce", real_target=torch.tensor([1.0, 0.0]))
    assert lr_f.item() == pytest.approx((LOG2 - math.log(0.25)) / 2)
    # G: minimax log(1 - D) vs non-saturating -log D
    g_out = torch.tensor([0.0, math.log(3.0)])
    assert generator_loss(g_out, "bce").item() == pytest.approx((math.log(0.5) + math.log(0.25)) / 2)
    assert generator_loss(g_out, "nonsaturating").item() == pytest.approx((LOG2 - math.log(0.75)) / 2)


def test_lsgan_losses_by_hand():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    lr, lf = discriminator_loss(real, fake, "lsgan")
    assert lr.item() == pytest.approx(0.5 * (0 + 0.25) / 2)
    assert lf.item() == pytest.approx(0.5 * (0 + 1.0) / 2)
    assert generator_loss(fake, "lsgan").item() == pytest.approx(0.5 * (1.0 + 0) / 2)


def test_discriminator_accuracy():
    out = torch.tensor([-1.0, 0.2, 3.0, 0.7])
    assert discriminator_accuracy(out, "bce", real=True).item() == pytest.approx(0.75)
    assert discriminator_accuracy(out, "bce", real=False).item() == pytest.approx(0.25)
    assert discriminator_accuracy(out, "lsgan", real=True).item() == pytest.approx(0.5)


@pytest.mark.parametrize("loss", ["nonsaturating", "lsgan"])
def test_one_d_step_reduces_d_loss_on_an_easy_batch(loss):
    torch.manual_seed(0)
    cfg = GanModelConfig(z_dim=8, g_width=8, d_width=8)
    d = Discriminator(cfg)
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.ones(32, 1, 28, 28) * 0.8 + 0.05 * torch.randn(32, 1, 28, 28)
    fake = -torch.ones(32, 1, 28, 28) * 0.8 + 0.05 * torch.randn(32, 1, 28, 28)

    def total():
        return sum(discriminator_loss(d(real), d(fake), loss))

    before = total()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = total()
    assert after.item() < before.item() - 1e-3


# ----------------------------------------------------------------------------- the stage


def _digits_like(n: int = 192, size: int = 28, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blobs at 10 class-dependent positions: structured enough to train on, fast to make."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int64)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = 6 + (labels % 5) * (size - 12) / 4, 8 + (labels // 5) * (size - 16)
    img = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) / 18.0)
    img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
    images = np.repeat((img * 255).astype(np.uint8)[:, None], channels, axis=1)
    return images, labels


def _write_data(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    d = root / "data" / "images"
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "train_images.npy", images)
    np.save(d / "train_labels.npy", labels)
    (d / "meta.json").write_text(json.dumps({"source": "test"}))


def _gan_dir(tmp_path: Path, name: str, data_size: int = 28, **gan) -> Path:
    root = tmp_path / name
    root.mkdir()
    params = tiny_params(gan=gan, tracking={"enabled": False}, device="cpu")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    _write_data(root, *_digits_like(size=data_size))
    return root


@pytest.mark.parametrize("override,key", [({"z_dim": 0}, "gan.z_dim"), ({"d_dropout": 1.5}, "gan.d_dropout"),
                                          ({"loss": "wgan"}, "gan.loss"), ({"lr": -1}, "gan.lr")])
def test_bad_params_fail_naming_the_key(tmp_path, override, key):
    root = _gan_dir(tmp_path, "bad", **override)
    proc = _stage(root, check=False)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr


def test_image_size_error_through_the_stage(tmp_path):
    root = _gan_dir(tmp_path, "size", data_size=64)  # mnist28 (the default) cannot make 64 px
    proc = _stage(root, check=False)
    assert proc.returncode == 2
    assert "prepare_images.image_size: arch mnist28 makes 28 or 32 px images, got 64" in proc.stderr
    assert "Traceback" not in proc.stderr


RESUME_PARAMS = dict(epochs=2, limit=None, batch_size=32, log_every=1, checkpoint_every=4, sample_every=1,
                     video_every=64)


def _stage(root: Path, env: dict | None = None, check: bool = True):
    """The stage in a subprocess, one BLAS/OpenMP thread (much faster on a shared 2-core box)."""
    return run_stage("train_gan.py", root, env={"OMP_NUM_THREADS": "1", **(env or {})}, check=check)


def _states(root: Path) -> dict[str, torch.Tensor]:
    ck = torch.load(root / "models/gan/checkpoint.pt", weights_only=True)
    return {**{f"g.{k}": v for k, v in ck["generator"].items()}, **{f"d.{k}": v for k, v in ck["discriminator"].items()}}


def test_resume_after_kill_is_bit_identical(tmp_path):
    """192 images / batch 32 = 6 steps per epoch, checkpoints at steps 4, 6 (epoch end), 8, ...
    SIGKILL after step 9 (mid epoch 2) -> the rerun resumes from step 8 and must end with the
    same weights, losses and grids as a run that was never interrupted."""
    straight = _gan_dir(tmp_path, "straight", **RESUME_PARAMS)
    _stage(straight)
    killed = _gan_dir(tmp_path, "killed", **RESUME_PARAMS)
    proc = _stage(killed, env={"GENLAB_STOP_AFTER_STEPS": "9"}, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "models/gan/checkpoint.pt").exists()
    state = torch.load(killed / ".genlab/resume/train_gan.pt", weights_only=True)
    assert state["step"] == 8 and state["epoch"] == 1 and state["step_in_epoch"] == 2 and not state["finished"]
    (killed / "reports/gan/epoch_001.png").unlink()  # DVC deletes outs before re-running a stage

    proc = _stage(killed)
    assert "resuming" in proc.stderr and "step 8/12" in proc.stderr
    a, b = _states(straight), _states(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert (straight / "plots/gan/losses.tsv").read_text() == (killed / "plots/gan/losses.tsv").read_text()
    ma, mb = (json.loads((r / "metrics/gan.json").read_text()) for r in (straight, killed))
    for k in ("gan/img_per_s", "gan/train_seconds"):
        ma.pop(k), mb.pop(k)
    assert ma == mb
    for name in ("epoch_001.png", "epoch_002.png", "progress.gif"):
        assert (straight / "reports/gan" / name).read_bytes() == (killed / "reports/gan" / name).read_bytes()
    frames_a, frames_b = (_read_mp4(r / "reports/gan/progress.mp4")[0] for r in (straight, killed))
    assert len(frames_a) == 6 and np.array_equal(frames_a, frames_b)  # frames before the kill came back from the resume state


@pytest.mark.slow
def test_finished_or_other_params_checkpoint_starts_fresh(tmp_path):
    root = _gan_dir(tmp_path, "fresh", **RESUME_PARAMS)
    _stage(root)
    first = _states(root)
    proc = _stage(root)  # a finished run is restored, not trained again, and writes the same weights
    assert "holds this finished run; restored without training" in proc.stderr
    again = _states(root)
    assert all(torch.equal(first[k], again[k]) for k in first)
    params = yaml.safe_load((root / "params.yaml").read_text())
    old_lr, params["gan"]["lr"] = params["gan"]["lr"], 1e-4
    assert old_lr != 1e-4
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(root, env={"GENLAB_STOP_AFTER_STEPS": "5"}, check=False)
    assert proc.returncode == -signal.SIGKILL and f"under other settings (gan.lr: {old_lr!r} -> 0.0001)" in proc.stderr
    proc = _stage(root)
    assert "resuming" in proc.stderr and "step 4/12" in proc.stderr


def test_outputs_and_load_generator(tmp_path):
    root = _gan_dir(tmp_path, "out", epochs=2, limit=None, log_every=2, sample_every=1, video_every=64)
    _stage(root)
    metrics = json.loads((root / "metrics/gan.json").read_text())
    assert {"gan/d_loss_real", "gan/d_loss_fake", "gan/g_loss", "gan/d_acc_real", "gan/d_acc_fake",
            "gan/img_per_s"} <= metrics.keys()
    assert metrics["gan/img_per_s"] > 0 and metrics["gan/steps"] == 12
    header, *rows = (root / "plots/gan/losses.tsv").read_text().splitlines()
    assert header.split("\t") == ["step", "epoch", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake"]
    assert [int(r.split("\t")[0]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert {p.name for p in (root / "reports/gan").iterdir()} == {"epoch_001.png", "epoch_002.png", "progress.gif",
                                                                  "progress.mp4"}
    from PIL import Image

    with Image.open(root / "reports/gan/progress.gif") as gif:
        assert gif.n_frames == 2
        grid_size = gif.size  # the grids at scale 2: 16 samples of 28 px -> 4 x 30 + 2 = 122 px, doubled
    # the MP4: a frame every 64 images (2 steps of 32) of 12 steps, at the GIF's scale, G changing between frames
    frames, (w, h) = _read_mp4(root / "reports/gan/progress.mp4")
    assert len(frames) == 6 and (w, h) == grid_size == (244, 244) and frames.shape[1:] == (244, 244, 3)
    steps = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (steps > 0.5).all(), steps  # each frame differs from the one before it, as G trains

    gen = load_generator(root / "models/gan/checkpoint.pt")
    assert not gen.training and gen.z_dim == 16 and gen.num_classes is None and gen.image_shape == (1, 28, 28)
    z = gen.sample_latent(5, generator=torch.Generator().manual_seed(0))
    x = gen.decode(z)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0
    assert torch.equal(x, gen.decode(gen.sample_latent(5, generator=torch.Generator().manual_seed(0))))


def _read_mp4(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an MP4 with the ffmpeg that imageio-ffmpeg ships: (T, H, W, 3) uint8 frames and (W, H)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
    return frames, (w, h)


def test_video_frames_show_g_as_it_trains_and_leave_it_unchanged():
    """A fresh dcgan64 G in eval mode draws flat grey (its running BatchNorm statistics are the
    initial ones); the video's frames use the fixed batch's own statistics, as G's training steps
    do, and put every buffer back."""
    from genlab.models import gan as gan_model
    from genlab.train.gan import sample_grid, sample_grid_as_trained

    torch.manual_seed(0)
    g, _ = gan_model.build(GanModelConfig(arch="dcgan64", channels=3, image_size=64, z_dim=8, ngf=8, ndf=8))
    g.train()
    z = torch.randn(4, 8)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    frame = sample_grid_as_trained(g, z, None)
    assert g.training and all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    assert np.array_equal(frame, sample_grid_as_trained(g, z, None))
    assert frame.shape == (2 + 2 * 66, 2 + 2 * 66, 3)
    cell = (slice(2, 66), slice(2, 66))  # the first sample, without the grid's padding
    assert frame[cell].std() > 3 and sample_grid(g, z, None)[cell].std() < 0.5  # eval mode: flat grey


def _train_in_process(epochs: int, ema: float, on_epoch_end=None):
    from genlab.train.gan import train_gan

    images, labels = _digits_like(n=32)
    cfg = GanParams(epochs=epochs, batch_size=32, z_dim=8, g_width=8, d_width=8, n_samples=4, ema=ema)
    torch.manual_seed(0)
    return train_gan(cfg, images, labels, seed=0, on_epoch_end=on_epoch_end)


def test_ema_generator_is_the_warmed_up_moving_average_of_g():
    """One step per epoch. EMA consumes no randomness, so G's path is the same with or without it.
    After two steps the sampled weights must be d * G_1 + (1 - d) * G_2, with the warm-up
    d = min(decay, 2 / 11); the BatchNorm statistics are recalibrated; the last grid and the
    on_epoch_end hook see that generator, and a hook drawing random numbers changes nothing."""
    from genlab.train.gan import recalibrate_batchnorm, sample_grid

    g1 = _train_in_process(1, ema=0.0).generator.state_dict()
    g2 = _train_in_process(2, ema=0.0).generator.state_dict()
    seen = {}

    def hook(epoch, gen, trained):
        torch.randn(1000)  # must not shift the training RNG
        assert trained.training and not gen.training and trained is not gen
        seen[epoch] = {k: v.clone() for k, v in gen.state_dict().items()}
        seen[f"trained{epoch}"] = {k: v.clone() for k, v in trained.state_dict().items()}

    res = _train_in_process(2, ema=0.75, on_epoch_end=hook)
    avg = res.generator.state_dict()
    assert avg.keys() == g2.keys() and sorted(seen, key=str) == [1, 2, "trained1", "trained2"]
    assert all(torch.equal(seen["trained2"][k], g2[k]) for k in g2)
    d = 2 / 11
    params = {k for k, _ in res.generator.named_parameters()}
    assert any(not torch.equal(g1[k], g2[k]) for k in params)  # the step changed G
    for k in params:
        torch.testing.assert_close(avg[k], d * g1[k] + (1 - d) * g2[k], msg=k)
        assert torch.equal(seen[2][k], avg[k])
    torch.testing.assert_close(seen[1]["fc.0.weight"], g1["fc.0.weight"])  # the first update copies G
    # seed * 1_000_003 + epoch; 32 images: recal_count caps the 10240 prior samples at 1024
    expected = recalibrate_batchnorm(copy.deepcopy(res.generator), seed=2, n=1024)
    for k, v in expected.state_dict().items():
        assert torch.equal(avg[k], v), k
    assert not torch.equal(avg["fc.1.running_mean"], g2["fc.1.running_mean"])
    assert not res.generator.training
    last_grid = sample_grid(res.generator, torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), None)
    assert np.array_equal(res.grids[-1][1], last_grid)


def test_recalibrate_batchnorm_measures_the_statistics_of_prior_samples():
    from genlab.train.gan import recalibrate_batchnorm

    torch.manual_seed(0)
    gen = Generator(GanModelConfig(z_dim=8, g_width=8, num_classes=10))
    bn = gen.fc[1]
    bn.running_mean.fill_(5.0)
    before = torch.random.get_rng_state()
    assert recalibrate_batchnorm(gen, seed=3, n=2048, batch_size=512) is gen
    assert torch.equal(torch.random.get_rng_state(), before)
    assert not gen.training and bn.momentum == 0.1
    rng = torch.Generator().manual_seed(3)
    means, variances = [], []
    with torch.no_grad():
        for s in range(0, 2048, 512):
            z = torch.randn(512, 8, generator=rng)
            y = torch.nn.functional.one_hot(torch.arange(s, s + 512) % 10, 10).float()  # balanced labels
            h = gen.fc[0](torch.cat([z, y], 1))
            means.append(h.mean(0))
            variances.append(h.var(0, unbiased=True))
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack(variances).mean(0))


def test_amp_auto_picks_bf16_on_cuda_and_native_bf16_cpus_only(monkeypatch):
    import genlab.train.loop as tg

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(tg, "cpu_has_native_bf16", lambda: False)
    assert [tg.resolve_bf16(a, cpu) for a in ("auto", "bf16", "off")] == [False, True, False]
    assert [tg.resolve_bf16(a, cuda) for a in ("auto", "bf16", "off")] == [True, True, False]
    monkeypatch.setattr(tg, "cpu_has_native_bf16", lambda: True)
    assert [tg.resolve_bf16(a, cpu) for a in ("auto", "bf16", "off")] == [True, True, False]
    monkeypatch.setenv("GENLAB_FP32", "1")  # what a user without bf16 hardware sees, forced
    assert [tg.resolve_bf16(a, d) for a in ("auto", "bf16") for d in (cpu, cuda)] == [False] * 4


def test_bf16_run_reports_its_precision_and_stays_deterministic():
    from genlab.train.gan import train_gan

    images, labels = _digits_like(n=64)
    cfg = GanParams(epochs=1, batch_size=32, z_dim=8, g_width=8, d_width=8, n_samples=4, amp="bf16")
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train_gan(cfg, images, labels, seed=0))
    assert runs[0].metrics["gan/bf16"] == 1
    assert runs[0].history == runs[1].history
    a, b = (r.generator.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    fp32 = train_gan(cfg.model_copy(update={"amp": "off"}), images, labels, seed=0)
    assert fp32.metrics["gan/bf16"] == 0
    assert not torch.equal(fp32.generator.state_dict()["fc.0.weight"], a["fc.0.weight"])


def test_linear_schedule_decays_both_learning_rates_to_zero():
    """gan.schedule: linear holds the lr for the first half, then falls to 0 at the last step;
    it changes what is trained, and it is part of the resume key."""
    from genlab.train.gan import GanStep, linear_decay, resume_key, train_gan

    f = linear_decay(10, 0.5)
    assert [f(s) for s in (0, 4, 5, 6, 9, 10)] == [1.0, 1.0, 1.0, pytest.approx(0.8), pytest.approx(0.2), 0.0]
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 28, 28), dtype=np.uint8)
    base = dict(epochs=2, batch_size=16, g_width=8, d_width=8, z_dim=8, ema=0.0, n_samples=4, log_every=1)
    lrs: list[float] = []
    step = GanStep.step

    def spy(self, idx):  # the lr each optimiser step used
        lrs.append(self.opt_g.param_groups[0]["lr"])
        assert self.opt_d.param_groups[0]["lr"] == lrs[-1]
        return step(self, idx)

    GanStep.step = spy
    try:
        linear = train_gan(GanParams.model_validate({**base, "schedule": "linear", "lr": 1e-3}), images, seed=0)
    finally:
        GanStep.step = step
    assert lrs[:4] == [1e-3] * 4 and lrs[-1] == pytest.approx(1e-3 / 4) and all(a >= b for a, b in zip(lrs, lrs[1:]))
    constant = train_gan(GanParams.model_validate({**base, "lr": 1e-3}), images, seed=0)
    a, b = linear.generator.state_dict(), constant.generator.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert resume_key(GanParams.model_validate(base))["schedule"] == "constant"
    # the decay spans the whole run: extending it by epochs cannot resume; a constant lr can
    assert "epochs" in resume_key(GanParams.model_validate({**base, "schedule": "linear"}))
    assert "epochs" not in resume_key(GanParams.model_validate(base))


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_key_picks_the_optimizer_of_both_nets(name, cls):
    from genlab.train.gan import GanStep, resume_key, train_gan

    images = np.random.default_rng(0).integers(0, 256, (32, 1, 28, 28), dtype=np.uint8)
    base = dict(epochs=1, batch_size=16, g_width=8, d_width=8, z_dim=8, ema=0.0, n_samples=4, lr=1e-3)
    seen = []
    step = GanStep.step

    def spy(self, idx):
        seen.append((type(self.opt_g), type(self.opt_d), self.opt_g.defaults.get("momentum")))
        return step(self, idx)

    GanStep.step = spy
    try:
        other = train_gan(GanParams.model_validate({**base, "optimizer": name, "momentum": 0.9}), images, seed=0)
    finally:
        GanStep.step = step
    assert seen and all(s == (cls, cls, 0.9) for s in seen)
    adam = train_gan(GanParams.model_validate(base), images, seed=0)
    a, b = other.generator.state_dict(), adam.generator.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert resume_key(GanParams.model_validate({**base, "optimizer": name}))["optimizer"] == name


def test_params_defaults_validate():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = GanParams.model_validate(params["gan"])
    assert cfg.d_layout == "dcgan"  # the layout that learns on 28 px digits (DESIGN.md)


@pytest.mark.slow
def test_dvc_repro_resumes_a_killed_train_gan(tmp_path, monkeypatch):
    """kill -9 inside `dvc repro`; the next `dvc repro` keeps the persistent resume state
    (DVC deletes the other outs) and finishes from it; a third `dvc repro` is a no-op."""
    from conftest import dvc, make_pipeline_repo

    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(tracking={"enabled": False}, device="cpu"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GENLAB_STOP_AFTER_STEPS", "6")  # 256 / 32 = 8 steps, a checkpoint at 4
    assert dvc(repo, "repro", "train_gan", check=False).returncode != 0
    assert torch.load(repo / ".genlab/resume/train_gan.pt", weights_only=True)["step"] == 4
    monkeypatch.delenv("GENLAB_STOP_AFTER_STEPS")
    proc = dvc(repo, "repro", "train_gan")
    assert "resuming" in proc.stdout + proc.stderr
    assert (repo / "models/gan/checkpoint.pt").exists() and (repo / "reports/gan/progress.gif").exists()
    assert "didn't change" in dvc(repo, "repro", "train_gan").stdout


@gpu
def test_dcgan64_trains_on_cuda_in_bf16():
    from genlab.train.gan import train_gan

    images, labels = _digits_like(n=64, size=64, channels=3)
    cfg = GanParams(arch="dcgan64", ngf=8, ndf=8, batch_size=32, epochs=1, log_every=1, n_samples=4)
    res = train_gan(cfg, images, labels, device="cuda")
    assert res.generator.decode(res.generator.sample_latent(2)).shape == (2, 3, 64, 64)
    assert all(math.isfinite(v) for v in res.metrics.values())

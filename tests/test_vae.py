"""VAE: losses against hand numbers, shapes, training, NaN guard, resume, the stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_stage, tiny_params
from genlab.models.vae import VAE, bernoulli_nll, gaussian_kl, gaussian_nll, reparameterize
from genlab.models.vae import Config as VAEConfig
from genlab.models.vae import load as load_vae
from genlab.render.vae_figures import reconstruction_figure, write_figures
from genlab.train.vae import TrainingDiverged, VaeData, VaeParams, train_vae


def bars(n: int, seed: int, channels: int = 1, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """A tiny learnable image set: class c is a bright horizontal bar at row 2 + 2c, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int64)
    x = rng.integers(0, 40, (n, channels, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        x[i, :, 2 + 2 * c : 4 + 2 * c, 3:-3] = 230
    return x, labels


def tiny_data(n_train: int = 192, n_test: int = 64, **kw) -> VaeData:
    tx, ty = bars(n_train, 0, **kw)
    vx, vy = bars(n_test, 1, **kw)
    return VaeData(tx, ty, vx, vy, 10, "bars")


def write_data(root: Path, data: VaeData) -> None:
    d = root / "data" / "images"
    d.mkdir(parents=True)
    np.save(d / "train_images.npy", data.train_images)
    np.save(d / "train_labels.npy", data.train_labels)
    np.save(d / "test_images.npy", data.test_images)
    np.save(d / "test_labels.npy", data.test_labels)
    (d / "meta.json").write_text(json.dumps({"source": "bars", "class_names": [str(i) for i in range(10)]}))


def set_params(root: Path, **vae) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(vae=vae, tracking={"enabled": False})))


# ----------------------------------------------------------------------------- losses


def test_kl_matches_closed_form_hand_numbers():
    # KL(N(mu, s^2) || N(0, 1)) = 1/2 (mu^2 + s^2 - 1 - log s^2) per dimension:
    # (mu=1, s=1) -> 0.5; (mu=0, s=0.5) -> 0.5 (0.25 - 1 + log 4) = 0.3181472
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.log(torch.tensor([[1.0, 0.25], [1.0, 1.0]]))
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (2,)
    assert kl[0].item() == pytest.approx(0.5 + 0.5 * (0.25 - 1 + math.log(4)), abs=1e-6)
    assert kl[0].item() == pytest.approx(0.8181472, abs=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(kl, ref)


def test_reconstruction_losses_hand_numbers_and_saturation():
    x = torch.tensor([1.0, 0.0, 0.5]).view(1, 1, 1, 3)
    logits = torch.tensor([0.0, 0.0, 0.0]).view(1, 1, 1, 3)
    assert bernoulli_nll(logits, x).item() == pytest.approx(3 * math.log(2), abs=1e-6)
    # a saturated decoder that is confidently wrong gives a large but finite loss
    wrong = bernoulli_nll(torch.tensor([-200.0, 200.0, 0.0]).view(1, 1, 1, 3), x)
    assert torch.isfinite(wrong) and wrong.item() == pytest.approx(400 + math.log(2), rel=1e-6)
    # gaussian: 0.5 * sum((x - m)^2) / s^2 + D (log s + 0.5 log 2 pi)
    g = gaussian_nll(torch.full_like(x, 0.5), x, 0.5)
    assert g.item() == pytest.approx(0.5 * 0.5 / 0.25 + 3 * (math.log(0.5) + 0.5 * math.log(2 * math.pi)), abs=1e-5)


def test_reparameterisation_gradient_flows_to_mu_and_sigma():
    mu = torch.tensor([[0.3, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.2, -0.4]], requires_grad=True)
    eps = torch.tensor([[1.5, -0.7]])
    z = reparameterize(mu, logvar, eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    # dz/dlogvar = 0.5 * sigma * eps
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)
    # and through a model: the reconstruction term alone reaches the encoder's mu and sigma heads
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=16, z_dim=3))
    x = torch.rand(4, 1, 28, 28)
    logits, _, _ = model(x)
    bernoulli_nll(logits, x).sum().backward()
    assert model.mu_head.weight.grad.abs().sum() > 0
    assert model.logvar_head.weight.grad.abs().sum() > 0


def test_logvar_is_bounded_so_no_overflow():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=8, z_dim=2))
    with torch.no_grad():
        model.logvar_head.bias.fill_(1e6)
    out = model.loss(torch.rand(3, 1, 28, 28))
    assert torch.isfinite(out.loss)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_encoder_decoder_shapes(arch, conditional, shape):
    torch.manual_seed(0)
    width = {"hidden": 16} if arch == "mlp" else {"conv_channels": (8, 8, 16), "dense": 16}
    model = VAE(VAEConfig(arch=arch, image_shape=shape, z_dim=5, num_classes=10 if conditional else None, **width))
    assert model.z_dim == 5 and model.image_shape == shape
    assert model.num_classes == (10 if conditional else None)
    x = torch.rand(4, *shape)
    labels = torch.tensor([0, 3, 9, 1]) if conditional else None
    mu, logvar = model.encode(x, labels)
    assert mu.shape == logvar.shape == (4, 5)
    z = model.sample_latent(4, torch.Generator().manual_seed(1))
    assert z.shape == (4, 5)
    out = model.decode(z, labels)
    assert out.shape == (4, *shape) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    if conditional:
        with pytest.raises(ValueError, match="conditional"):
            model.decode(z)
        # the label changes the decoded image
        assert not torch.allclose(model.decode(z, torch.zeros(4, dtype=torch.long)), model.decode(z, labels))


def test_conv_64px_and_bad_sizes():
    model = VAE(VAEConfig(arch="conv", image_shape=(3, 64, 64), z_dim=2))
    assert model.decode(torch.zeros(2, 2)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="arch: conv needs square images"):
        VAEConfig(arch="conv", image_shape=(1, 30, 30))


# ----------------------------------------------------------------------------- training


def test_loss_decreases_over_a_few_steps():
    data = tiny_data()
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=64, z_dim=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(data.train_images[:64]).float() / 255
    losses = []
    for _ in range(30):
        out = model.loss(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_train_vae_conditional_conv_and_figures(tmp_path):
    data = tiny_data(n_train=96, n_test=40)
    params = VaeParams(arch="conv", conditional=True, epochs=1, batch_size=32, z_dim=2, lr=1e-3, lr_schedule="constant")
    drawn = []

    def draw(epoch, images, recon):  # the hook the stage wires to render.vae_figures
        drawn.append((epoch, tuple(images.shape), tuple(recon.shape), 0 <= float(images.min()) < float(images.max()) <= 1))
        return reconstruction_figure(images, recon, tmp_path / f"recon_epoch{epoch:03d}.png", f"epoch {epoch}")

    run = train_vae(params, data, seed=0, on_reconstruction=draw)
    assert drawn == [(1, (16, 1, 28, 28), (16, 1, 28, 28), True)]
    assert set(run.metrics) >= {"vae/test_loss", "vae/test_recon", "vae/test_kl"}
    assert run.metrics["vae/test_loss"] == pytest.approx(run.metrics["vae/test_recon"] + run.metrics["vae/test_kl"])
    figs = write_figures(run.model, data.test_images, data.test_labels, tmp_path, seed=0)
    names = {p.name for p in run.figures + figs}
    assert {"recon_epoch001.png", "samples.png", "manifold.png", "latent_scatter.png", "class_grid.png"} <= names


def test_gaussian_likelihood_trains_and_beta_weights_the_kl():
    data = tiny_data(n_train=64, n_test=32)
    run = train_vae(VaeParams(hidden=16, likelihood="gaussian", gaussian_std=0.2, epochs=2, batch_size=32, z_dim=2, lr=1e-3,
                                lr_schedule="constant"), data, seed=0)
    rows = run.history
    assert all(math.isfinite(r["test_loss"]) for r in rows) and rows[-1]["train_loss"] < rows[0]["train_loss"]
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=8))
    x = torch.rand(5, 1, 28, 28)
    eps = torch.randn(5, 2)
    plain, weighted = model.loss(x, beta=1.0, eps=eps), model.loss(x, beta=4.0, eps=eps)
    torch.testing.assert_close(weighted.loss - plain.loss, 3.0 * plain.kl.mean(), atol=1e-3, rtol=1e-4)  # loss ~ 500: float32 ulp


def test_lr_schedules_take_effect_and_key_the_resume_on_epochs(tmp_path):
    from genlab.checkpoint import load_checkpoint

    data = tiny_data(n_train=64, n_test=32)
    weights = {}
    for schedule in ("constant", "cosine", "onecycle"):
        resume = tmp_path / f"{schedule}.pt"
        params = VaeParams(hidden=16, epochs=4, batch_size=32, lr=3e-3, lr_schedule=schedule)
        weights[schedule] = train_vae(params, data, seed=0, resume_path=resume).model.state_dict()
        state = load_checkpoint(resume, "resume")
        if schedule == "constant":
            assert state["schedulers"] == {} and "epochs" not in state["key"]["vae"]
            continue
        sched = state["schedulers"]["sched"]
        if schedule == "cosine":  # 8 steps, T_max 8: the last step lands on lr / 10
            assert sched["T_max"] == 8 and sched["_last_lr"][0] == pytest.approx(3e-4)
        else:  # stepped once per optimizer step over the run's 8 steps, warming up from lr / 25
            assert sched["total_steps"] == 8 and sched["last_epoch"] == 8 and sched["base_lrs"][0] == pytest.approx(3e-3 / 25)
        assert state["key"]["vae"]["epochs"] == 4  # the schedule depends on the epochs: part of the resume key
    with pytest.raises(ValueError, match="onecycle needs at least 8 steps, this run has 4"):
        train_vae(VaeParams(hidden=16, epochs=2, batch_size=32, lr_schedule="onecycle"), data, seed=0)
    for a, b in (("constant", "cosine"), ("constant", "onecycle"), ("cosine", "onecycle")):
        assert any(not torch.equal(weights[a][k], weights[b][k]) for k in weights[a]), (a, b)


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
    resume = tmp_path / "resume.pt"
    data = tiny_data()
    train_vae(VaeParams(arch="mlp", hidden=16, epochs=1, batch_size=32, lr_schedule="constant"), data, seed=0,
              resume_path=resume)
    good = resume.read_bytes()
    bad = tiny_data()
    bad.train_images = bad.train_images.astype(np.float32)  # a float set can hold a NaN
    bad.train_images[:] = np.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 7 .*step 6\) is kept"):
        train_vae(VaeParams(arch="mlp", hidden=16, epochs=2, batch_size=32, lr_schedule="constant"), bad, seed=0,
                  resume_path=resume)
    assert resume.read_bytes() == good


def test_nan_guard_in_the_stage_names_epoch_and_step(tmp_path):
    write_data(tmp_path, tiny_data())
    set_params(tmp_path, lr=1e30)
    proc = run_stage("train_vae.py", tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "vae: training diverged" in proc.stderr and "epoch 1, step " in proc.stderr
    assert "no checkpoint had been written yet" in proc.stderr
    assert not (tmp_path / "models" / "vae" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"lr": -1}, "params.yaml: vae.lr: must be > 0, got -1"),
        ({"arch": "rnn"}, "params.yaml: vae.arch: must be one of"),
        ({"z_dimm": 3}, "params.yaml: vae.z_dimm: unknown key"),
    ],
)
def test_bad_params_name_the_key(tmp_path, override, message):
    set_params(tmp_path, **override)
    proc = run_stage("train_vae.py", tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_conv_on_an_unfit_image_size_names_the_key(tmp_path):
    d = tiny_data(n_train=40, n_test=20, size=30)
    write_data(tmp_path, d)
    set_params(tmp_path, arch="conv", hidden=400)
    proc = run_stage("train_vae.py", tmp_path, check=False)
    assert proc.returncode == 2  # a params error: vae.arch does not fit the prepared data
    assert "vae.arch: conv needs square images" in proc.stderr


@pytest.mark.slow
def test_stage_end_to_end_on_tiny_params(stage_dir):
    write_data(stage_dir, tiny_data())
    # the default z_dim is 16; a 2-D latent adds the manifold and the latent scatter
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(tiny_params(vae={"z_dim": 2})))
    run_stage("train_vae.py", stage_dir)
    metrics = json.loads((stage_dir / "metrics/vae.json").read_text())
    assert {"vae/test_loss", "vae/test_recon", "vae/test_kl"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    rows = (stage_dir / "plots/vae/loss.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["epoch", "step", "train_loss"] and len(rows) == 3
    for name in ("recon_epoch001.png", "recon_epoch002.png", "samples.png", "manifold.png", "latent_scatter.png"):
        assert (stage_dir / "reports/vae" / name).stat().st_size > 1000, name
    model = load_vae(stage_dir / "models/vae/checkpoint.pt")
    assert not model.training and model.z_dim == 2 and model.num_classes is None
    assert model.decode(model.sample_latent(3)).shape == (3, 1, 28, 28)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.stage = 'train_vae'")
    assert runs and runs[0].data.metrics["vae/test_loss"] == pytest.approx(metrics["vae/test_loss"])


def test_the_vae_trains_with_torchs_fused_adam_and_resumes_it(tmp_path):
    """The fused kernel (the per-tensor Adam dominated the MLP VAE's short steps) is what trains, and its
    state is what the resume checkpoint holds, so a resumed run goes on with the same optimizer."""
    from genlab.checkpoint import load_checkpoint
    from genlab.train.loop import adam

    data, resume = tiny_data(n_train=64, n_test=32), tmp_path / "r.pt"
    train_vae(VaeParams(hidden=16, epochs=1, batch_size=32, lr_schedule="constant"), data, seed=0, resume_path=resume)
    group = load_checkpoint(resume, "resume")["optimizers"]["opt"]["param_groups"][0]
    assert group["fused"] is True and group["betas"] == (0.9, 0.999)
    again = train_vae(VaeParams(hidden=16, epochs=2, batch_size=32, lr_schedule="constant"), data, seed=0,
                      resume_path=resume)
    assert again.resumed_from == 2
    # the helper's update is Adam's: the same numbers as torch's per-tensor Adam in fp32
    torch.manual_seed(0)
    ref = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    mine = [p.detach().clone().requires_grad_(True) for p in ref]
    opts = (torch.optim.Adam(ref, lr=1e-2, betas=(0.5, 0.99)), adam(mine, lr=1e-2, betas=(0.5, 0.99)))
    assert opts[1].defaults["fused"] and not opts[0].defaults["fused"]
    for _ in range(5):
        for ps, opt in zip((ref, mine), opts):
            opt.zero_grad()
            sum((p ** 2).sum() for p in ps).backward()
            opt.step()
    for a, b in zip(ref, mine):
        torch.testing.assert_close(a, b)
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    assert not adam([meta], lr=1e-3).defaults["fused"]  # devices without the kernel keep the per-tensor one

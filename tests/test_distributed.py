"""Data-parallel training through the shared loop: 2 gloo processes under torchrun against one
process at the same global batch, and a killed 2-process run that resumes. Launched the way a
user does it, by the stage itself with `distributed.nproc: 2`."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_stage, tiny_params

pytestmark = pytest.mark.slow

# no dropout: with one process or two, the same items, the same global gradient
CHAR_RNN = {"dropout": 0.0, "max_steps": 12, "eval_interval": 6, "checkpoint_every": 4, "batch_size": 8}
ENV = {"OMP_NUM_THREADS": "1", "GENLAB_FP32": "1"}  # the tolerances below are fp32 round-off (auto is bf16 on CPUs with it)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    run_stage("prepare_text.py", root)
    return root


def _dir(src: Path, dest: Path, nproc: int, **sections) -> Path:
    dest.mkdir()
    shutil.copytree(src / "data", dest / "data")
    params = tiny_params(distributed={"nproc": nproc}, tracking={"enabled": False}, **sections)
    (dest / "params.yaml").write_text(yaml.safe_dump(params))
    return dest


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def char_rnn_runs(text_dir, tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("ddp")
    runs = {n: _dir(text_dir, root / f"n{n}", n, char_rnn=CHAR_RNN) for n in (1, 2)}
    for n, d in runs.items():
        proc = run_stage("train_char_rnn.py", d, env=ENV)
        assert proc.stderr.count("char_rnn: best val loss") == n  # each rank trained
    return runs


def test_two_processes_match_one_at_the_same_global_batch(char_rnn_runs):
    """Tolerance: float32 sums in another order (each rank's half-batch mean, then the mean of
    the two): the weights agree to 1e-5 after 12 steps (measured: 1.2e-7), the metrics to 1e-5."""
    one, two = char_rnn_runs[1], char_rnn_runs[2]
    a, b = _weights(one / "models/char_rnn/checkpoint.pt"), _weights(two / "models/char_rnn/checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0, msg=k)
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    ma, mb = (json.loads((d / "metrics/char_rnn.json").read_text()) for d in (one, two))
    for key in ("char_rnn/val_loss", "char_rnn/val_acc", "char_rnn/train_loss_last"):
        assert mb[key] == pytest.approx(ma[key], rel=1e-5), key
    assert mb["char_rnn/steps"] == ma["char_rnn/steps"] == 12
    # rank 0 alone wrote: one loss curve, rows for every validation
    assert len((two / "plots/char_rnn/loss.tsv").read_text().splitlines()) == 1 + 2


def test_killed_two_process_run_resumes_bit_identical(char_rnn_runs, text_dir, tmp_path):
    killed = _dir(text_dir, tmp_path / "killed", 2, char_rnn=CHAR_RNN)
    proc = run_stage("train_char_rnn.py", killed, env={**ENV, "GENLAB_STOP_AFTER_STEPS": "9"}, check=False)
    assert proc.returncode != 0 and not (killed / "models/char_rnn/checkpoint.pt").exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "killed by SIGKILL" in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    state = torch.load(killed / ".genlab/resume/train_char_rnn.pt", weights_only=True)
    assert state["step"] == 8 and state["key"]["nproc"] == 2 and len(state["rank_rng"]) == 2
    proc = run_stage("train_char_rnn.py", killed, env=ENV)
    assert proc.stderr.count("resuming from .genlab/resume/train_char_rnn.pt at epoch") == 2  # both ranks
    a = _weights(char_rnn_runs[2] / "models/char_rnn/checkpoint.pt")
    b = _weights(killed / "models/char_rnn/checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batchnorm_model_within_tolerance_and_ranks_draw_their_own_noise(tmp_path, digits_dir):
    """The classifier has BatchNorm, normalised over each rank's half of the batch (DDP without
    SyncBatchNorm): test accuracy within 0.05 and test loss within 15% of one process."""
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    shutil.copytree(digits_dir, src / "data/images")
    clf = {"dropout": 0.0, "outlier_weight": 0.0, "epochs": 2, "batch_size": 64}
    runs = {n: _dir(src, tmp_path / f"c{n}", n, classifier=clf) for n in (1, 2)}
    for d in runs.values():
        run_stage("train_classifier.py", d, env=ENV)
    ma, mb = (json.loads((d / "metrics/classifier.json").read_text()) for d in runs.values())
    assert ma["classifier/test_acc"] > 0.5
    assert abs(mb["classifier/test_acc"] - ma["classifier/test_acc"]) <= 0.05
    assert mb["classifier/test_loss"] == pytest.approx(ma["classifier/test_loss"], rel=0.15)


def test_a_batch_that_does_not_divide_among_the_processes_is_an_error(monkeypatch):
    from genlab import distributed
    from genlab.train.loop import Loop, LoopConfig, StepModule

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    trainer = StepModule()
    trainer.modules, trainer.optimizers = {}, {}
    cfg = LoopConfig(name="char_rnn", n_items=100, batch_size=7, epochs=1, seed=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="char_rnn.batch_size 7 does not divide among distributed.nproc 2 processes"):
        Loop(cfg, trainer)


@pytest.mark.parametrize("script, section, overrides", [
    ("train_gan.py", "gan", {"epochs": 1, "limit": 128}),  # G and D in DDP, 4 steps
    ("train_vae.py", "vae", {"epochs": 1, "batch_size": 64}),  # VAE.loss through DDP, 9 steps
])
def test_gan_and_vae_ranks_end_with_the_same_weights(tmp_path, digits_dir, script, section, overrides):
    """Each rank draws its own noise, so no bit-equality with one process; the loop checks that
    every rank ends with rank 0's weights (an error otherwise), which holds only if every trained
    forward pass went through DDP."""
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    shutil.copytree(digits_dir, src / "data/images")
    run = _dir(src, tmp_path / "two", 2, **{section: overrides})
    proc = run_stage(script, run, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr[:3000]
    assert json.loads((run / f"metrics/{section}.json").read_text())[f"{section}/steps"] > 0

"""Kill -9 and resume, for every trainer: a stage killed mid-training and run again ends with the
same weights and metrics as a run that was never interrupted (the GAN's case, with its grids,
is in test_gan.py). One more through a real `dvc repro`, and the resume whitelist."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import dvc, make_pipeline_repo, run_stage, tiny_params

pytestmark = pytest.mark.slow

# stage -> (params section overrides, final model file, metrics file, kill after this many steps)
CASES = {
    # 600 images / 64 = 10 steps per epoch, 20 in all; checkpoints at 6, 10 (epoch end), 12
    "classifier": ({"checkpoint_every": 6}, "models/classifier/checkpoint.pt", "metrics/classifier.json", 15),
    # 600 / 32 = 18 steps per epoch, 36 in all; checkpoints at 10, 18, 20
    "vae": ({"checkpoint_every": 10, "log_every": 4}, "models/vae/checkpoint.pt", "metrics/vae.json", 25),
    # 30 steps; checkpoints at 8, 16, 24; the best-by-validation state must survive the kill
    "char_rnn": ({"checkpoint_every": 8}, "models/char_rnn/checkpoint.pt", "metrics/char_rnn.json", 21),
    # 40 steps; checkpoints at 15, 30; then the optimizer comparison
    "char_rnn_numpy": ({"checkpoint_every": 15}, "models/char_rnn_numpy/model.npz", "metrics/char_rnn_numpy.json", 35),
}
TIMING = ("seconds", "per_s")  # wall-clock metrics differ between any two runs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Prepared tiny digits and text, made once by the library functions behind the prepare
    stages (in this process: two stage subprocesses would only add their imports)."""
    from genlab.data.images import PrepareImagesParams, prepare_images
    from genlab.data.text import PrepareTextParams, prepare_text

    root = tmp_path_factory.mktemp("prepared")
    params = tiny_params()
    prepare_images(PrepareImagesParams(**params["prepare_images"]), root / "data/images", seed=params["seed"])
    prepare_text(PrepareTextParams(**params["prepare_text"]), root / "data/text")
    return root


def _workdir(prepared: Path, dest: Path, section: str, overrides: dict) -> Path:
    """A stage folder with the prepared data and tiny params; MLflow off (resume does not touch
    tracking, and each stage would spend seconds importing and opening the store)."""
    dest.mkdir()
    shutil.copytree(prepared / "data", dest / "data")
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(tracking={"enabled": False}, **{section: overrides})))
    return dest


def _weights(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files if k.startswith("param")}
    ck = torch.load(path, weights_only=True)
    return {f"{name}.{k}": v.numpy() for name, sd in ck.items() if isinstance(sd, dict)
            for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _metrics(root: Path, name: str) -> dict[str, float]:
    return {k: v for k, v in json.loads((root / name).read_text()).items() if not k.endswith(TIMING)}


def _resume_step(path: Path) -> int:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta_json"]))["step"]
    state = torch.load(path, weights_only=True)
    assert not state["finished"]
    return state["step"]


@pytest.mark.parametrize("section", list(CASES))
def test_killed_trainer_resumes_bit_identical(prepared, tmp_path, section):
    overrides, model, metrics, kill_at = CASES[section]
    script, env = f"train_{section}.py", {"OMP_NUM_THREADS": "1"}
    straight = _workdir(prepared, tmp_path / "straight", section, overrides)
    run_stage(script, straight, env=env)

    killed = _workdir(prepared, tmp_path / "killed", section, overrides)
    proc = run_stage(script, killed, env={**env, "GENLAB_STOP_AFTER_STEPS": str(kill_at)}, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / model).exists()
    resume = next((killed / ".genlab/resume").iterdir())
    step = _resume_step(resume)
    assert 0 < step < kill_at  # the last checkpoint before the kill, not the start

    proc = run_stage(script, killed, env=env)
    assert f"resuming from .genlab/resume/{resume.name} at" in proc.stderr and f"step {step}/" in proc.stderr
    a, b = _weights(straight / model), _weights(killed / model)
    assert a.keys() == b.keys() and a
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []
    assert _metrics(straight, metrics) == _metrics(killed, metrics)


def test_resume_whitelist(prepared, tmp_path):
    """Settings that do not change what was computed so far (more epochs, the history's log
    interval) resume a finished run; one that does (the learning rate) starts fresh."""
    # a constant lr: under a schedule (the default) the epochs shape every step, so they join the key
    root = _workdir(prepared, tmp_path / "w", "vae", {"epochs": 1, "lr_schedule": "constant", "lr": 1e-3})
    fresh = run_stage("train_vae.py", root)
    assert "resumed from step" not in fresh.stderr, fresh.stderr  # a fresh run claims no resume
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["vae"].update(epochs=2, log_every=7)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("train_vae.py", root)
    assert "resuming from .genlab/resume/train_vae.pt at epoch 2, step 18/36" in proc.stderr
    assert "resumed from step 18)" in proc.stderr
    params["vae"].update(lr=2e-3)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("train_vae.py", root)
    assert "under other settings (vae.lr: 0.001 -> 0.002); starting fresh" in proc.stderr


def test_dvc_repro_resumes_a_killed_classifier(tmp_path, monkeypatch):
    """kill -9 inside `dvc repro`: DVC deletes the stage's outs on the next run, the resume
    state in .genlab/resume survives it, the run finishes from there, and a third `dvc repro`
    runs nothing."""
    params = tiny_params(tracking={"enabled": False}, device="cpu", classifier={"checkpoint_every": 6})
    repo = make_pipeline_repo(tmp_path / "repo", params)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GENLAB_STOP_AFTER_STEPS", "15")
    assert dvc(repo, "repro", "train_classifier", check=False).returncode != 0
    assert _resume_step(repo / ".genlab/resume/train_classifier.pt") == 12
    monkeypatch.delenv("GENLAB_STOP_AFTER_STEPS")
    proc = dvc(repo, "repro", "train_classifier")
    assert "resuming from .genlab/resume/train_classifier.pt at epoch 2, step 12/20" in proc.stdout + proc.stderr
    assert json.loads((repo / "metrics/classifier.json").read_text())["classifier/steps"] == 20
    assert "didn't change" in dvc(repo, "repro", "train_classifier").stdout

"""Fault suite, training: Ctrl-C in the middle of a training stage, then a full disk while the
next resume checkpoint is written, then a plain run. Each fault is one line and a clean exit;
no partial file is left; the last good resume checkpoint survives both and the plain run
resumes from it (issue 17). Kill-and-resume identity of every trainer: tests/test_resume.py."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tiny_params
from genlab.checkpoint import load_checkpoint

pytestmark = pytest.mark.faults

RESUME = Path(".genlab/resume/train_vae.pt")
MODEL = "models/vae/checkpoint.pt"
STEPS_PER_EPOCH = 18  # tiny params: 600 images / batch 32


def write_params(ws: Path, epochs: int) -> None:
    # the VAE: the fastest trainer to start and step; no figures (z_dim 4, no reconstructions)
    params = tiny_params(tracking={"enabled": False},
                         # a constant lr: under a schedule the epochs join the resume key
                         vae={"epochs": epochs, "checkpoint_every": 2, "z_dim": 4, "recon_every": 1000,
                              "lr_schedule": "constant"})
    (ws / "params.yaml").write_text(yaml.safe_dump(params))


def limit_file_size(limit: int):
    def preexec() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG

    return preexec


def partial_files(ws: Path) -> list[str]:
    """Files a reader could take for complete that an interrupted run left behind."""
    return sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file() and ".tmp" in p.name)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if not line.startswith("[genlab]")]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, digits_dir) -> dict:
    """Ctrl-C, then a full disk, then a plain run of stages/train_vae.py in one workspace."""
    ws = tmp_path_factory.mktemp("train_faults")
    shutil.copytree(digits_dir, ws / "data/images")
    script = [sys.executable, str(ROOT / "stages/train_vae.py")]
    out: dict = {"ws": ws}

    # 1. Ctrl-C as soon as the first resume checkpoint is on disk (a 50-epoch run: far from done)
    write_params(ws, epochs=50)
    # SIGINT as a terminal delivers it: pytest-xdist workers ignore SIGINT, and a child inherits that
    proc = subprocess.Popen(script, cwd=ws, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (ws / RESUME).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out["interrupted"] = (proc.wait(timeout=60), proc.communicate()[1], partial_files(ws),
                          (ws / MODEL).exists())
    out["after_interrupt"] = (sha(ws / RESUME), load_checkpoint(ws / RESUME)["step"])

    # 2. the disk fills up (half the checkpoint's size per file) while the next resume checkpoint is written
    proc2 = subprocess.run(script, cwd=ws, capture_output=True, text=True, timeout=300,
                           preexec_fn=limit_file_size((ws / RESUME).stat().st_size // 2))
    out["disk_full"] = (proc2.returncode, proc2.stderr, partial_files(ws), sha(ws / RESUME),
                        (ws / MODEL).exists())

    # 3. a plain run with room and just enough epochs to go on from the kept checkpoint
    step = out["after_interrupt"][1]
    write_params(ws, epochs=step // STEPS_PER_EPOCH + 1)
    proc3 = subprocess.run(script, cwd=ws, capture_output=True, text=True, timeout=300)
    out["resumed"] = (proc3.returncode, proc3.stderr)
    return out


def test_ctrl_c_in_training_is_one_line_and_leaves_no_partial_file(chain):
    code, stderr, partial, model_written = chain["interrupted"]
    assert code == 130
    assert lines(stderr) == ["error: train_vae: interrupted"]
    assert partial == []
    assert not model_written  # no model that looks finished
    assert chain["after_interrupt"][1] >= 2  # the resume checkpoint holds real progress


def test_full_disk_keeps_the_last_checkpoint_and_the_next_run_resumes_from_it(chain):
    code, stderr, partial, digest, model_written = chain["disk_full"]
    assert code == 1
    assert len(lines(stderr)) == 1 and lines(stderr)[0].startswith("error: train_vae: "), stderr
    assert partial == []
    assert digest == chain["after_interrupt"][0]  # the previous resume checkpoint, byte for byte
    assert not model_written
    code, stderr = chain["resumed"]
    assert code == 0, stderr
    assert f"resuming from {RESUME} at epoch" in stderr and f"step {chain['after_interrupt'][1]}/" in stderr
    assert load_checkpoint(chain["ws"] / MODEL, "vae")


def test_full_disk_message_names_the_checkpoint_and_the_cause(chain):
    stderr = chain["disk_full"][1]
    line = lines(stderr)[0]
    assert str(RESUME) in line and ("File too large" in line or "No space left" in line), line

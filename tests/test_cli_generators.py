"""`genlab sample` and `genlab traverse` on real (untrained) GAN and VAE checkpoints."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.models import gan, vae


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    gan.save(root / "models/gan/checkpoint.pt", gan.build(gan.Config(z_dim=8)))
    vae.save(root / "models/vae/checkpoint.pt", vae.build(vae.Config(arch="mlp", z_dim=2, hidden=32)))
    return root


def genlab(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_sample_grid_and_npy(checkpoints):
    proc = genlab("sample", "--model", "gan", "--n", "16", "--out", "grid.png", "--device", "cpu", cwd=checkpoints)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(checkpoints / "grid.png").size == (2 * (4 * 30 + 2),) * 2  # 4x4 tiles of 28+2 px, x2
    proc = genlab("sample", "--model", "models/vae/checkpoint.pt", "--n", "5", "--out", "s.npy", cwd=checkpoints)
    assert proc.returncode == 0, proc.stderr
    arr = np.load(checkpoints / "s.npy")
    assert arr.shape == (5, 1, 28, 28) and arr.dtype == np.uint8


def test_traverse_writes_grid_and_gif(checkpoints):
    proc = genlab("traverse", "--model", "gan", "--points", "3", "--steps", "4", "--out", "t.png", cwd=checkpoints)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(checkpoints / "t.gif").n_frames == 3 + 2 * 4
    assert Image.open(checkpoints / "t.png").size == (5 * 29 + 1, 3 * 29 + 1)


def test_cli_errors_are_one_line(checkpoints):
    proc = genlab("sample", "--model", "nowhere.pt", cwd=checkpoints)
    assert proc.returncode == 2 and "pass --kind gan|vae" in proc.stderr
    proc = genlab("sample", "--model", "gan", "--kind", "gan", "--n", "0", cwd=checkpoints)
    assert proc.returncode == 2 and "--n must be >= 1" in proc.stderr
    proc = genlab("sample", "--model", "missing/gan.pt", cwd=checkpoints)
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr
    proc = genlab("traverse", "--model", "vae", "--points", "1", cwd=checkpoints)
    assert proc.returncode == 2 and "points" in proc.stderr

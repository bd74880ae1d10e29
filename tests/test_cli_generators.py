"""`genlab sample` and `genlab traverse` on real (untrained) GAN and VAE checkpoints."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.models import gan, vae


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    gan.save(root / "models/gan/checkpoint.pt", gan.build(gan.Config(z_dim=8)))
    vae.save(root / "models/vae/checkpoint.pt", vae.build(vae.Config(arch="mlp", z_dim=2, hidden=32)))
    return root


def genlab(*args, cwd):
    """`python -m genlab.cli ...` as a user runs it (the entry point, a fresh interpreter)."""
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def genlab_here(checkpoints, monkeypatch, capsys):
    """`genlab ...` through the same `main` in this process, in the checkpoints folder: (exit
    code, stderr). A subprocess per call would spend seconds importing torch each time."""
    monkeypatch.chdir(checkpoints)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        return code, capsys.readouterr().err
    return run


def test_sample_grid_through_the_entry_point(checkpoints):
    proc = genlab("sample", "--model", "gan", "--n", "16", "--out", "grid.png", "--device", "cpu", cwd=checkpoints)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(checkpoints / "grid.png").size == (2 * (4 * 30 + 2),) * 2  # 4x4 tiles of 28+2 px, x2


def test_sample_npy_from_a_checkpoint_path(checkpoints, genlab_here):
    code, err = genlab_here("sample", "--model", "models/vae/checkpoint.pt", "--n", "5", "--out", "s.npy")
    assert code == 0, err
    arr = np.load(checkpoints / "s.npy")
    assert arr.shape == (5, 1, 28, 28) and arr.dtype == np.uint8


def test_traverse_writes_grid_and_gif(checkpoints, genlab_here):
    code, err = genlab_here("traverse", "--model", "gan", "--points", "3", "--steps", "4", "--out", "t.png")
    assert code == 0, err
    assert Image.open(checkpoints / "t.gif").n_frames == 3 + 2 * 4
    assert Image.open(checkpoints / "t.png").size == (5 * 29 + 1, 3 * 29 + 1)


def test_cli_errors_are_one_line(genlab_here):
    code, err = genlab_here("sample", "--model", "nowhere.pt")
    assert code == 2 and "pass --kind gan|vae" in err
    code, err = genlab_here("sample", "--model", "gan", "--kind", "gan", "--n", "0")
    assert code == 2 and "--n: must be >= 1" in err
    code, err = genlab_here("sample", "--model", "missing/gan.pt")
    assert code == 2 and "checkpoint not found" in err
    code, err = genlab_here("traverse", "--model", "vae", "--points", "1")
    assert code == 2 and "points" in err

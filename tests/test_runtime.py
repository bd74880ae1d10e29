"""Runtime pieces: atomic writes, seeding, device choice, checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genlab.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from genlab.data.arrays import ImageArrayError, check_images, load_images, to_float, to_uint8
from genlab.runtime import atomic_path, resolve_device, seed_everything, write_json, write_tsv


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_leaves_nothing_when_interrupted_right_after_creating_its_file(tmp_path, monkeypatch):
    """Ctrl-C lands between bytecodes: here in the first call after the temporary file exists (the
    fault suite's Ctrl-C test hit that window now and then, with a resume checkpoint every 2 steps)."""
    import genlab.runtime as rt

    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous")
    real_close = rt.os.close
    calls = []

    def close_then_interrupt(fd: int) -> None:
        real_close(fd)
        calls.append(fd)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(rt.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
    monkeypatch.undo()
    assert calls  # the interrupt did come after the file was created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert target.read_bytes() == b"previous"


def test_atomic_path_keeps_the_umask_permissions(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o640


def test_atomic_path_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "rows.tsv"
    write_tsv(target, [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}])
    assert target.read_text() == "step\tloss\n1\t0.5\n2\t0.25\n"


def test_seed_everything_is_reproducible():
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def test_checkpoint_round_trip_restores_rng(tmp_path):
    seed_everything(1)
    model = torch.nn.Linear(3, 2)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    path = save_checkpoint(tmp_path / "ckpt.pt", kind="toy", config={"in": 3, "out": 2},
                           model=model.state_dict(), step=5, rng=state)
    ckpt = load_checkpoint(path, kind="toy")
    assert ckpt["step"] == 5 and ckpt["config"] == {"in": 3, "out": 2}
    assert torch.equal(ckpt["model"]["weight"], model.weight.detach())
    set_rng_state(ckpt["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(bad)
    good = save_checkpoint(tmp_path / "g.pt", kind="gan", config={})
    with pytest.raises(CheckpointError, match="holds a 'gan' model, expected 'vae'"):
        load_checkpoint(good, kind="vae")
    # a pickled object (code on load) is refused by weights_only loading
    torch.save({"kind": "gan", "config": {}, "obj": ImageArrayError("x")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="corrupted or not a genlab checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_image_format_checks(tmp_path):
    ok = np.zeros((2, 1, 28, 28), np.uint8)
    assert check_images(ok) is ok
    with pytest.raises(ImageArrayError, match=r"shape \(N, C, H, W\)"):
        check_images(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ImageArrayError, match="dtype uint8"):
        check_images(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ImageArrayError, match="1 or 3 channels"):
        check_images(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(ImageArrayError, match="the model expects 3"):
        check_images(ok, channels=3)
    np.savez(tmp_path / "x.npz", images=ok)
    assert load_images(tmp_path / "x.npz").shape == (2, 1, 28, 28)
    with pytest.raises(ImageArrayError, match="not found"):
        load_images(tmp_path / "nope.npy")


def test_float_uint8_round_trip():
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    for r in ("tanh", "unit"):
        f = to_float(x, r)
        assert f.dtype == np.float32 and f.min() == (-1 if r == "tanh" else 0) and f.max() == 1
        assert np.array_equal(to_uint8(f, r), x)


def test_outputs_get_normal_permissions(tmp_path):
    import os

    path = write_json(tmp_path / "m.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

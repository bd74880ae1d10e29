"""The one stage wrapper (genlab.stage.run_stage): exit codes and one-line errors."""

from __future__ import annotations

import pytest

import subprocess
import sys
import textwrap

from conftest import ROOT
from genlab.checkpoint import CheckpointError
from genlab.errors import InputError
from genlab.params import ParamsError
from genlab.stage import StageError, run_stage


def _raising(exc: BaseException):
    def main() -> int:
        raise exc

    return main


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (ParamsError("params.yaml: gan.lr: must be > 0, got -1"), 2, "error: s: params.yaml: gan.lr: must be > 0, got -1"),
        (StageError("data/images/train_images.npy is truncated"), 1, "error: s: data/images/train_images.npy is truncated"),
        (InputError("bad value\nmore detail"), 1, "error: s: bad value"),
        (FileNotFoundError("no such file: x.npy"), 1, "error: s: no such file: x.npy"),
        (OSError(28, "No space left on device"), 1, "error: s: [Errno 28] No space left on device"),
        (CheckpointError("checkpoint m.pt is corrupted"), 1, "error: s: checkpoint m.pt is corrupted"),
        (StageError(""), 1, "error: s: StageError"),
        (KeyboardInterrupt(), 130, "error: s: interrupted"),
    ],
)
def test_errors_become_one_line_and_an_exit_code(exc, code, line, capsys, monkeypatch):
    monkeypatch.delenv("GENLAB_TRACEBACK", raising=False)
    assert run_stage(_raising(exc), "s") == code
    err = capsys.readouterr().err
    assert err.splitlines() == [line]


def test_several_params_problems_give_one_line_each(capsys):
    assert run_stage(_raising(ParamsError("params.yaml: a: x\nparams.yaml: b: y")), "s") == 2
    assert capsys.readouterr().err.splitlines() == ["error: s: params.yaml: a: x", "error: s: params.yaml: b: y"]


def test_return_value_and_name_from_the_script(capsys):
    def main() -> int:
        raise StageError("boom")

    assert run_stage(lambda: None) == 0
    assert run_stage(lambda: 3) == 3
    assert run_stage(main) == 1
    # the name is the file that defines main (here this test module)
    assert capsys.readouterr().err.strip() == "error: test_stage: boom"


@pytest.mark.parametrize("exc", [KeyError("x"), ValueError("operands could not be broadcast together"),
                                 RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 9x2)"),
                                 FloatingPointError("overflow encountered in exp")])
def test_bugs_keep_their_traceback(exc, monkeypatch):
    """Only genlab's own errors and OSError are one line; a ValueError or RuntimeError from torch
    or NumPy is a bug, shown with its traceback."""
    monkeypatch.delenv("GENLAB_TRACEBACK", raising=False)
    with pytest.raises(type(exc)):
        run_stage(_raising(exc), "s")


def test_a_shape_bug_in_a_real_stage_run_keeps_its_traceback(tmp_path):
    """stages/train_vae.py in a subprocess, its model's forward broken by a wrong reshape."""
    from test_vae import set_params, tiny_data, write_data

    write_data(tmp_path, tiny_data(n_train=32, n_test=16))
    set_params(tmp_path, epochs=1, batch_size=16, lr_schedule="constant")
    inject = textwrap.dedent(f"""
        import runpy, sys
        from genlab.models import vae

        def broken_forward(self, x, *args, **kwargs):
            return x.reshape(x.shape[0], 3, -1) @ x.reshape(x.shape[0], 5, -1)  # a shape bug

        vae.VAE.forward = broken_forward
        sys.argv = [{str(ROOT / "stages" / "train_vae.py")!r}]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """)
    proc = subprocess.run([sys.executable, "-c", inject], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr, proc.stderr
    assert "broken_forward" in proc.stderr and "RuntimeError" in proc.stderr
    assert "error: train_vae:" not in proc.stderr


def test_genlab_traceback_reraises(monkeypatch):
    monkeypatch.setenv("GENLAB_TRACEBACK", "1")
    with pytest.raises(StageError):
        run_stage(_raising(StageError("x")), "s")


def test_sigterm_unwinds_like_ctrl_c(tmp_path, capsys, monkeypatch):
    """`kill`, a CI timeout or a shutdown: cleanups run (no partial file), one line, exit 143."""
    import os
    import signal
    import time

    from genlab.runtime import atomic_path

    monkeypatch.delenv("GENLAB_TRACEBACK", raising=False)
    target = tmp_path / "out.npy"

    def main() -> int:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal interrupts this
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert run_stage(main, "s") == 143
    assert capsys.readouterr().err.splitlines() == ["error: s: terminated"]
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored


def test_damaged_output_of_another_stage_gets_the_restore_commands(tmp_path, capsys, monkeypatch):
    """The hint comes from dvc.yaml's outs; a stage's own outputs get none (rebuilding is running it)."""
    from genlab.checkpoint import CheckpointError
    from genlab.data.arrays import ImageArrayError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages:\n  train_gan:\n    cmd: x\n    outs:\n      - models/gan\n"
                                       "  generate:\n    cmd: y\n    outs:\n      - data/generated\n")
    assert run_stage(_raising(CheckpointError("checkpoint models/gan/checkpoint.pt is truncated")), "generate") == 1
    assert run_stage(_raising(ImageArrayError("data/generated/gan.npy: truncated")), "evaluate") == 1
    assert run_stage(_raising(ImageArrayError("data/generated/gan.npy: truncated")), "generate") == 1
    assert run_stage(_raising(InputError("models/gan/checkpoint.pt: bad")), "generate") == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: generate: checkpoint models/gan/checkpoint.pt is truncated; "
        "restore it with `dvc checkout models/gan` or rebuild it with `dvc repro -f train_gan`",
        "error: evaluate: data/generated/gan.npy: truncated; "
        "restore it with `dvc checkout data/generated` or rebuild it with `dvc repro -f generate`",
        "error: generate: data/generated/gan.npy: truncated",
        "error: generate: models/gan/checkpoint.pt: bad",
    ]

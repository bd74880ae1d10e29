"""Fault suite, data: corrupted inputs in the workspace, a kill or a full disk while prepared
data is written. Each fault is one line naming the file and what to run, nothing is written,
and nothing prepared before is lost (issue 17)."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, tiny_params
from genlab.checkpoint import save_checkpoint
from genlab.data.text import PrepareTextParams, load_text_data, prepare_text
from genlab.stage import run_stage

pytestmark = pytest.mark.faults

# what each stage would write: none of it may appear when its input is damaged
OUTPUTS = {
    "train_gan": ["models/gan", "metrics/gan.json", "plots/gan"],
    "train_vae": ["models/vae", "metrics/vae.json"],
    "train_classifier": ["models/classifier", "metrics/classifier.json"],
    "generate": ["data/generated"],
    "train_char_rnn_numpy": ["models/char_rnn_numpy", "metrics/char_rnn_numpy.json"],
}


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def workspace(tmp_path, digits_dir) -> Path:
    """A stage folder as DVC leaves it after prepare_images and prepare_text: tiny params,
    dvc.yaml (for the restore hints), data/images and data/text, tracking off."""
    params = tiny_params(tracking={"enabled": False})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copytree(digits_dir, tmp_path / "data/images")
    prepare_text(PrepareTextParams(source="pydoc", max_chars=20_000), tmp_path / "data/text")
    return tmp_path


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if not line.startswith("[genlab]")]


def run_in_process(script: str, cwd: Path, monkeypatch, capsys) -> tuple[int, list[str]]:
    """A stage's main through genlab.stage.run_stage, as its script runs it, in this process."""
    monkeypatch.chdir(cwd)
    main = runpy.run_path(str(ROOT / "stages" / f"{script}.py"), run_name="stage")["main"]
    code = run_stage(main, script)
    return code, error_lines(capsys.readouterr().err)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_images_stop_a_real_stage_in_one_line(workspace):
    truncate(workspace / "data/images/train_images.npy")
    proc = subprocess.run([sys.executable, str(ROOT / "stages/train_gan.py")], cwd=workspace,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "error: train_gan: data/images/train_images.npy: truncated (Failed to read all data for array); "
        "restore it with `dvc checkout data/images` or rebuild it with `dvc repro -f prepare_images`"]
    assert not any((workspace / p).exists() for p in OUTPUTS["train_gan"])


def _meta_of_another_run(ws: Path) -> None:
    meta_path = ws / "data/images/meta.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"]["test_images.npy"] = hashlib.sha256(b"another run").hexdigest()
    meta_path.write_text(json.dumps(meta))


def _text_file_as_npy(ws: Path) -> None:
    (ws / "data/images/train_images.npy").write_text("0,0,0,255\n" * 100)


def _missing_labels(ws: Path) -> None:
    (ws / "data/images/train_labels.npy").unlink()


def _truncated_checkpoint(ws: Path) -> None:
    path = save_checkpoint(ws / "models/gan/checkpoint.pt", kind="gan", config={}, model={"w": np.zeros(4096)})
    truncate(path, 0.3)


def _checkpoint_of_wrong_kind(ws: Path) -> None:
    save_checkpoint(ws / "models/gan/checkpoint.pt", kind="vae", config={})


def _truncated_text_ids(ws: Path) -> None:
    truncate(ws / "data/text/train.npy", 0.9)


def _vocab_of_another_corpus(ws: Path) -> None:
    (ws / "data/text/vocab.json").write_text('{"chars": ["a", "b"]}')


@pytest.mark.parametrize(("stage", "damage", "expected"), [
    ("train_classifier", _meta_of_another_run,
     "data/images/test_images.npy does not match data/images/meta.json (sha256 differs: changed after prepare_images "
     "wrote it); restore it with `dvc checkout data/images` or rebuild it with `dvc repro -f prepare_images`"),
    ("train_vae", _text_file_as_npy,
     "data/images/train_images.npy: not a readable .npy file (it does not start with the NumPy header); "
     "restore it with `dvc checkout data/images` or rebuild it with `dvc repro -f prepare_images`"),
    ("train_gan", _missing_labels,
     "data/images/train_labels.npy is missing; restore it with `dvc checkout data/images` or rebuild it with "
     "`dvc repro -f prepare_images`"),
    ("generate", _truncated_checkpoint, "checkpoint models/gan/checkpoint.pt is corrupted or not a genlab checkpoint"),
    ("generate", _checkpoint_of_wrong_kind,
     "checkpoint models/gan/checkpoint.pt holds a 'vae' model, expected 'gan'; "
     "restore it with `dvc checkout models/gan` or rebuild it with `dvc repro -f train_gan`"),
    ("train_char_rnn_numpy", _truncated_text_ids,
     "data/text/train.npy: truncated (Failed to read all data for array); "
     "restore it with `dvc checkout data/text` or rebuild it with `dvc repro -f prepare_text`"),
    ("train_char_rnn_numpy", _vocab_of_another_corpus,
     "data/text/vocab.json does not match data/text/meta.json (sha256 differs); "
     "restore it with `dvc checkout data/text` or rebuild it with `dvc repro -f prepare_text`"),
], ids=["meta-mismatch", "text-as-npy", "missing-labels", "truncated-checkpoint", "wrong-kind-checkpoint",
        "truncated-text-ids", "foreign-vocab"])
def test_damaged_input_is_one_line_naming_file_and_fix(workspace, monkeypatch, capsys, stage, damage, expected):
    damage(workspace)
    code, lines = run_in_process(stage, workspace, monkeypatch, capsys)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"error: {stage}: {expected}"), lines
    assert lines[0].endswith("`dvc repro -f train_gan`") or stage != "generate", lines  # the fix is named
    assert not any((workspace / p).exists() for p in OUTPUTS[stage])


# a real kill in the middle of writing the prepared text: SIGKILL on the second array written
KILL_MID_WRITE = """
import os, runpy, signal, sys
import genlab.data.text as text
calls, write_npy = [], text.write_npy
def write_then_die(path, array):
    calls.append(path)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return write_npy(path, array)
text.write_npy = write_then_die
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _set_text_params(ws: Path, **section) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["prepare_text"].update(section)
    (ws / "params.yaml").write_text(yaml.safe_dump(params))


def test_kill_while_prepared_text_is_written_keeps_the_previous_set_whole(workspace):
    before = digests(workspace / "data/text")
    _set_text_params(workspace, max_chars=30_000)
    proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(ROOT / "stages/prepare_text.py")],
                          cwd=workspace, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert digests(workspace / "data/text") == before  # old vocabulary and old ids, together
    train, val, vocab = load_text_data(workspace / "data/text")
    assert len(train) + len(val) == 20_000
    leftovers = [p.name for p in (workspace / "data").iterdir() if p.name not in ("text", "images")]
    assert all(name.startswith(".text.tmp-") for name in leftovers), leftovers  # hidden, never read


def _limited(limit: int) -> callable:
    def preexec() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG

    return preexec


def test_full_disk_while_prepared_text_is_written(workspace):
    before = digests(workspace / "data/text")
    _set_text_params(workspace, max_chars=30_000)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/prepare_text.py")], cwd=workspace, capture_output=True,
                          text=True, timeout=120, preexec_fn=_limited(25_000))
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == ["error: prepare_text: cannot write data/text: File too large"]
    assert digests(workspace / "data/text") == before
    assert sorted(os.listdir(workspace / "data")) == ["images", "text"]  # no temporary folder left


@pytest.mark.parametrize(("content", "expected"), [
    (b"0,0,255\n" * 10, "not a readable .npy/.npz file (it does not start with the NumPy header)"),
    (b"", "empty"),
    (None, "holds Python objects (pickled data), which genlab does not load"),
])
def test_images_given_to_a_command_are_named_for_what_they_are(tmp_path, content, expected):
    """`genlab evaluate x.npy`: a renamed text file is not called 'pickled data' (issue 17 finding 6)."""
    from genlab.data.arrays import ImageArrayError, load_images

    path = tmp_path / "x.npy"
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(content)
    with pytest.raises(ImageArrayError) as err:
        load_images(path)
    assert str(err.value) == f"{path}: {expected}"

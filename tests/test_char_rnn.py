"""Torch char-RNN: shapes per cell, learning, checkpoints, the stage, `genlab text`."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from argparse import Namespace
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import gpu, run_stage
from genlab.data.text import Vocab
from genlab.models.char_rnn import CharRNN
from genlab.models.char_rnn import Config as CharRNNConfig
from genlab.models.char_rnn import load as load_char_rnn
from genlab.models.char_rnn import save as save_char_rnn
from genlab.params import ParamsError, validate_section
from genlab.train.char_rnn import CharRNNParams, evaluate, train_char_rnn, window_starts

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("inp", ["embedding", "onehot"])
def test_shapes_per_cell(cell, inp):
    torch.manual_seed(0)
    width = {"embed_dim": 8} if inp == "embedding" else {}  # embed_dim applies to embedding input only
    model = CharRNN(CharRNNConfig(vocab_size=11, cell=cell, layers=2, hidden=16, input=inp, dropout=0.1, **width))
    ids = torch.randint(0, 11, (3, 7))
    logits, state = model(ids)
    assert logits.shape == (3, 7, 11)
    hs = state if cell == "lstm" else (state,)
    assert all(h.shape == (2, 3, 16) for h in hs) and len(hs) == (2 if cell == "lstm" else 1)
    # carrying the state = running the concatenation in one go
    model.eval()
    full, _ = model(ids)
    a, s = model(ids[:, :4])
    b, _ = model(ids[:, 4:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    loss = model.loss(logits, ids)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    step_logits, _ = model.step(3, None)
    assert step_logits.shape == (11,) and step_logits.dtype == np.float64


def test_window_grid_shifts_per_epoch_and_is_a_pure_function():
    """Each epoch's windows tile the corpus from an offset that depends only on (seed, epoch):
    what a resumed run needs to see the same batches; the count never depends on the offset."""
    starts = [window_starts(1000, 16, epoch, seed=3) for epoch in range(8)]
    assert starts == [window_starts(1000, 16, epoch, seed=3) for epoch in range(8)]
    assert len({off for off, _ in starts}) > 1 and {n for _, n in starts} == {(1000 - 16) // 16}
    for off, n in starts:
        assert 0 <= off < 16 and off + n * 16 + 1 <= 1000  # the last window's target is in the corpus
    assert [window_starts(1000, 16, e, seed=4) for e in range(8)] != starts


def _tiny_cfg(**kw) -> CharRNNParams:
    base = dict(layers=1, hidden=32, embed_dim=8, seq_len=16, batch_size=16, lr=1e-2, max_steps=60,
                eval_interval=20, eval_chars=None, eval_streams=4, threads=1, prime="ab", length=20,
                lr_schedule="constant")
    return CharRNNParams(**{**base, **kw})


def test_loss_decreases_on_repetitive_corpus(tmp_path):
    text = "hello world. " * 200
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    torch.manual_seed(0)
    res = train_char_rnn(_tiny_cfg(prime="hel"), ids[:2000], ids[2000:], vocab.chars, torch.device("cpu"), seed=0)
    first, last = res.history[0], res.history[-1]
    assert last["val_loss"] < 0.5 * first["val_loss"] and res.metrics["char_rnn/val_acc"] > 0.8
    assert res.metrics["char_rnn/val_loss"] < 0.5
    out = res.model.generate(vocab, "hello wor", 12, 0.05, np.random.default_rng(0))
    assert out == "ld. hello wo"  # the prime set the phase of the pattern


def test_training_is_deterministic(tmp_path):
    text = "the quick brown fox jumps over the lazy dog\n" * 40
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    runs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # differs from the config's threads=1 (the suite runs one thread per worker)
    threads = torch.get_num_threads()
    for i in range(2):
        torch.manual_seed(3)
        runs.append(train_char_rnn(_tiny_cfg(max_steps=20, prime="the"), ids[:1500], ids[1500:], vocab.chars,
                                   torch.device("cpu"), seed=3))
    assert [r["val_loss"] for r in runs[0].history] == [r["val_loss"] for r in runs[1].history]
    try:
        assert torch.get_num_threads() == threads != 1  # char_rnn.threads applies inside training only
    finally:
        torch.set_num_threads(threads - 1)


def test_best_checkpoint_kept_and_round_trip(tmp_path):
    # train on an alternating pattern, validate on a pattern it contradicts: val loss rises
    train = np.array([0, 1] * 1000, dtype=np.int64)
    val = np.array([0, 0, 1, 1] * 100, dtype=np.int64)
    torch.manual_seed(0)
    res = train_char_rnn(_tiny_cfg(max_steps=40, eval_interval=5, lr=3e-2), train, val, ["a", "b"],
                         torch.device("cpu"), seed=0)
    vals = [r["val_loss"] for r in res.history]
    best_step = res.history[int(np.argmin(vals))]["step"]
    assert best_step < 40 and vals[-1] > min(vals) + 0.1  # the last model is worse than the best
    assert best_step == res.metrics["char_rnn/best_step"]
    save_char_rnn(tmp_path / "ck.pt", res.model, vocab={"chars": ["a", "b"]}, prime="ab", step=best_step)
    model = load_char_rnn(tmp_path / "ck.pt")
    assert model.vocab_chars == ["a", "b"] and model.prime == "ab" and not model.training
    # the returned model is the best one, and the checkpoint rebuilds it exactly
    ids = torch.tensor([[0, 1, 1, 0, 1]])
    torch.testing.assert_close(model(ids)[0], res.model.eval()(ids)[0])
    full = evaluate(model, torch.as_tensor(val), 16, 4, None, torch.device("cpu"))
    # rel 1e-4: the same weights through oneDNN's LSTM kernels gave 1.6087513 during training and
    # 1.6087040 afterwards (torch 2.14, CPU); the best and the last model differ by > 0.1
    assert full["loss"] == pytest.approx(res.metrics["char_rnn/val_loss"], rel=1e-4)
    assert full["loss"] == pytest.approx(min(vals), rel=1e-4)


def test_params_errors():
    with pytest.raises(ParamsError, match="char_rnn.cell: must be one of 'rnn', 'lstm' or 'gru'|char_rnn.cell: must be one of"):
        validate_section({"cell": "transformer"}, "char_rnn", CharRNNParams)
    with pytest.raises(ParamsError, match="char_rnn.lr: must be > 0"):
        validate_section({"lr": 0}, "char_rnn", CharRNNParams)
    with pytest.raises(ParamsError, match="sweep_temperatures must all be > 0"):
        validate_section({"sweep_temperatures": [0.5, 0]}, "char_rnn", CharRNNParams)
    with pytest.raises(ValueError, match=r"prime 'Xy' .*'X'"):
        train_char_rnn(_tiny_cfg(prime="Xy"), np.zeros(100, np.int64), np.zeros(100, np.int64), ["a", "y"],
                       torch.device("cpu"))
    with pytest.raises(ValueError, match="val split has 10 characters"):
        train_char_rnn(_tiny_cfg(), np.zeros(100, np.int64), np.zeros(10, np.int64), ["a", "b"],
                       torch.device("cpu"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small checkpoint trained in-process on the embedded corpus (a few seconds)."""
    from genlab.data.text import PrepareTextParams, build_corpus

    text = build_corpus(PrepareTextParams(max_chars=20_000))
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    path = tmp_path_factory.mktemp("char_rnn_ckpt") / "checkpoint.pt"
    torch.manual_seed(0)
    res = train_char_rnn(_tiny_cfg(max_steps=30, prime="The "), ids[:18_000], ids[18_000:], vocab.chars,
                         torch.device("cpu"), seed=0)
    save_char_rnn(path, res.model, vocab={"chars": list(vocab.chars)}, prime="The ")
    return path


@pytest.mark.slow
def test_stage_end_to_end(stage_dir):
    d = stage_dir
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{d / 'mlflow.db'}"}
    run_stage("prepare_text.py", d, env=env)
    run_stage("train_char_rnn.py", d, env=env)
    metrics = json.loads((d / "metrics" / "char_rnn.json").read_text())
    for key in ("val_loss", "val_bpc", "val_acc", "chars_per_s", "best_step", "steps"):
        assert math.isfinite(metrics[f"char_rnn/{key}"])
    assert metrics["char_rnn/val_bpc"] == pytest.approx(metrics["char_rnn/val_loss"] / math.log(2))
    assert metrics["char_rnn/steps"] == 30
    rows = (d / "plots" / "char_rnn" / "loss.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["step", "train_loss", "val_loss"] and len(rows) == 1 + 3
    generated = (d / "reports" / "char_rnn" / "generated.txt").read_text()
    assert generated.startswith("The ") and len(generated) == 4 + 200
    sweep = (d / "reports" / "char_rnn" / "temperature_sweep.txt").read_text()
    assert [line for line in sweep.splitlines() if line.startswith("=====")] == [
        f"===== temperature {t} =====" for t in (0.4, 0.6, 0.8, 1.0, 1.2, 1.4)]
    ckpt = torch.load(d / "models" / "char_rnn" / "checkpoint.pt", weights_only=True)
    assert ckpt["kind"] == "char_rnn" and ckpt["config"]["hidden"] == 32 and len(ckpt["vocab"]["chars"]) > 50
    # the same metrics dict went to MLflow, with the loss curve
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.stage = 'train_char_rnn'")
    assert len(runs) == 1
    assert runs[0].data.metrics["char_rnn/val_loss"] == pytest.approx(metrics["char_rnn/val_loss"])
    assert len(client.get_metric_history(runs[0].info.run_id, "val_loss")) == 3


def test_genlab_text_streams_from_checkpoint(tiny_checkpoint):
    ckpt = tiny_checkpoint
    args = ["text", "--model", str(ckpt), "--prime", "Pott", "--temperature", "0.8", "--length", "300", "--seed", "1"]
    out = subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Pott") and len(out.stdout) == 4 + 300 + 1
    from genlab.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(args) == 0
    assert buf.getvalue() == out.stdout  # --seed makes it reproducible


def test_genlab_text_rejects_bad_prime_and_temperature(tiny_checkpoint, capsys):
    from genlab.cli import main

    ckpt = str(tiny_checkpoint)
    assert main(["text", "--model", ckpt, "--prime", "Pott\u00e9\u20ac"]) == 2
    captured = capsys.readouterr()
    assert "'\u00e9'" in captured.err and "'\u20ac'" in captured.err and captured.out == ""
    assert main(["text", "--model", ckpt, "--temperature", "0"]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err


class _CountingStdout(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushes = 0

    def flush(self):
        self.flushes += 1


def test_genlab_text_flushes_every_character(tiny_checkpoint, monkeypatch):
    from genlab.cli import text as text_cli

    fake = _CountingStdout()
    monkeypatch.setattr(sys, "stdout", fake)
    args = Namespace(model=str(tiny_checkpoint), prime=None, temperature=1.0,
                     length=50, seed=0, device="cpu", no_echo_prime=True)
    assert text_cli.run(args) == 0
    assert len(fake.getvalue()) == 51 and fake.flushes >= 51  # one flush per character (+ newline)


def test_genlab_text_loads_numpy_model(tmp_path, capsys):
    npmod = pytest.importorskip("genlab.char_rnn_numpy")
    vocab = Vocab("abcd")
    model = npmod.CharRNN(npmod.RNNConfig(vocab_size=4, hidden_size=8), rng=np.random.default_rng(0), vocab=vocab)
    path = model.save(tmp_path / "model.npz")
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "text", "--model", str(path), "--prime", "abc",
                          "--length", "40", "--seed", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("abc") and len(out.stdout) == 3 + 40 + 1 and set(out.stdout.strip()) <= set("abcd")
    from genlab.cli import main

    (tmp_path / "m.txt").write_text("not a model")
    assert main(["text", "--model", str(tmp_path / "m.txt")]) == 2
    assert main(["text", "--model", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "expected .pt (torch) or .npz (NumPy)" in err and "no model at" in err


@gpu
def test_trains_on_cuda_with_bf16(tmp_path):
    text = "hello world. " * 400
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    torch.manual_seed(0)
    res = train_char_rnn(_tiny_cfg(hidden=64, prime="hel"), ids[:4000], ids[4000:], vocab.chars,
                         torch.device("cuda"), seed=0)
    save_char_rnn(tmp_path / "ck.pt", res.model, vocab={"chars": list(vocab.chars)})
    assert next(res.model.parameters()).is_cuda
    assert res.metrics["char_rnn/val_loss"] < 0.7
    model = load_char_rnn(tmp_path / "ck.pt", "cuda")
    assert model.generate(vocab, "hello wor", 5, 0.05, np.random.default_rng(0)) == "ld. h"

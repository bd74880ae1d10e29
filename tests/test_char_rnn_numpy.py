"""The NumPy char-RNN: BPTT against torch autograd, optimizers against their formulas, training,
determinism, persistence, and the stage end to end on tiny params."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, run_stage, tiny_params
from genlab.char_rnn_numpy import SGD, Adam, CharRNN, RMSProp, RNNConfig, clip_gradients, load_model
from genlab.char_rnn_numpy.optim import Adagrad
from genlab.char_rnn_numpy.reference import loss_and_grads_loop
from genlab.char_rnn_numpy.train import BatchStreams, CharRNNNumpyParams, run_char_rnn_numpy, train
from genlab.data.text import PrepareTextParams, Vocab, load_text_data, prepare_text
from genlab.params import ParamsError, validate_section
from genlab.sampling import generate_text

PKG = ROOT / "src" / "genlab" / "char_rnn_numpy"


def torch_loss(params: dict[str, np.ndarray], inputs, targets, h0, num_layers: int):
    """The same model written with torch ops (one-hot input, stacked tanh layers), float64."""
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    V = params["by"].shape[0]
    x, y = torch.as_tensor(inputs), torch.as_tensor(targets)
    hs = [torch.as_tensor(h) for h in h0]
    logits = []
    for t in range(x.shape[1]):
        inp = torch.nn.functional.one_hot(x[:, t], V).double()
        for l in range(num_layers):
            hs[l] = torch.tanh(inp @ tp[f"Wxh{l}"] + hs[l] @ tp[f"Whh{l}"] + tp[f"bh{l}"])
            inp = hs[l]
        logits.append(inp @ tp["Why"] + tp["by"])
    loss = torch.nn.functional.cross_entropy(torch.stack(logits, 1).reshape(-1, V), y.reshape(-1))
    loss.backward()
    return loss.item(), {k: t.grad.numpy() for k, t in tp.items()}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def test_bptt_matches_torch_autograd_float64():
    V, H, L, B, T = 11, 7, 3, 4, 6
    model = CharRNN(RNNConfig(V, H, L, "float64"), rng=np.random.default_rng(3))
    ids = np.random.default_rng(4).integers(0, V, size=(B, 2 * T + 1))
    # a first chunk gives a non-zero carried state for the second (truncated BPTT)
    *_, h = model.loss_and_grads(ids[:, :T], ids[:, 1 : T + 1], model.zero_state(B))
    assert all(np.abs(s).max() > 0.05 for s in h)
    loss, _, grads, h_next = model.loss_and_grads(ids[:, T : 2 * T], ids[:, T + 1 :], h)
    t_loss, t_grads = torch_loss(model.params, ids[:, T : 2 * T], ids[:, T + 1 :], h, L)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert set(grads) == set(t_grads) == set(model.params)
    for name in grads:
        assert grads[name].shape == model.params[name].shape
        assert np.abs(grads[name]).max() > 0, name
        assert rel_err(grads[name], t_grads[name]) <= 1e-6, name
    assert [s.shape for s in h_next] == [(B, H)] * L


def test_batched_bptt_equals_the_min_char_rnn_loop():
    """B = 2 batched gradients are the mean of two one-sequence-at-a-time (reference) gradients."""
    V, H, L, T = 9, 6, 2, 5
    model = CharRNN(RNNConfig(V, H, L, "float64"), rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, V, size=(2, T + 1))
    h0 = [np.random.default_rng(2).standard_normal((2, H)) * 0.3 for _ in range(L)]
    loss, _, grads, h_last = model.loss_and_grads(ids[:, :-1], ids[:, 1:], h0)
    per_seq = [loss_and_grads_loop(model.params, ids[b, :-1], ids[b, 1:], [h[b] for h in h0]) for b in range(2)]
    assert loss == pytest.approx(np.mean([r[0] for r in per_seq]), rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], (per_seq[0][1][name] + per_seq[1][1][name]) / 2, rtol=1e-10, atol=1e-14)
    for l in range(L):
        np.testing.assert_allclose(h_last[l][1], per_seq[1][2][l], rtol=1e-12)


def test_library_never_imports_torch():
    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "torch"], path


# ---------------------------------------------------------------------------------------------
# optimizers and clipping
# ---------------------------------------------------------------------------------------------

P0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, -0.1, 2.0])
G2 = np.array([-0.3, 0.4, 1.0])


def two_steps(opt):
    params = {"w": P0.copy()}
    opt.step(params, {"w": G1.copy()})
    after_one = params["w"].copy()
    opt.step(params, {"w": G2.copy()})
    return after_one, params["w"]


def test_sgd_closed_form():
    one, two = two_steps(SGD(0.1))
    np.testing.assert_allclose(one, P0 - 0.1 * G1)
    np.testing.assert_allclose(two, P0 - 0.1 * G1 - 0.1 * G2)
    one, two = two_steps(SGD(0.1, momentum=0.9))
    np.testing.assert_allclose(two, P0 - 0.1 * G1 - 0.1 * (0.9 * G1 + G2))


def test_rmsprop_closed_form():
    lr, a, eps = 0.01, 0.99, 1e-8
    one, two = two_steps(RMSProp(lr, alpha=a, eps=eps))
    s1 = (1 - a) * G1**2
    np.testing.assert_allclose(one, P0 - lr * G1 / (np.sqrt(s1) + eps))
    s2 = a * s1 + (1 - a) * G2**2
    np.testing.assert_allclose(two, one - lr * G2 / (np.sqrt(s2) + eps))


def test_adam_closed_form_with_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    one, two = two_steps(Adam(lr, b1, b2, eps))
    # step 1: m_hat = g and v_hat = g^2, so every parameter moves by lr * sign(g) (minus eps)
    np.testing.assert_allclose(one, P0 - lr * G1 / (np.abs(G1) + eps))
    m = b1 * (1 - b1) * G1 + (1 - b1) * G2
    v = b2 * (1 - b2) * G1**2 + (1 - b2) * G2**2
    np.testing.assert_allclose(two, one - lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps))


def test_adagrad_closed_form():
    one, two = two_steps(Adagrad(0.1, eps=1e-8))
    np.testing.assert_allclose(one, P0 - 0.1 * G1 / (np.abs(G1) + 1e-8))
    np.testing.assert_allclose(two, one - 0.1 * G2 / (np.sqrt(G1**2 + G2**2) + 1e-8))


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_optimizers_follow_torch_optim_for_ten_steps(name):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(10)]
    ours = {"sgd": SGD(0.05, momentum=0.9), "rmsprop": RMSProp(0.01), "adam": Adam(0.01)}[name]
    tp = torch.nn.Parameter(torch.tensor(p))
    theirs = {"sgd": lambda: torch.optim.SGD([tp], lr=0.05, momentum=0.9),
              "rmsprop": lambda: torch.optim.RMSprop([tp], lr=0.01, alpha=0.99, eps=1e-8),
              "adam": lambda: torch.optim.Adam([tp], lr=0.01, betas=(0.9, 0.999), eps=1e-8)}[name]()
    params = {"w": p.copy()}
    for g in grads:
        ours.step(params, {"w": g.copy()})
        tp.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(params["w"], tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_clip_gradients_elementwise_in_place():
    grads = {"a": np.array([-7.0, -5.0, 0.3, 5.0, 9.0]), "b": np.array([[1.0, -2.0]])}
    frac = clip_gradients(grads, 5.0)
    np.testing.assert_array_equal(grads["a"], [-5.0, -5.0, 0.3, 5.0, 5.0])
    np.testing.assert_array_equal(grads["b"], [[1.0, -2.0]])
    assert frac == pytest.approx(2 / 7)
    with pytest.raises(ValueError, match="clip must be > 0"):
        clip_gradients(grads, 0)


# ---------------------------------------------------------------------------------------------
# streams, training, determinism
# ---------------------------------------------------------------------------------------------

def test_batch_streams_offsets_targets_and_wrap():
    ids = np.arange(41)
    s = BatchStreams(ids, batch_size=4, seq_length=3)  # 10 chars per stream
    x, y, wrapped = s.next()
    assert wrapped and x.shape == (4, 3)
    np.testing.assert_array_equal(x[:, 0], [0, 10, 20, 30])
    np.testing.assert_array_equal(y, x + 1)
    x2, _, wrapped = s.next()
    assert not wrapped
    np.testing.assert_array_equal(x2[:, 0], [3, 13, 23, 33])  # each stream continues its own text
    s.next()
    x4, _, wrapped = s.next()  # 9 + 3 > 10: back to the start, state reset
    assert wrapped and s.epoch == 1
    np.testing.assert_array_equal(x4[:, 0], [0, 10, 20, 30])
    with pytest.raises(ValueError, match="too short for batch_size=8 streams of seq_length=10"):
        BatchStreams(np.arange(50), batch_size=8, seq_length=10)


def repetitive_corpus(n: int = 6000) -> tuple[np.ndarray, Vocab]:
    text = ("hello world, " * (n // 13 + 1))[:n]
    vocab = Vocab.from_text(text)
    return vocab.encode(text), vocab


def tiny_train(seed: int, steps: int = 150):
    ids, vocab = repetitive_corpus()
    model = CharRNN(RNNConfig(vocab.size, 32, 2), rng=np.random.default_rng(seed), vocab=vocab)
    res = train(model, ids[:5000], ids[5000:], Adam(1e-2), batch_size=8, seq_length=16, clip=5.0,
                max_steps=steps, eval_interval=50, log_interval=10)
    return model, res


def test_loss_decreases_and_the_pattern_is_learned():
    model, res = tiny_train(0)
    assert res.losses[0] == pytest.approx(np.log(model.cfg.vocab_size), abs=0.3)
    assert res.val_history[-1]["val_loss"] < 0.1
    assert res.val_history[-1]["val_acc"] > 0.97
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] / 10
    assert res.val_history[-1]["val_loss"] < res.val_history[0]["val_loss"]
    assert res.chars == res.steps * 8 * 16 and res.chars_per_s > 0
    # smoothed loss: min-char-rnn's EMA starting at log(V), lagging behind the raw loss
    assert res.history[-1]["train_loss"] < res.smooth_loss < np.log(model.cfg.vocab_size)
    text = generate_text(model.step, model.initial_state(), model.vocab, "hello", 40, 0.05,
                         np.random.default_rng(0))
    assert text.startswith(" world, hello world,")


def test_same_seed_same_weights_other_seed_other_weights():
    a, ra = tiny_train(1, steps=20)
    b, rb = tiny_train(1, steps=20)
    c, _ = tiny_train(2, steps=20)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert ra.losses == rb.losses
    assert not np.array_equal(a.params["Whh0"], c.params["Whh0"])


def test_time_budget_stops_training():
    ids, _ = repetitive_corpus()
    model = CharRNN(RNNConfig(int(ids.max()) + 1, 16, 1))
    res = train(model, ids, None, Adam(1e-3), batch_size=4, seq_length=8, clip=5.0,
                max_steps=10**9, max_seconds=0.3)
    assert 1 <= res.steps < 10**9 and res.train_seconds >= 0.3


# ---------------------------------------------------------------------------------------------
# persistence and sampling
# ---------------------------------------------------------------------------------------------

def test_save_load_roundtrip_and_step_shapes(tmp_path):
    ids, vocab = repetitive_corpus(200)
    model = CharRNN(RNNConfig(vocab.size, 12, 2), rng=np.random.default_rng(5), vocab=vocab)
    path = model.save(tmp_path / "m" / "model.npz", extra={"steps": 3})
    np.load(path, allow_pickle=False).close()  # no pickles inside
    loaded = load_model(path)
    assert loaded.vocab == vocab and loaded.cfg == model.cfg and loaded.extra == {"steps": 3}
    state = loaded.initial_state()
    assert [s.shape for s in state] == [(12,), (12,)]
    logits, new_state = loaded.step(vocab.index["h"], state)
    assert logits.shape == (vocab.size,) and [s.shape for s in new_state] == [(12,), (12,)]
    assert all(not s.any() for s in state)  # step does not modify its input state
    ref_logits, _ = model.step(vocab.index["h"], model.initial_state())
    np.testing.assert_array_equal(logits, ref_logits)
    # the one-character step agrees with the batched forward
    batch_logits, _ = model.forward(ids[None, :5], model.zero_state(1))
    s = model.initial_state()
    for t in range(5):
        lg, s = model.step(int(ids[t]), s)
    np.testing.assert_allclose(lg, batch_logits[-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'Z'"):
        generate_text(loaded.step, loaded.initial_state(), loaded.vocab, "heZ", 5, 0.8, np.random.default_rng(0))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a genlab NumPy char-RNN model"):
        load_model(tmp_path / "bad.npz")


def test_params_validation_messages():
    with pytest.raises(ParamsError, match=r"char_rnn_numpy.compare_lr: .*unknown optimizer 'lbfgs'"):
        validate_section({"compare_lr": {"lbfgs": 0.1}}, "char_rnn_numpy", CharRNNNumpyParams)
    with pytest.raises(ParamsError, match=r"char_rnn_numpy.hidden_size: must be > 0, got 0"):
        validate_section({"hidden_size": 0}, "char_rnn_numpy", CharRNNNumpyParams)
    with pytest.raises(ParamsError, match=r"temperature must be > 0"):
        validate_section({"sweep_temperatures": [0.5, 0]}, "char_rnn_numpy", CharRNNNumpyParams)
    validate_section(tiny_params()["char_rnn_numpy"], "char_rnn_numpy", CharRNNNumpyParams)


# ---------------------------------------------------------------------------------------------
# the stage end to end (tiny params)
# ---------------------------------------------------------------------------------------------

def prepared_stage_dir(stage_dir: Path) -> Path:
    params = yaml.safe_load((stage_dir / "params.yaml").read_text())
    prepare_text(PrepareTextParams(**params["prepare_text"]), stage_dir / "data" / "text")
    return stage_dir


@pytest.mark.slow
def test_stage_end_to_end_on_tiny_params(stage_dir):
    cwd = prepared_stage_dir(stage_dir)
    cfg = CharRNNNumpyParams(**tiny_params()["char_rnn_numpy"])
    run_stage("train_char_rnn_numpy.py", cwd)
    metrics = json.loads((cwd / "metrics/char_rnn_numpy.json").read_text())
    for key in ("val_loss", "val_bpc", "val_acc", "smooth_loss", "chars_per_s"):
        assert np.isfinite(metrics[f"char_rnn_numpy/{key}"]), key
    assert metrics["char_rnn_numpy/val_bpc"] == pytest.approx(metrics["char_rnn_numpy/val_loss"] / np.log(2))
    assert metrics["char_rnn_numpy/steps"] == cfg.max_steps
    loss_rows = (cwd / "plots/char_rnn_numpy/loss.tsv").read_text().splitlines()
    assert loss_rows[0].split("\t") == ["step", "train_loss", "smooth_loss", "train_acc"]
    opt_rows = (cwd / "plots/char_rnn_numpy/optimizers.tsv").read_text().splitlines()
    assert opt_rows[0].split("\t") == ["step", "sgd", "rmsprop", "adam"]
    assert len(opt_rows) == cfg.compare_steps + 1
    assert (cwd / "reports/char_rnn_numpy/optimizers.png").stat().st_size > 1000
    generated = (cwd / "reports/char_rnn_numpy/generated.txt").read_text()
    assert generated.startswith(cfg.prime) and len(generated) == len(cfg.prime) + cfg.length + 1
    sweep = (cwd / "reports/char_rnn_numpy/temperature_sweep.txt").read_text()
    assert sweep.count("=== temperature") == len(cfg.sweep_temperatures)
    model = load_model(cwd / "models/char_rnn_numpy/model.npz")
    assert model.cfg.hidden_size == cfg.hidden_size and model.vocab.size == model.cfg.vocab_size
    assert model.extra["steps"] == cfg.max_steps


def test_same_params_same_metrics_and_text(tmp_path):
    """The stage's library call twice on the same data and params: same numbers, same samples."""
    params = tiny_params()
    prepare_text(PrepareTextParams(**params["prepare_text"]), tmp_path)
    train_ids, val_ids, vocab = load_text_data(tmp_path)
    cfg = CharRNNNumpyParams(**{**params["char_rnn_numpy"], "max_steps": 10, "compare_steps": 3,
                                "length": 50, "sweep_length": 20})
    a, b = (run_char_rnn_numpy(train_ids, val_ids, vocab, cfg.model_copy(update={"compare_in_parallel": p}), seed=7)
            for p in (True, False))  # the comparison in a second process, then in this one: the same numbers
    timing = ("chars_per_s", "train_seconds")
    assert {k: v for k, v in a.metrics.items() if not k.endswith(timing)} == \
        {k: v for k, v in b.metrics.items() if not k.endswith(timing)}
    assert a.generated == b.generated and a.temperature_sweep == b.temperature_sweep
    assert list(a.comparison) == ["sgd", "rmsprop", "adam"]
    assert [r.losses for r in a.comparison.values()] == [r.losses for r in b.comparison.values()]


@pytest.mark.slow
def test_stage_errors_are_clear(stage_dir):
    proc = run_stage("train_char_rnn_numpy.py", stage_dir, check=False)  # no data/text yet
    assert proc.returncode == 1 and "data/text/meta.json is missing: run `dvc repro prepare_text`" in proc.stderr
    params = tiny_params(char_rnn_numpy={"prime": "caf\u00e9 "})
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(params))
    prepared_stage_dir(stage_dir)
    proc = run_stage("train_char_rnn_numpy.py", stage_dir, check=False)
    assert proc.returncode == 1 and "char_rnn_numpy.prime" in proc.stderr and "'\u00e9'" in proc.stderr
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(tiny_params(char_rnn_numpy={"optimizer": "lbfgs"})))
    proc = run_stage("train_char_rnn_numpy.py", stage_dir, check=False)
    assert proc.returncode == 2 and "char_rnn_numpy.optimizer: must be one of" in proc.stderr


def test_the_optimizer_comparison_runs_in_a_second_process(tmp_path, monkeypatch):
    """compare_in_parallel: the comparison is computed by another process (this one's
    compare_optimizers is broken and not called); off, this process computes it."""
    import genlab.char_rnn_numpy.train as numpy_train

    params = tiny_params()
    prepare_text(PrepareTextParams(**params["prepare_text"]), tmp_path)
    train_ids, val_ids, vocab = load_text_data(tmp_path)
    cfg = CharRNNNumpyParams(**{**params["char_rnn_numpy"], "max_steps": 5, "compare_steps": 3,
                                "length": 10, "sweep_length": 5})

    def broken(*args, **kwargs):
        raise AssertionError("compare_optimizers ran in the training process")

    monkeypatch.setattr(numpy_train, "compare_optimizers", broken)
    out = run_char_rnn_numpy(train_ids, val_ids, vocab, cfg, seed=3)
    assert list(out.comparison) == ["sgd", "rmsprop", "adam"] and all(r.steps == 3 for r in out.comparison.values())
    with pytest.raises(AssertionError, match="ran in the training process"):
        run_char_rnn_numpy(train_ids, val_ids, vocab, cfg.model_copy(update={"compare_in_parallel": False}), seed=3)

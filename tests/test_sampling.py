"""Shared sampling: temperature semantics, primed generation, errors."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.data.text import Vocab
from genlab.sampling import generate_text, sample_next, softmax

LOGITS = np.array([0.5, 2.0, 1.9, -1.0, 0.0])


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([1000.0, 1001.0, -1000.0]))
    assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-12 and p[1] > p[0] > p[2]


def test_very_low_temperature_is_argmax():
    rng = np.random.default_rng(0)
    draws = [sample_next(LOGITS, 1e-3, rng) for _ in range(500)]
    assert set(draws) == {int(np.argmax(LOGITS))}


def test_temperature_one_matches_model_distribution():
    rng = np.random.default_rng(1)
    n = 20_000
    counts = np.bincount([sample_next(LOGITS, 1.0, rng) for _ in range(n)], minlength=5)
    p = softmax(LOGITS)
    # 5 standard errors of a binomial proportion
    assert np.all(np.abs(counts / n - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_large_temperature_approaches_uniform():
    rng = np.random.default_rng(2)
    n = 20_000
    logits = np.array([8.0, 0.0, -3.0, 1.0, 2.0, 0.0])
    counts = np.bincount([sample_next(logits, 1e4, rng) for _ in range(n)], minlength=6)
    # chi-square against uniform, 5 dof: p = 0.001 critical value 20.5
    expected = n / 6
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 20.5
    # and at T=1 the same logits are far from uniform
    counts1 = np.bincount([sample_next(logits, 1.0, rng) for _ in range(2000)], minlength=6)
    assert counts1[0] > 0.9 * 2000


@pytest.mark.parametrize("t", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_temperature_rejected(t):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample_next(LOGITS, t, np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate_text(lambda c, s: (LOGITS, s), None, Vocab("abcde"), "a", 3, t, np.random.default_rng(0))


VOCAB = Vocab("abcdefgh")


def copy_step(char_id: int, state):
    """A toy model whose next char is the one seen 2 steps before; state = last two ids."""
    prev = (state or (0, 0))
    new = (prev[1], char_id)
    logits = np.full(VOCAB.size, -50.0)
    logits[new[0]] = 50.0
    return logits, new


def test_prime_warms_state_and_is_honoured():
    rng = np.random.default_rng(0)
    streamed = []
    out = generate_text(copy_step, None, VOCAB, "hcab", 7, 0.5, rng, on_char=streamed.append)
    # state after the prime is (a, b): the model continues the period-2 pattern the prime set up
    assert out == "ababab" + "a"
    assert "".join(streamed) == out and len(out) == 7
    out2 = generate_text(copy_step, None, VOCAB, "gfeh", 4, 0.5, rng)
    assert out2 == "ehe" + "h"


def test_state_is_threaded_through_every_prime_char():
    seen = []

    def step(cid, state):
        seen.append((cid, state))
        return np.zeros(VOCAB.size), state + 1

    generate_text(step, 0, VOCAB, "abc", 3, 1.0, np.random.default_rng(0))
    assert [s for _, s in seen] == [0, 1, 2, 3, 4]  # 3 prime steps + 2 steps for 3 sampled chars
    assert [c for c, _ in seen[:3]] == [0, 1, 2]


def test_prime_outside_vocab_names_the_chars():
    with pytest.raises(ValueError, match=r"prime 'Pott!'.*'P'.*'o'.*'t'.*'!'"):
        generate_text(copy_step, None, VOCAB, "Pott!", 5, 0.8, np.random.default_rng(0))


def test_same_seed_same_text():
    def step(cid, state):
        return np.sin(np.arange(VOCAB.size) * (cid + 1)), state

    a = generate_text(step, None, VOCAB, "ab", 200, 1.0, np.random.default_rng(7))
    b = generate_text(step, None, VOCAB, "ab", 200, 1.0, np.random.default_rng(7))
    c = generate_text(step, None, VOCAB, "ab", 200, 1.0, np.random.default_rng(8))
    assert a == b and a != c and len(a) == 200


def test_genlab_text_on_a_numpy_model_defaults_to_its_training_prime(tmp_path):
    """`genlab text` without --prime uses the prime the stage saved (extra["params"]["prime"])."""
    import subprocess
    import sys

    from genlab.char_rnn_numpy import CharRNN, RNNConfig
    from genlab.char_rnn_numpy.train import CharRNNNumpyParams
    from genlab.cli.text import load_text_model

    vocab = Vocab("abcd ")
    model = CharRNN(RNNConfig(vocab_size=5, hidden_size=8), rng=np.random.default_rng(0), vocab=vocab)
    cfg = CharRNNNumpyParams(prime="dcb a")
    path = model.save(tmp_path / "model.npz", extra={"params": cfg.model_dump(mode="json"), "steps": 0})  # as the stage does
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "text", "--model", str(path), "--length", "30", "--seed", "3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = load_text_model(path)
    assert loaded.prime == "dcb a"
    expected = generate_text(loaded.step, loaded.state, loaded.vocab, "dcb a", 30, 0.8, np.random.default_rng(3))
    assert out.stdout == "dcb a" + expected + "\n"

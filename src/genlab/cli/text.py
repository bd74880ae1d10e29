"""`genlab text`: generate text from a trained char-RNN, streamed to the terminal.

The model file decides the implementation: ``.pt`` is a torch checkpoint written by the
`train_char_rnn` stage (``models/char_rnn/checkpoint.pt``), ``.npz`` the NumPy model of
`train_char_rnn_numpy` (``models/char_rnn_numpy/model.npz``). Both go through the same
sampler (:func:`genlab.sampling.generate_text`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from genlab.sampling import check_temperature, generate_text

HELP = "generate text from a trained char-RNN (.pt torch or .npz NumPy), streamed as it is sampled"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="models/char_rnn/checkpoint.pt",
                   help="models/char_rnn/checkpoint.pt (torch) or models/char_rnn_numpy/model.npz (NumPy)")
    p.add_argument("--prime", default=None,
                   help="text that warms the hidden state and starts the output (default: the prime the model was trained with)")
    p.add_argument("--temperature", type=float, default=0.8, help="> 0; 1.0 samples the model's distribution, lower is more conservative")
    p.add_argument("--length", type=int, default=1000, help="characters to generate after the prime")
    p.add_argument("--seed", type=int, default=None, help="make the output reproducible")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="torch models only")
    p.add_argument("--no-echo-prime", action="store_true", help="print only the generated characters")


class _Loaded:
    """What the sampler needs: step, initial state, vocabulary, and the training prime."""

    def __init__(self, step: Any, state: Any, vocab: Any, prime: str):
        self.step, self.state, self.vocab, self.prime = step, state, vocab, prime


def numpy_training_prime(extra: dict | None) -> str:
    """The prime a NumPy model was trained with: the `train_char_rnn_numpy` stage saves its
    params section under ``extra["params"]`` (``prime`` among them); "" when absent."""
    params = (extra or {}).get("params")
    prime = params.get("prime", "") if isinstance(params, dict) else ""
    return prime if isinstance(prime, str) else ""


def load_text_model(path: str | Path, device: str = "cpu") -> _Loaded:
    """Load a char-RNN by file suffix: ``.pt`` torch, ``.npz`` NumPy."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path} (train one with `dvc repro train_char_rnn` or `train_char_rnn_numpy`)")
    if path.suffix == ".npz":
        from genlab.char_rnn_numpy import load_model

        model = load_model(path)
        if model.vocab is None:
            raise ValueError(f"{path} holds no vocabulary; it cannot generate text")
        return _Loaded(model.step, model.initial_state(), model.vocab, numpy_training_prime(getattr(model, "extra", None)))
    if path.suffix == ".pt":
        from genlab.data.text import Vocab
        from genlab.runtime import resolve_device
        from genlab.models.char_rnn import load as load_char_rnn

        import torch

        # one character at a time: tiny matmuls gain nothing from threads, and on busy cores
        # extra threads slow every step down many times over
        torch.set_num_threads(1)
        model = load_char_rnn(path, resolve_device(device))
        return _Loaded(model.step, None, Vocab(model.vocab_chars), model.prime)
    raise ValueError(f"unknown model file type {path.suffix!r} for {path}: expected .pt (torch) or .npz (NumPy)")


def run(args: argparse.Namespace) -> int:
    check_temperature(args.temperature)
    if args.length < 0:
        raise ValueError(f"--length must be >= 0, got {args.length}")
    loaded = load_text_model(args.model, args.device)
    prime = loaded.prime if args.prime is None else args.prime
    rng = np.random.default_rng(args.seed)
    out = sys.stdout

    def emit(c: str) -> None:
        out.write(c)
        out.flush()

    try:
        if prime:
            try:  # an unknown character is an error before anything is printed
                loaded.vocab.encode(prime)
            except ValueError as exc:
                raise ValueError(f"--prime {prime!r}: {exc}") from None
        if not args.no_echo_prime:
            emit(prime)
        generate_text(loaded.step, loaded.state, loaded.vocab, prime, args.length, args.temperature, rng, on_char=emit)
        emit("\n")
    except BrokenPipeError:  # `genlab text ... | head` closed the pipe: not an error
        sys.stderr.close()
    return 0

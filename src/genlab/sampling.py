"""Temperature sampling and primed generation shared by the NumPy and the torch char-RNN.

NumPy only (never imports torch): a model plugs in through a `step` function
``step(char_id: int, state) -> (logits: np.ndarray of shape (V,), new_state)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from genlab.errors import InputError

StepFn = Callable[[int, Any], tuple[np.ndarray, Any]]


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise InputError(f"temperature must be > 0 (1.0 samples the model's distribution), got {temperature!r}")
    return t


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax of ``logits / temperature`` in float64, shape (V,)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1) / check_temperature(temperature)
    z = z - z.max()
    p = np.exp(z)
    return p / p.sum()


def sample_next(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Draw one id from ``softmax(logits / temperature)``.

    T -> 0 approaches argmax, T = 1 is the model's distribution, T -> inf approaches uniform.
    """
    p = softmax(logits, temperature)
    # inverse-CDF draw: one uniform per character, so a seed gives the same text on every platform
    idx = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
    return min(idx, p.size - 1)


def generate_text(
    step: StepFn,
    state: Any,
    vocab: Any,
    prime: str,
    length: int,
    temperature: float,
    rng: np.random.Generator,
    on_char: Callable[[str], None] | None = None,
) -> str:
    """Warm `state` on every character of `prime`, then sample `length` characters.

    Returns the generated characters only (not the prime). `on_char(c)` is called as each
    character is produced (streaming to a terminal). A prime character outside `vocab`
    (anything with ``.encode(str)`` and ``.chars``) is a ValueError naming it; an empty prime
    starts from a uniformly drawn character of the vocabulary.
    """
    check_temperature(temperature)
    if length < 0:
        raise InputError(f"length must be >= 0, got {length}")
    if prime:
        try:
            prime_ids = vocab.encode(prime)
        except ValueError as exc:
            raise InputError(f"prime {prime!r}: {exc}") from None
    else:
        prime_ids = np.array([int(rng.integers(len(vocab.chars)))], dtype=np.int64)
    logits = None
    for cid in prime_ids:
        logits, state = step(int(cid), state)
    out: list[str] = []
    for i in range(length):
        cid = sample_next(logits, temperature, rng)
        c = vocab.chars[cid]
        out.append(c)
        if on_char is not None:
            on_char(c)
        if i + 1 < length:
            logits, state = step(cid, state)
    return "".join(out)

"""A vanilla character-level RNN in NumPy: forward, backpropagation through time, sampling step.

The model (row-vector convention, ``L`` stacked tanh layers, one-hot input, softmax output)::

    h^0_t = tanh(onehot(x_t) @ Wxh0 + h^0_{t-1} @ Whh0 + bh0)        # (B, H)
    h^l_t = tanh(h^{l-1}_t  @ Wxhl + h^l_{t-1}  @ Whhl + bhl)        # l = 1..L-1
    p_t   = softmax(h^{L-1}_t @ Why + by)                            # (B, V)

trained on the mean cross-entropy (nats/char) of a (B, T) chunk: B parallel streams of T
characters each, with the hidden state carried from chunk to chunk but gradients stopped at
the chunk boundary (truncated BPTT, as in Karpathy's min-char-rnn). Everything is vectorised
over the batch; only the recurrence itself loops over the T time steps, and every input and
output projection is one matrix product over all B*T positions.

`onehot(x) @ Wxh0` is computed as the row gather ``Wxh0[x]`` (same numbers, no V-wide one-hot).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genlab.errors import InputError
from genlab.runtime import atomic_path

Params = dict[str, np.ndarray]
FORMAT = "genlab.char_rnn_numpy/1"


@dataclass(frozen=True)
class RNNConfig:
    """The architecture: everything needed to rebuild the parameter shapes."""

    vocab_size: int
    hidden_size: int = 128
    num_layers: int = 1
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


@dataclass
class ForwardCache:
    """What the backward pass needs from the forward pass of one (B, T) chunk."""

    inputs: np.ndarray  # (T, B) int64 ids
    hs: list[np.ndarray]  # per layer (T+1, B, H); hs[l][0] is the carried-in state
    probs: np.ndarray  # (T*B, V) softmax output


def param_names(num_layers: int) -> list[str]:
    names = []
    for l in range(num_layers):
        names += [f"Wxh{l}", f"Whh{l}", f"bh{l}"]
    return names + ["Why", "by"]


def init_params(cfg: RNNConfig, rng: np.random.Generator) -> Params:
    """Xavier/Glorot-normal weights (std = sqrt(2 / (fan_in + fan_out))), zero biases.

    Drawn in float64 from `rng` and then cast, so a float32 and a float64 model from the
    same seed hold the same numbers (up to rounding).
    """
    V, H, dt = cfg.vocab_size, cfg.hidden_size, np.dtype(cfg.dtype)

    def xavier(fan_in: int, fan_out: int) -> np.ndarray:
        return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dt)

    params: Params = {}
    for l in range(cfg.num_layers):
        params[f"Wxh{l}"] = xavier(V if l == 0 else H, H)  # (V or H, H)
        params[f"Whh{l}"] = xavier(H, H)  # (H, H)
        params[f"bh{l}"] = np.zeros(H, dtype=dt)
    params["Why"] = xavier(H, V)  # (H, V)
    params["by"] = np.zeros(V, dtype=dt)
    return params


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class CharRNN:
    """A vanilla multi-layer tanh RNN over characters, with hand-written BPTT.

    `params` maps names (`Wxh0, Whh0, bh0, ..., Why, by`) to arrays; optimizers update them in
    place. `vocab` (optional) is the `genlab.data.text.Vocab` the ids index into.
    """

    def __init__(self, cfg: RNNConfig, params: Params | None = None, *, rng: np.random.Generator | None = None,
                 vocab: Any = None):
        self.cfg = cfg
        if params is None:
            params = init_params(cfg, rng if rng is not None else np.random.default_rng(0))
        expected = {n: self._shape(n) for n in param_names(cfg.num_layers)}
        if set(params) != set(expected):
            raise ValueError(f"parameters {sorted(params)} do not match the architecture {sorted(expected)}")
        for name, shape in expected.items():
            if params[name].shape != shape:
                raise ValueError(f"parameter {name} has shape {params[name].shape}, expected {shape}")
        self.params: Params = {n: np.ascontiguousarray(params[n], dtype=cfg.dtype) for n in expected}
        self.vocab = vocab

    def _shape(self, name: str) -> tuple[int, ...]:
        V, H = self.cfg.vocab_size, self.cfg.hidden_size
        if name == "Why":
            return (H, V)
        if name == "by":
            return (V,)
        if name.startswith("Wxh"):
            return (V if name == "Wxh0" else H, H)
        return (H, H) if name.startswith("Whh") else (H,)  # Whh<l> or bh<l>

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.cfg.dtype)

    @property
    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # ---------------------------------------------------------------------------------------
    # training: forward + backward over a (B, T) chunk
    # ---------------------------------------------------------------------------------------

    def zero_state(self, batch_size: int) -> list[np.ndarray]:
        """One (B, H) zero hidden state per layer."""
        return [np.zeros((batch_size, self.cfg.hidden_size), dtype=self.dtype) for _ in range(self.cfg.num_layers)]

    def forward(self, inputs: np.ndarray, h0: list[np.ndarray]) -> tuple[np.ndarray, ForwardCache]:
        """Logits (T*B, V) for `inputs` (B, T) ids starting from the states `h0` (per layer (B, H))."""
        p, H = self.params, self.cfg.hidden_size
        x = np.ascontiguousarray(np.asarray(inputs).T)  # (B, T) -> (T, B), time-major
        T, B = x.shape
        hs_all: list[np.ndarray] = []
        below = None
        for l in range(self.cfg.num_layers):
            # input projection of all T*B positions at once (the gather is onehot @ Wxh0)
            if l == 0:
                a = p["Wxh0"][x]  # (T, B) -> (T, B, H)
            else:
                a = (below.reshape(T * B, H) @ p[f"Wxh{l}"]).reshape(T, B, H)  # (T*B, H) @ (H, H)
            a += p[f"bh{l}"]
            hs = np.empty((T + 1, B, H), dtype=self.dtype)  # hs[0] = carried-in state
            hs[0] = h0[l]
            whh = p[f"Whh{l}"]
            for t in range(T):  # the recurrence: (B, H) @ (H, H) per step
                np.tanh(a[t] + hs[t] @ whh, out=hs[t + 1])
            hs_all.append(hs)
            below = hs[1:]  # (T, B, H)
        logits = below.reshape(T * B, H) @ p["Why"] + p["by"]  # (T*B, H) @ (H, V) -> (T*B, V)
        return logits, ForwardCache(inputs=x, hs=hs_all, probs=np.empty(0, dtype=self.dtype))

    @staticmethod
    def final_state(cache: ForwardCache) -> list[np.ndarray]:
        """The hidden state after the chunk, per layer (B, H): the next chunk's `h0`."""
        return [hs[-1].copy() for hs in cache.hs]

    def loss_and_grads(
        self, inputs: np.ndarray, targets: np.ndarray, h0: list[np.ndarray]
    ) -> tuple[float, float, Params, list[np.ndarray]]:
        """Mean cross-entropy (nats/char) and accuracy of a (B, T) chunk, the gradients of that
        mean loss w.r.t. every parameter (BPTT within the chunk), and the final hidden state."""
        logits, cache = self.forward(inputs, h0)
        y = np.ascontiguousarray(np.asarray(targets).T).reshape(-1)  # (B, T) -> (T*B,), time-major
        logp = log_softmax(logits)  # (T*B, V)
        n = y.size
        rows = np.arange(n)
        loss = float(-logp[rows, y].mean())
        acc = float((logits.argmax(axis=1) == y).mean())
        cache.probs = np.exp(logp)
        grads = self.backward(cache, y)
        return loss, acc, grads, self.final_state(cache)

    def backward(self, cache: ForwardCache, y: np.ndarray) -> Params:
        """Gradients of the mean cross-entropy over the chunk; `y` (T*B,) time-major targets."""
        p, H, L = self.params, self.cfg.hidden_size, self.cfg.num_layers
        T, B = cache.inputs.shape
        n = T * B
        grads: Params = {}
        dlogits = cache.probs  # (T*B, V), reused in place: d(mean CE)/dlogits = (p - onehot(y)) / n
        dlogits[np.arange(n), y] -= 1.0
        dlogits /= n
        top = cache.hs[-1][1:].reshape(n, H)  # (T*B, H)
        grads["Why"] = top.T @ dlogits  # (H, T*B) @ (T*B, V) -> (H, V)
        grads["by"] = dlogits.sum(axis=0)
        dh_above = (dlogits @ p["Why"].T).reshape(T, B, H)  # dL/dh of the top layer, (T, B, H)
        for l in reversed(range(L)):
            hs = cache.hs[l]
            dtanh = 1.0 - hs[1:] * hs[1:]  # (T, B, H)
            whh_t = np.ascontiguousarray(p[f"Whh{l}"].T)
            da = np.empty((T, B, H), dtype=self.dtype)  # dL/d(pre-activation)
            dh_next = np.zeros((B, H), dtype=self.dtype)  # truncated: nothing flows in from after the chunk
            for t in reversed(range(T)):
                np.multiply(dh_above[t] + dh_next, dtanh[t], out=da[t])
                dh_next = da[t] @ whh_t  # (B, H) @ (H, H)
            da_flat = da.reshape(n, H)
            grads[f"Whh{l}"] = hs[:-1].reshape(n, H).T @ da_flat  # (H, T*B) @ (T*B, H)
            grads[f"bh{l}"] = da_flat.sum(axis=0)
            if l > 0:
                below = cache.hs[l - 1][1:].reshape(n, H)
                grads[f"Wxh{l}"] = below.T @ da_flat
                dh_above = (da_flat @ p[f"Wxh{l}"].T).reshape(T, B, H)
            else:
                # d/dWxh0 of the gather Wxh0[x]: a scatter-add of the rows of da by input id,
                # done as onehot(x).T @ da (one BLAS call, far faster than np.add.at)
                onehot = np.zeros((n, self.cfg.vocab_size), dtype=self.dtype)
                onehot[np.arange(n), cache.inputs.reshape(-1)] = 1.0
                grads["Wxh0"] = onehot.T @ da_flat  # (V, T*B) @ (T*B, H) -> (V, H)
        return {name: grads[name] for name in param_names(L)}

    def evaluate(self, ids: np.ndarray, batch_size: int, seq_length: int,
                 max_chars: int | None = None) -> tuple[float, float]:
        """Mean loss (nats/char) and accuracy over `ids` (or its first `max_chars`), read as
        `batch_size` parallel streams in chunks of `seq_length` with the state carried."""
        ids = np.asarray(ids)
        if max_chars is not None:
            ids = ids[: max_chars + 1]
        batch_size = max(1, min(batch_size, (len(ids) - 1) // max(seq_length, 1)))
        seg = (len(ids) - 1) // batch_size  # characters per stream
        if seg < 1:
            raise InputError(f"cannot evaluate on {len(ids)} characters: need at least 2")
        starts = np.arange(batch_size)[:, None] * seg  # (B, 1)
        h = self.zero_state(batch_size)
        total_loss, total_correct, count = 0.0, 0, 0
        for pos in range(0, seg, seq_length):
            T = min(seq_length, seg - pos)
            idx = starts + pos + np.arange(T)  # (B, T)
            logits, cache = self.forward(ids[idx], h)
            y = ids[idx + 1].T.reshape(-1)  # (T*B,) time-major
            logp = log_softmax(logits)
            total_loss += float(-logp[np.arange(y.size), y].sum())
            total_correct += int((logits.argmax(axis=1) == y).sum())
            count += y.size
            h = self.final_state(cache)
        return total_loss / count, total_correct / count

    # ---------------------------------------------------------------------------------------
    # generation: one character at a time (the `step` contract of genlab.sampling)
    # ---------------------------------------------------------------------------------------

    def initial_state(self) -> list[np.ndarray]:
        """The zero state of a single stream: one (H,) vector per layer."""
        return [np.zeros(self.cfg.hidden_size, dtype=self.dtype) for _ in range(self.cfg.num_layers)]

    def step(self, char_id: int, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed one character id: (logits (V,), the new state). Does not modify `state`."""
        p = self.params
        if not 0 <= int(char_id) < self.cfg.vocab_size:
            raise ValueError(f"char id must be in [0, {self.cfg.vocab_size}), got {char_id}")
        x = p["Wxh0"][int(char_id)]  # (H,) = onehot @ Wxh0
        new_state = []
        for l in range(self.cfg.num_layers):
            if l > 0:
                x = x @ p[f"Wxh{l}"]
            h = np.tanh(x + state[l] @ p[f"Whh{l}"] + p[f"bh{l}"])  # (H,)
            new_state.append(h)
            x = h
        return x @ p["Why"] + p["by"], new_state  # (V,)

    # ---------------------------------------------------------------------------------------
    # persistence: one self-describing .npz (weights, config JSON, vocabulary), no pickles
    # ---------------------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write weights, the architecture, `extra` (e.g. training params, step) and the
        vocabulary to `path` (.npz) atomically; it loads with ``allow_pickle=False``."""
        meta = {"format": FORMAT, "config": asdict(self.cfg), "extra": extra or {}}
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
        if self.vocab is not None:
            arrays["vocab_json"] = np.array(json.dumps({"chars": list(self.vocab.chars)}))
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path


def load_model(path: str | Path) -> CharRNN:
    """Rebuild a :class:`CharRNN` (with `.vocab`) from a file written by :meth:`CharRNN.save`."""
    from genlab.data.text import Vocab

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NumPy char-RNN model at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"]))
            params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
            vocab = Vocab.from_json(json.loads(str(data["vocab_json"]))) if "vocab_json" in data.files else None
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not a genlab NumPy char-RNN model: {exc}") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    model = CharRNN(RNNConfig(**meta["config"]), params, vocab=vocab)
    model.extra = meta.get("extra", {})
    return model

"""Character-level recurrent language model in torch: RNN, LSTM or GRU cells.

``ids (B, T) -> input (embedding or one-hot) -> stacked recurrent cell -> dropout -> linear ->
logits (B, T, V)``, trained with next-character cross-entropy (nats/char). Like Karpathy's
char-rnn (2015), with a learned embedding as an option instead of the one-hot input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import ModelConfig, bounds, load_model, save_model
from genlab.sampling import generate_text

KIND = "char_rnn"

State = Any  # h (L, B, H) for rnn/gru, (h, c) for lstm


@dataclass
class Config(ModelConfig):
    """Everything needed to rebuild the model (stored in the checkpoint as a plain dict)."""

    vocab_size: int = field(default=96, metadata=bounds(gt=0))
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    layers: int = field(default=2, metadata=bounds(ge=1, le=8))
    hidden: int = field(default=256, metadata=bounds(gt=0))
    dropout: float = field(default=0.0, metadata=bounds(ge=0, lt=1))  # between layers and before the output layer
    input: Literal["embedding", "onehot"] = "embedding"
    embed_dim: int = field(default=64, metadata=bounds(gt=0))  # input: embedding only

    def check(self) -> None:
        self.only_for("input", {"embed_dim": ("embedding",)})


_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class CharRNN(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        if cfg.input == "embedding":
            self.embed: nn.Module | None = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
            in_dim = cfg.embed_dim
        else:
            self.embed = None
            in_dim = cfg.vocab_size
        extra = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
        self.rnn = _CELLS[cfg.cell](
            in_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0, **extra,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def _inputs(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(ids)  # (B, T) -> (B, T, E)
        # (B, T) -> (B, T, V); the dtype follows the weights (autocast casts it for the matmuls)
        return F.one_hot(ids, self.cfg.vocab_size).to(self.head.weight.dtype)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) int64 -> logits (B, T, V), new state (same layout as `state`)."""
        x = self._inputs(ids)
        # The recurrence runs in float32 even under bf16 autocast: cuDNN's RNN kernels accept
        # bf16 only in recent releases (older ones fail with "not implemented for 'BFloat16'"),
        # and the long sum over time steps is where low precision hurts most. The input and
        # output projections still run in bf16.
        with torch.autocast(device_type=ids.device.type, enabled=False):
            out, state = self.rnn(x.float(), state)  # (B, T, in) -> (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, H) -> (B, T, V)

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-character cross-entropy in nats/char; logits (B, T, V), targets (B, T)."""
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))

    def initial_state(self, batch: int = 1, device: torch.device | str | None = None) -> State:
        device = device or self.head.weight.device
        h = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device)  # (L, B, H)
        return (h, h.clone()) if self.cfg.cell == "lstm" else h

    @staticmethod
    def detach_state(state: State) -> State:
        if state is None:
            return None
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    @torch.no_grad()
    def step(self, char_id: int, state: State | None) -> tuple[np.ndarray, State]:
        """One character in, (logits (V,) as float64 NumPy, new state) out: the `step` that
        :func:`genlab.sampling.generate_text` drives."""
        ids = torch.tensor([[char_id]], dtype=torch.long, device=self.head.weight.device)  # (1, 1)
        logits, state = self(ids, state)  # (1, 1, V)
        return logits[0, -1].double().cpu().numpy(), state

    @torch.no_grad()
    def generate(self, vocab: Any, prime: str, length: int, temperature: float, rng: np.random.Generator,
                 on_char: Callable[[str], None] | None = None) -> str:
        """Warm the state on `prime`, then sample `length` characters at `temperature`."""
        was_training = self.training
        self.eval()
        try:
            return generate_text(self.step, None, vocab, prime, length, temperature, rng, on_char)
        finally:
            self.train(was_training)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build(config: Config) -> CharRNN:
    return CharRNN(config)


def save(path: str | Path, model: CharRNN, **extra: Any) -> Path:
    """A self-describing checkpoint: config, weights and `extra`; the stage stores the vocabulary
    (``vocab={"chars": [...]}``) and the training prime there, so the file generates text alone."""
    return save_model(path, KIND, model.cfg, {"model": model}, **extra)


def load(path: str | Path, device: str | torch.device = "cpu") -> CharRNN:
    """The model of a ``train_char_rnn`` checkpoint, in eval mode, with ``vocab_chars`` (the
    vocabulary's characters, by id) and ``prime`` (the text training sampled from) attached."""
    model, ckpt = load_model(path, KIND, Config, build, {"model": lambda m: m})
    model.vocab_chars = list((ckpt.get("vocab") or {}).get("chars") or [])
    model.prime = str(ckpt.get("prime") or "")
    return model.to(device).eval()

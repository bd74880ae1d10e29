"""Training loop of the torch char-RNN: AdamW, gradient clipping, random-offset batches,
periodic validation with the best checkpoint kept, a step and a wall-time budget.

Validation runs the model over contiguous streams of the validation ids with the hidden
state carried from chunk to chunk (as char-rnn evaluates), so every character is predicted
with its full left context rather than from a cold state at each window start.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from genlab.checkpoint import load_checkpoint, rng_state, save_checkpoint
from genlab.models.char_rnn import CharRNN, CharRNNConfig, build_model
from genlab.params import StrictModel
from genlab.runtime import log, progress

KIND = "char_rnn"


class CharRNNParams(StrictModel):
    """The `char_rnn` section of params.yaml."""

    # model
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    layers: int = Field(2, ge=1, le=8)
    hidden: int = Field(256, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    input: Literal["embedding", "onehot"] = "embedding"
    embed_dim: int = Field(64, gt=0)
    # optimisation
    seq_len: int = Field(64, ge=2)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)  # max global gradient norm
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: to lr/10 at max_steps
    max_steps: int = Field(1000, gt=0)
    max_seconds: float | None = Field(None, gt=0)  # wall-time budget of the loop (evals included)
    eval_interval: int = Field(100, gt=0)
    eval_chars: int | None = Field(32768, gt=0)  # val chars per periodic eval (null: all); the final eval uses all
    eval_streams: int = Field(32, gt=0)  # contiguous val streams evaluated in parallel
    # CPU threads for torch (null: torch's default, one per core); 1 is much faster when other
    # jobs share the cores (a `dvc queue start -j 2`, the test suite)
    threads: int | None = Field(1, gt=0)
    # sampling
    prime: str = "The "
    temperature: float = Field(0.8, gt=0)
    length: int = Field(1000, ge=0)
    sweep_temperatures: list[float] = [0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    sweep_length: int = Field(500, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "CharRNNParams":
        if any(not (t > 0) for t in self.sweep_temperatures):
            raise ValueError(f"sweep_temperatures must all be > 0, got {self.sweep_temperatures}")
        return self

    def model_config_dict(self, vocab_size: int) -> dict[str, Any]:
        keys = ("cell", "layers", "hidden", "dropout", "input", "embed_dim")
        return CharRNNConfig(vocab_size=vocab_size, **{k: getattr(self, k) for k in keys}).model_dump()


@dataclass
class CharRNNResult:
    model: CharRNN
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def random_batch(ids: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` windows at uniform random offsets: inputs (B, T) and next-char targets (B, T)."""
    starts = torch.randint(0, ids.numel() - seq_len, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(seq_len + 1)  # (B, T + 1)
    chunk = ids[idx]
    return chunk[:, :-1], chunk[:, 1:]


def autocast(device: torch.device):
    """bf16 autocast on CUDA only; a no-op context on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(model: CharRNN, ids: torch.Tensor, seq_len: int, streams: int, max_chars: int | None,
             device: torch.device) -> dict[str, float]:
    """Loss (nats/char), bits/char and next-char accuracy over `ids` (or `max_chars` of them).

    The ids are cut into `streams` contiguous streams spread over the whole split (evenly
    spaced, deterministic); each is read in chunks of `seq_len` with the state carried over.
    """
    was_training = model.training
    model.eval()
    n = ids.numel() - 1  # predictable positions
    streams = max(1, min(streams, n // 2))
    per_stream = n // streams
    span = per_stream if max_chars is None else max(1, min(per_stream, max_chars // streams))
    starts = torch.arange(streams) * per_stream  # (S,)
    idx = starts[:, None] + torch.arange(span + 1)  # (S, span + 1)
    data = ids[idx].to(device)
    total_loss, correct, count, state = 0.0, 0, 0, None
    for t0 in range(0, span, seq_len):
        x = data[:, t0 : min(t0 + seq_len, span)]  # (S, t)
        y = data[:, t0 + 1 : min(t0 + seq_len, span) + 1]  # (S, t)
        with autocast(device):
            logits, state = model(x, state)
        logits = logits.float()
        total_loss += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    model.train(was_training)
    loss = total_loss / count
    return {"loss": loss, "bpc": loss / math.log(2), "acc": correct / count, "chars": count}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use `n` intra-op CPU threads inside the block (None: leave torch's setting alone)."""
    prev = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def train_char_rnn(cfg: CharRNNParams, train_ids: np.ndarray, val_ids: np.ndarray, vocab_chars: list[str],
                   device: torch.device, checkpoint_path: str | Path, seed: int = 0) -> CharRNNResult:
    """Train a char-RNN; the best model by validation loss is written to `checkpoint_path`
    (and returned, loaded). Stops at `max_steps` or after `max_seconds`, whichever first."""
    with torch_threads(cfg.threads):
        return _train(cfg, train_ids, val_ids, vocab_chars, device, checkpoint_path, seed)


def _train(cfg: CharRNNParams, train_ids: np.ndarray, val_ids: np.ndarray, vocab_chars: list[str],
           device: torch.device, checkpoint_path: str | Path, seed: int) -> CharRNNResult:
    need = cfg.seq_len + 2
    for name, ids in (("train", train_ids), ("val", val_ids)):
        if len(ids) < need:
            raise ValueError(f"the {name} split has {len(ids)} characters; seq_len={cfg.seq_len} needs at least {need}")
    missing = [c for c in dict.fromkeys(cfg.prime) if c not in set(vocab_chars)]
    if missing:  # fail before training, not after it
        raise ValueError(f"char_rnn.prime {cfg.prime!r} has characters not in the corpus vocabulary: "
                         f"{', '.join(map(repr, missing))}")
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the float32 recurrence
    checkpoint_path = Path(checkpoint_path)
    model_config = cfg.model_config_dict(len(vocab_chars))
    model = build_model(model_config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None
    if cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_steps, eta_min=cfg.lr / 10)
    gen = torch.Generator().manual_seed(seed)
    train_t = torch.as_tensor(train_ids, dtype=torch.long)
    val_t = torch.as_tensor(val_ids, dtype=torch.long)
    log(f"char_rnn: {cfg.layers}-layer {cfg.cell.upper()} hidden {cfg.hidden}, {model.num_parameters():,} parameters, "
        f"{len(train_ids):,} train / {len(val_ids):,} val chars, device {device}")

    def save(step: int, val: dict[str, float]) -> None:
        save_checkpoint(checkpoint_path, kind=KIND, config=model_config, vocab={"chars": list(vocab_chars)},
                        model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                        val_loss=val["loss"], train_config=cfg.model_dump(mode="json"), rng=rng_state())

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"loss": math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    train_time = 0.0  # seconds spent in optimisation steps only (for chars/s)
    loss_sum, loss_n, step = 0.0, 0, 0
    t_start = time.perf_counter()
    stopped_by = "max_steps"
    bar = progress(desc="train char_rnn", total=cfg.max_steps, unit="step")
    model.train()
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        x, y = random_batch(train_t, cfg.batch_size, cfg.seq_len, gen)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device):
            logits, _ = model(x)  # (B, T) -> (B, T, V)
        loss = model.loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        loss_sum += loss.item()  # .item() syncs, so train_time is honest on CUDA too
        loss_n += 1
        step += 1
        train_time += time.perf_counter() - t0
        bar.update(1)
        out_of_time = cfg.max_seconds is not None and time.perf_counter() - t_start >= cfg.max_seconds
        if step % cfg.eval_interval == 0 or step == cfg.max_steps or out_of_time:
            val = evaluate(model, val_t, cfg.seq_len, cfg.eval_streams, cfg.eval_chars, device)
            row = {"step": step, "train_loss": loss_sum / loss_n, "val_loss": val["loss"], "val_acc": val["acc"],
                   "seconds": time.perf_counter() - t_start}
            history.append(row)
            bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{val['loss']:.3f}")
            loss_sum, loss_n = 0.0, 0
            if val["loss"] < best["loss"]:
                best = {**val, "step": step}
                best_state = copy.deepcopy(model.state_dict())
                save(step, val)
        if out_of_time:
            stopped_by = "max_seconds"
            break
    bar.close()
    wall = time.perf_counter() - t_start
    if stopped_by == "max_seconds":
        log(f"char_rnn: stopped by max_seconds={cfg.max_seconds} at step {step} (results then depend on machine speed)")
    if best_state is None:
        raise RuntimeError(f"char_rnn: validation loss was never finite (training diverged; last train loss "
                           f"{history[-1]['train_loss']:.4g}): lower char_rnn.lr or char_rnn.grad_clip")
    model.load_state_dict(best_state)
    final = evaluate(model, val_t, cfg.seq_len, cfg.eval_streams, None, device)
    chars_per_s = step * cfg.batch_size * cfg.seq_len / max(train_time, 1e-9)
    metrics = {
        "char_rnn/val_loss": final["loss"],
        "char_rnn/val_bpc": final["bpc"],
        "char_rnn/val_acc": final["acc"],
        "char_rnn/best_step": best["step"],
        "char_rnn/steps": step,
        "char_rnn/chars_per_s": chars_per_s,
        "char_rnn/train_seconds": wall,
        "char_rnn/stopped_by_time": int(stopped_by == "max_seconds"),
        "char_rnn/params": model.num_parameters(),
        "char_rnn/train_loss_last": history[-1]["train_loss"],
    }
    log(f"char_rnn: best val loss {final['loss']:.4f} nats/char ({final['bpc']:.3f} bpc, acc {final['acc']:.3f}) "
        f"at step {best['step']}/{step}, {chars_per_s:,.0f} chars/s, {wall:.0f} s")
    return CharRNNResult(model=model, history=history, metrics=metrics)


def load_char_rnn(path: str | Path, device: torch.device | str = "cpu") -> tuple[CharRNN, list[str], dict[str, Any]]:
    """(model in eval mode, vocab chars, checkpoint dict) from a `train_char_rnn` checkpoint."""
    ckpt = load_checkpoint(path, KIND, map_location=device)
    model = build_model(ckpt["config"]).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, list(ckpt["vocab"]["chars"]), ckpt


def sample_reports(model: CharRNN, vocab: Any, cfg: CharRNNParams, seed: int) -> tuple[str, str]:
    """(generated text, temperature sweep text) with fixed seeds, so runs are comparable.

    Every temperature draws from the same seed (common random numbers), so the sweep shows
    the effect of the temperature rather than of different luck."""
    with torch_threads(cfg.threads):
        return _sample_reports(model, vocab, cfg, seed)


def _sample_reports(model: CharRNN, vocab: Any, cfg: CharRNNParams, seed: int) -> tuple[str, str]:
    generated = cfg.prime + model.generate(vocab, cfg.prime, cfg.length, cfg.temperature, np.random.default_rng(seed))
    parts = []
    for t in cfg.sweep_temperatures:
        text = model.generate(vocab, cfg.prime, cfg.sweep_length, t, np.random.default_rng(seed))
        parts.append(f"===== temperature {t} =====\n{cfg.prime}{text}\n")
    return generated, "\n".join(parts)

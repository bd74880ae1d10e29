"""The torch char-RNN step: AdamW on next-character cross-entropy, plugged into the shared loop.

Training windows are contiguous chunks of ``seq_len + 1`` characters on a grid whose offset
shifts every epoch; the loop draws their order as a pure function of (seed, epoch), so a
resumed run reads exactly the windows an uninterrupted one would. Validation runs every
``eval_interval`` steps over contiguous streams of the validation ids with the hidden state
carried from chunk to chunk (as char-rnn evaluates), and the best weights are kept. The budget
is ``max_steps``; ``max_seconds`` is an opt-in wall-clock stop whose metrics say it stopped them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from genlab.errors import InputError, TrainingDiverged
from genlab.models import char_rnn as char_rnn_model
from genlab.models.char_rnn import CharRNN
from genlab.params import ModelSection, model_section
from genlab.params import resume_key as params_resume_key
from genlab.runtime import log
from genlab.train.loop import Loop, LoopConfig, StepModule


class _CharRNNTrainParams(ModelSection):
    """The `char_rnn` section of params.yaml: these training keys plus the model's (models/char_rnn.py Config)."""

    seq_len: int = Field(64, ge=2)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(7e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)  # max global gradient norm
    lr_schedule: Literal["constant", "cosine"] = "cosine"  # cosine: to lr/10 at max_steps
    max_steps: int = Field(500, gt=0)
    max_seconds: float | None = Field(None, gt=0)  # opt-in wall-time stop (then results depend on the machine)
    eval_interval: int = Field(100, gt=0)
    eval_chars: int | None = Field(32768, gt=0)  # val chars per periodic eval (null: all); the final eval uses all
    eval_streams: int = Field(32, gt=0)  # contiguous val streams evaluated in parallel
    log_every: int = Field(20, gt=0)  # steps per row of the step curves (MLflow)
    checkpoint_every: int = Field(100, gt=0)  # steps between resume checkpoints
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA and CPUs with native bf16 (AMX, AVX512-BF16), fp32 elsewhere
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
    def _check(self) -> "_CharRNNTrainParams":
        if any(not (t > 0) for t in self.sweep_temperatures):
            raise InputError(f"sweep_temperatures must all be > 0, got {self.sweep_temperatures}")
        return self

    def model_config_for_data(self, vocab_size: int) -> char_rnn_model.Config:
        return self.config_for(vocab_size=vocab_size)


CharRNNParams = model_section("CharRNNParams", char_rnn_model.Config, _CharRNNTrainParams, section="char_rnn",
                              exclude=("vocab_size",), data_key_paths={"vocab_size": "prepare_text.source"})
# The only char_rnn keys that may differ between a run and its resume (genlab.params.resume_key):
# max_steps (a run may be extended; not with the cosine schedule, which it sets), max_seconds,
# log_every, checkpoint_every and the sampling keys (used after training).
RESUME_MAY_CHANGE = ("max_steps", "max_seconds", "log_every", "checkpoint_every",
                     "prime", "temperature", "length", "sweep_temperatures", "sweep_length")


def resume_key(cfg: Any) -> dict[str, Any]:
    """The config values a resume checkpoint must share with this run: all but RESUME_MAY_CHANGE."""
    cosine = cfg.lr_schedule == "cosine"
    return params_resume_key(cfg, [k for k in RESUME_MAY_CHANGE if not (k == "max_steps" and cosine)])


@dataclass
class CharRNNResult:
    model: CharRNN
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0


def window_starts(n_chars: int, seq_len: int, epoch: int, seed: int) -> tuple[int, int]:
    """(offset, number of windows) of `epoch`'s grid of windows: window i covers characters
    offset + i*seq_len ... + seq_len (inputs and next-character targets). The offset shifts with
    the epoch (a pure function of seed and epoch); the count is the same for every offset."""
    offset = int(torch.randint(seq_len, (1,), generator=torch.Generator().manual_seed(seed * 7919 + epoch)))
    return offset, (n_chars - seq_len) // seq_len


@torch.no_grad()
def evaluate(model: CharRNN, ids: torch.Tensor, seq_len: int, streams: int, max_chars: int | None,
             device: torch.device, autocast: Any = None) -> dict[str, float]:
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
        with autocast if autocast is not None else contextlib.nullcontext():
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


class CharRNNStep(StepModule):
    def __init__(self, cfg: Any, model: CharRNN, train_ids: torch.Tensor, val_ids: torch.Tensor, seed: int):
        self.cfg, self.model, self.train_ids, self.val_ids, self.seed = cfg, model, train_ids, val_ids, seed
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.modules, self.optimizers = {"model": model}, {"opt": self.opt}
        self.forward: torch.nn.Module = model  # under torchrun: model in DDP (distribute)
        self.schedulers = ({"sched": torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=cfg.max_steps, eta_min=cfg.lr / 10)} if cfg.lr_schedule == "cosine" else {})
        self.best: dict[str, Any] = {"loss": math.inf, "step": 0}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.arange = torch.arange(cfg.seq_len + 1)
        self.loss_sum, self.loss_n = torch.zeros(()), 0  # training loss since the last validation

    def distribute(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        self.forward = data_parallel(self.model)

    def step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, device = self.cfg, self.model.head.weight.device
        offset, _ = window_starts(self.train_ids.numel(), cfg.seq_len, self.loop.epoch, self.seed)
        chunk = self.train_ids[(offset + idx.cpu() * cfg.seq_len)[:, None] + self.arange]  # (B, T + 1)
        x, y = chunk[:, :-1].to(device), chunk[:, 1:].to(device)
        with self.loop.autocast():
            logits, _ = self.forward(x)  # (B, T) -> (B, T, V)
        loss = self.model.loss(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        if self.schedulers:
            self.schedulers["sched"].step()
        self.loss_sum = self.loss_sum + loss.detach().float().cpu()
        self.loss_n += 1
        return {"train_loss": loss.detach()}

    def on_eval(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        val = evaluate(self.model, self.val_ids, cfg.seq_len, cfg.eval_streams, cfg.eval_chars,
                       self.model.head.weight.device, self.loop.autocast())
        if val["loss"] < self.best["loss"]:
            self.best = {**val, "step": step}
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        train = float(self.loop.mean_across_ranks(self.loss_sum)) / max(self.loss_n, 1)  # every rank's items
        self.loss_sum, self.loss_n = torch.zeros(()), 0
        return {"train_loss": train, "val_loss": val["loss"], "val_acc": val["acc"]}

    def extra_state(self) -> dict[str, Any]:
        return {"best": {k: float(v) for k, v in self.best.items()}, "best_state": self.best_state,
                "loss_sum": self.loss_sum, "loss_n": self.loss_n}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.best = {**state["best"], "step": int(state["best"]["step"])}
        self.best_state = state["best_state"]
        self.loss_sum, self.loss_n = state["loss_sum"].cpu(), int(state["loss_n"])


def train_char_rnn(cfg: Any, train_ids: np.ndarray, val_ids: np.ndarray, vocab_chars: list[str],
                   device: torch.device, *, seed: int = 0, resume_path: str | Path | None = None,
                   data_fingerprint: str = "", history_sinks: dict[str, Any] | None = None) -> CharRNNResult:
    """Train a char-RNN (`cfg`: a :data:`CharRNNParams`) for ``max_steps``; return the best
    model by validation loss (loaded), its history and metrics."""
    with torch_threads(cfg.threads):
        return _train(cfg, train_ids, val_ids, vocab_chars, device, seed, resume_path, data_fingerprint,
                      history_sinks or {})


def _train(cfg: Any, train_ids: np.ndarray, val_ids: np.ndarray, vocab_chars: list[str], device: torch.device,
           seed: int, resume_path: str | Path | None, data_fingerprint: str,
           history_sinks: dict[str, Any]) -> CharRNNResult:
    need = cfg.seq_len + 2
    for name, ids in (("train", train_ids), ("val", val_ids)):
        if len(ids) < need:
            raise InputError(f"the {name} split has {len(ids)} characters; seq_len={cfg.seq_len} needs at least {need}")
    missing = [c for c in dict.fromkeys(cfg.prime) if c not in set(vocab_chars)]
    if missing:  # fail before training, not after it
        raise InputError(f"char_rnn.prime {cfg.prime!r} has characters not in the corpus vocabulary: "
                         f"{', '.join(map(repr, missing))}")
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the float32 recurrence
    torch.manual_seed(seed)  # weight init from the params' seed, whoever calls
    model = char_rnn_model.build(cfg.model_config_for_data(len(vocab_chars))).to(device)
    train_t = torch.as_tensor(train_ids, dtype=torch.long)
    val_t = torch.as_tensor(val_ids, dtype=torch.long)
    _, n_windows = window_starts(len(train_ids), cfg.seq_len, 0, seed)
    batch = min(cfg.batch_size, n_windows)
    log(f"char_rnn: {cfg.layers}-layer {cfg.cell.upper()} hidden {cfg.hidden}, {model.num_parameters():,} parameters, "
        f"{len(train_ids):,} train / {len(val_ids):,} val chars, device {device}")
    key = resume_key(cfg)
    trainer = CharRNNStep(cfg, model, train_t, val_t, seed)
    loop = Loop(LoopConfig(
        name="char_rnn", n_items=n_windows, batch_size=batch, epochs=math.ceil(cfg.max_steps / (n_windows // batch)),
        seed=seed, device=device, amp=cfg.amp, drop_last=True, max_steps=cfg.max_steps, max_seconds=cfg.max_seconds,
        log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, eval_every=cfg.eval_interval,
        resume_path=resume_path, resume_key=key, data_fingerprint=data_fingerprint,
        history_sinks=history_sinks,
    ), trainer)
    res = loop.run()
    if trainer.best_state is None:
        raise TrainingDiverged("char_rnn: validation loss was never finite (training diverged): "
                           "lower char_rnn.lr or char_rnn.grad_clip")
    model.load_state_dict(trainer.best_state)
    final = evaluate(model, val_t, cfg.seq_len, cfg.eval_streams, None, device, loop.autocast())
    model.eval()
    chars_per_s = (res.step - res.resumed_from_step) * batch * cfg.seq_len / max(res.train_seconds, 1e-9)
    # the curve: one row per validation (with the mean training loss since the previous one)
    history = [{k: r[k] for k in ("step", "train_loss", "val_loss", "val_acc")} for r in res.eval_history]
    metrics = {
        "char_rnn/val_loss": final["loss"],
        "char_rnn/val_bpc": final["bpc"],
        "char_rnn/val_acc": final["acc"],
        "char_rnn/best_step": int(trainer.best["step"]),
        "char_rnn/steps": res.step,
        "char_rnn/chars_per_s": chars_per_s,
        "char_rnn/train_seconds": res.train_seconds,
        "char_rnn/stopped_by_time": int(res.stopped_by == "max_seconds"),
        "char_rnn/params": model.num_parameters(),
        "char_rnn/train_loss_last": history[-1]["train_loss"],
        "char_rnn/bf16": int(res.bf16),
    }
    log(f"char_rnn: best val loss {final['loss']:.4f} nats/char ({final['bpc']:.3f} bpc, acc {final['acc']:.3f}) "
        f"at step {trainer.best['step']}/{res.step}, {chars_per_s:,.0f} chars/s")
    return CharRNNResult(model=model, history=history, metrics=metrics, resumed_from_step=res.resumed_from_step)


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

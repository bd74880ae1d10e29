"""Training the NumPy char-RNN: batched streams, truncated BPTT, the optimizer comparison, samples.

`run_char_rnn_numpy` is what the `train_char_rnn_numpy` stage calls: it trains the configured
model, evaluates it, retrains the same model once per optimizer for the convergence comparison,
and generates the text samples. It returns everything; the stage writes the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from genlab.errors import InputError, TrainingDiverged
from genlab.char_rnn_numpy.model import CharRNN, RNNConfig
from genlab.char_rnn_numpy.optim import OPTIMIZERS, Optimizer, clip_gradients, make_optimizer
from genlab.params import StrictModel
from genlab.params import resume_key as params_resume_key
from genlab.runtime import atomic_path, log, progress
from genlab.sampling import check_temperature, generate_text


class CharRNNNumpyParams(StrictModel):
    """The `char_rnn_numpy` section of params.yaml."""

    # model
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(2, ge=1)
    dtype: Literal["float32", "float64"] = "float32"
    # BLAS threads for the matrix products; 1 is fastest for these small (B, H) @ (H, H)
    # products and is robust on a shared machine (OpenBLAS's threads wait for each other on busy
    # cores: docs/speed.md); null leaves the library default
    blas_threads: int | None = Field(1, ge=1)
    # training
    seq_length: int = Field(50, gt=0)  # truncated-BPTT chunk length
    batch_size: int = Field(32, gt=0)  # parallel streams at evenly spaced offsets
    optimizer: Literal["sgd", "rmsprop", "adam", "adagrad"] = "adam"
    lr: float = Field(2e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)  # sgd only
    clip: float = Field(5.0, gt=0)  # every gradient element clipped to [-clip, clip]
    max_steps: int = Field(3000, gt=0)
    max_seconds: float | None = Field(None, gt=0)  # opt-in wall-clock stop (then results depend on the machine)
    checkpoint_every: int = Field(250, gt=0)  # steps between resume checkpoints
    loss_smoothing: float = Field(0.999, ge=0, lt=1)  # EMA of the training loss, as min-char-rnn
    log_interval: int = Field(10, gt=0)  # steps per row of plots/char_rnn_numpy/loss.tsv
    eval_interval: int = Field(250, gt=0)  # steps between validation passes
    eval_chars: int | None = Field(None, gt=0)  # validate on the first N val chars (None: all)
    # optimizer comparison: the same model and data, once per optimizer (its own lr)
    compare_lr: dict[str, float] = {"sgd": 0.3, "rmsprop": 2e-3, "adam": 2e-3}
    compare_steps: int = Field(300, ge=0)  # 0 skips the comparison
    compare_max_seconds: float | None = Field(None, gt=0)  # opt-in wall-clock stop per optimizer
    # in a second process while the main model trains (same results; the trainer uses one core)
    compare_in_parallel: bool = True
    # sampling
    prime: str = "The "
    temperature: float = Field(0.8, gt=0)
    length: int = Field(1000, ge=0)
    sweep_temperatures: list[float] = [0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    sweep_length: int = Field(500, ge=0)

    @field_validator("compare_lr")
    @classmethod
    def _known_optimizers(cls, v: dict[str, float]) -> dict[str, float]:
        for name, lr in v.items():
            if name not in OPTIMIZERS:
                raise InputError(f"unknown optimizer {name!r} (allowed: {', '.join(OPTIMIZERS)})")
            if not lr > 0:
                raise InputError(f"the lr of {name} must be > 0, got {lr}")
        return v

    @field_validator("sweep_temperatures")
    @classmethod
    def _positive_temperatures(cls, v: list[float]) -> list[float]:
        for t in v:
            check_temperature(t)
        return v

    @model_validator(mode="after")
    def _eval_chars_covers_a_chunk(self) -> "CharRNNNumpyParams":
        if self.eval_chars is not None and self.eval_chars < self.seq_length:
            raise InputError(f"eval_chars ({self.eval_chars}) must be >= seq_length ({self.seq_length})")
        return self

    def rnn_config(self, vocab_size: int) -> RNNConfig:
        return RNNConfig(vocab_size, self.hidden_size, self.num_layers, self.dtype)


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit the BLAS thread pool to `n` threads inside the block (no-op for None, or when
    threadpoolctl is not installed)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/mlflow
        log("threadpoolctl is not installed: BLAS keeps its default thread count")
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


class BatchStreams:
    """`batch_size` parallel streams over `ids`, stream b reading its own contiguous segment
    starting at ``b * (len(ids) - 1) // batch_size``; each `next()` yields the next (B, T)
    chunk of inputs and targets (shifted by one). At the end of the segments every stream
    wraps to its start, and `next()` reports it so the trainer resets the hidden state."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int, name: str = "train"):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.T = seq_length
        self.seg = (len(self.ids) - 1) // batch_size  # characters per stream
        if self.seg < seq_length:
            raise InputError(
                f"the {name} split has {len(self.ids):,} characters: too short for batch_size={batch_size} "
                f"streams of seq_length={seq_length} (needs at least {batch_size * seq_length + 1:,}); "
                "lower batch_size or seq_length, or use a longer corpus"
            )
        self.starts = np.arange(batch_size)[:, None] * self.seg  # (B, 1)
        self.pos = 0
        self.epoch = 0

    def next(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(inputs (B, T), targets (B, T), wrapped) where `wrapped` means "reset the state"."""
        wrapped = self.pos == 0
        if self.pos + self.T > self.seg:
            self.pos, self.epoch, wrapped = 0, self.epoch + 1, True
        idx = self.starts + self.pos + np.arange(self.T)  # (B, T)
        self.pos += self.T
        return self.ids[idx], self.ids[idx + 1], wrapped


@dataclass
class TrainResult:
    model: CharRNN
    history: list[dict[str, Any]] = field(default_factory=list)  # step, train_loss, smooth_loss, train_acc
    val_history: list[dict[str, Any]] = field(default_factory=list)  # step, val_loss, val_acc
    losses: list[float] = field(default_factory=list)  # raw training loss of every step
    steps: int = 0
    chars: int = 0
    train_seconds: float = 0.0
    smooth_loss: float = float("nan")

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.train_seconds if self.train_seconds > 0 else 0.0


def train(
    model: CharRNN,
    train_ids: np.ndarray,
    val_ids: np.ndarray | None,
    optimizer: Optimizer,
    *,
    batch_size: int,
    seq_length: int,
    clip: float,
    max_steps: int,
    max_seconds: float = float("inf"),
    eval_interval: int | None = None,
    eval_chars: int | None = None,
    log_interval: int = 10,
    loss_smoothing: float = 0.999,
    desc: str = "char_rnn_numpy",
    resume_path: str | Path | None = None,
    resume_key: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
) -> TrainResult:
    """Train `model` in place for `max_steps` (B, T) chunks or `max_seconds`, whichever first.

    The smoothed loss starts at ``log(V)`` (a uniform guess) and is an EMA with factor
    `loss_smoothing` per step, as in min-char-rnn. Validation (if `val_ids` and
    `eval_interval`) runs every `eval_interval` steps and after the last one; its time is not
    counted in `train_seconds` (so `chars_per_s` is the training throughput).

    Resume, with the shared torch loop's semantics: every `checkpoint_every` steps and after the
    last one, the weights, the optimizer's slots, the hidden state, the stream position and the
    history go to `resume_path` (an .npz, atomically; no pickle). A run whose `resume_key`
    matches continues from it and ends bit-identical to an uninterrupted one; a finished run is
    restored without training; another key starts fresh, saying which keys differ.
    """
    max_seconds = float("inf") if max_seconds is None else max_seconds
    streams = BatchStreams(train_ids, batch_size, seq_length)
    res = TrainResult(model, smooth_loss=float(np.log(model.cfg.vocab_size)))
    h = model.zero_state(batch_size)
    window_loss, window_acc = [], []
    t_train, start = 0.0, 1
    key = {"resume_key": resume_key or {}, "max_steps": max_steps, "config": model.cfg.__dict__.copy()}
    state = load_resume(resume_path, key, desc) if resume_path is not None else None
    if state is not None:
        model.params.update(state["params"])
        optimizer.load_state_dict(state["optimizer"])
        h = state["h"]
        streams.pos, streams.epoch = state["pos"], state["epoch"]
        res.history, res.val_history, res.losses = state["history"], state["val_history"], state["losses"]
        res.smooth_loss, t_train = state["smooth_loss"], state["train_seconds"]
        window_loss, window_acc = state["window_loss"], state["window_acc"]
        res.steps = state["step"]
        res.chars = res.steps * batch_size * seq_length
        start = res.steps + 1
        log(f"{desc}: resuming from {resume_path} at step {res.steps}/{max_steps}")

    def save(step: int) -> None:
        if resume_path is not None:
            save_resume(resume_path, key, model, optimizer, h, streams, res, t_train, window_loss, window_acc, step)

    stop_at = int(os.environ["GENLAB_STOP_AFTER_STEPS"]) if os.environ.get("GENLAB_STOP_AFTER_STEPS") else None
    bar = progress(desc=desc, total=max_steps, initial=start - 1, unit="step")
    for step in range(start, max_steps + 1):
        t0 = time.perf_counter()
        x, y, wrapped = streams.next()
        if wrapped:
            h = model.zero_state(batch_size)
        loss, acc, grads, h = model.loss_and_grads(x, y, h)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"{desc}: the training loss is {loss} at step {step}; lower the lr")
        clip_gradients(grads, clip)
        optimizer.step(model.params, grads)
        t_train += time.perf_counter() - t0
        res.steps, res.chars = step, step * batch_size * seq_length
        res.losses.append(loss)
        res.smooth_loss = loss_smoothing * res.smooth_loss + (1 - loss_smoothing) * loss
        window_loss.append(loss)
        window_acc.append(acc)
        last = step == max_steps or t_train >= max_seconds
        if step % log_interval == 0 or last:
            res.history.append({"step": step, "train_loss": float(np.mean(window_loss)),
                                "smooth_loss": res.smooth_loss, "train_acc": float(np.mean(window_acc))})
            window_loss, window_acc = [], []
            bar.set_postfix(loss=f"{res.smooth_loss:.3f}")
        if val_ids is not None and eval_interval and (step % eval_interval == 0 or last):
            val_loss, val_acc = model.evaluate(val_ids, batch_size, seq_length, eval_chars)
            res.val_history.append({"step": step, "val_loss": val_loss, "val_acc": val_acc})
        bar.update(1)
        if last or (checkpoint_every and step % checkpoint_every == 0):
            save(step)
        if stop_at is not None and step >= stop_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a hard crash, as kill -9 would be
        if last:
            break
    bar.close()
    res.train_seconds = t_train
    return res


def save_resume(path: str | Path, key: dict[str, Any], model: CharRNN, optimizer: Optimizer, h: list[np.ndarray],
                streams: BatchStreams, res: TrainResult, t_train: float, window_loss: list[float],
                window_acc: list[float], step: int) -> None:
    """The full training state as one .npz (arrays, and JSON for the rest), written atomically."""
    meta = {"key": key, "step": step, "pos": streams.pos, "epoch": streams.epoch, "smooth_loss": res.smooth_loss,
            "train_seconds": t_train, "history": res.history, "val_history": res.val_history,
            "window_loss": window_loss, "window_acc": window_acc, "n_h": len(h)}
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"opt/{k}": v for k, v in optimizer.state_dict().items()})
    arrays.update({f"h/{i}": v for i, v in enumerate(h)})
    arrays["losses"] = np.asarray(res.losses, dtype=np.float64)
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True, default=float))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_resume(path: str | Path, key: dict[str, Any], desc: str) -> dict[str, Any] | None:
    """The state :func:`save_resume` wrote, or None (missing, unreadable, or other settings: logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"]))
            arrays = {k: data[k] for k in data.files}
    except (OSError, KeyError, ValueError) as exc:
        log(f"{desc}: cannot resume from {path} ({exc}); starting fresh")
        return None
    old = json.loads(json.dumps(meta["key"]))
    new = json.loads(json.dumps(key, default=float))
    if old != new:
        diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        log(f"{desc}: {path} was written under other settings ({'; '.join(diff)[:300]}); starting fresh")
        return None
    return {
        **meta,
        "params": {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")},
        "optimizer": {k[len("opt/"):]: v for k, v in arrays.items() if k.startswith("opt/")},
        "h": [arrays[f"h/{i}"] for i in range(meta["n_h"])],
        "losses": arrays["losses"].tolist(),
    }


def compare_optimizers(
    cfg: CharRNNNumpyParams, rnn: RNNConfig, train_ids: np.ndarray, val_ids: np.ndarray, seed: int
) -> dict[str, TrainResult]:
    """Train the same model (same seed, same data order) once per optimizer in
    `cfg.compare_lr`, each with its own lr, for `cfg.compare_steps` steps."""
    results = {}
    for name in sorted(cfg.compare_lr, key=list(OPTIMIZERS).index):  # a fixed order: sgd, rmsprop, adam, adagrad
        lr = cfg.compare_lr[name]
        model = CharRNN(rnn, rng=np.random.default_rng(seed))
        res = train(model, train_ids, None, make_optimizer(name, lr, cfg.momentum if name == "sgd" else 0.0),
                    batch_size=cfg.batch_size, seq_length=cfg.seq_length, clip=cfg.clip,
                    max_steps=cfg.compare_steps, max_seconds=cfg.compare_max_seconds,
                    log_interval=cfg.log_interval, loss_smoothing=cfg.loss_smoothing, desc=f"compare {name}")
        res.val_history.append(
            dict(zip(("step", "val_loss", "val_acc"),
                     (res.steps, *model.evaluate(val_ids, cfg.batch_size, cfg.seq_length, cfg.eval_chars))))
        )
        log(f"compare {name} (lr {lr:g}): {res.steps} steps, val loss {res.val_history[-1]['val_loss']:.4f}")
        results[name] = res
    return results


def moving_average(x: list[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (shorter at the start), same length as `x`."""
    x = np.asarray(x, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def comparison_rows(results: dict[str, TrainResult], window: int = 10) -> list[dict[str, Any]]:
    """One row per step: the `window`-step trailing mean of each optimizer's training loss."""
    curves = {name: moving_average(r.losses, window) for name, r in results.items()}
    n = min((len(c) for c in curves.values()), default=0)
    return [{"step": i + 1, **{name: float(c[i]) for name, c in curves.items()}} for i in range(n)]


def plot_optimizer_comparison(results: dict[str, TrainResult], lrs: dict[str, float], window: int = 10):
    """Training loss vs step, one line per optimizer (raw faint, `window`-step mean solid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, r) in enumerate(results.items()):
        steps = np.arange(1, len(r.losses) + 1)
        color = f"C{i}"
        ax.plot(steps, r.losses, color=color, alpha=0.2, lw=0.8)
        ax.plot(steps, moving_average(r.losses, window), color=color, lw=1.8,
                label=f"{name} (lr {lrs[name]:g}): val {r.val_history[-1]['val_loss']:.3f}")
    if not results:
        ax.text(0.5, 0.5, "comparison skipped (compare_steps: 0)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step (one batch of sequences)")
    ax.set_ylabel("training loss (nats/char)")
    ax.set_title("NumPy char-RNN: optimizer comparison (same init, same data)")
    ax.grid(alpha=0.3)
    if results:
        ax.legend()
    return fig


@dataclass
class CharRNNNumpyOutcome:
    """Everything the stage writes."""

    model: CharRNN
    result: TrainResult
    metrics: dict[str, float]
    comparison: dict[str, TrainResult]
    generated: str  # prime + `length` sampled characters at `temperature`
    temperature_sweep: str


def temperature_sweep(model: CharRNN, prime: str, temperatures: list[float], length: int,
                      rng: np.random.Generator) -> str:
    parts = []
    for t in temperatures:
        text = generate_text(model.step, model.initial_state(), model.vocab, prime, length, t, rng)
        parts.append(f"=== temperature {t:g} ===\n{prime}{text}\n")
    return "\n".join(parts)


# The only char_rnn_numpy keys that may differ between a run and its resume; every other key
# must match (genlab.params.resume_key). max_steps is checked by `train` itself; the comparison
# and the sampling keys are used after training.
RESUME_MAY_CHANGE = ("max_steps", "max_seconds", "compare_lr", "compare_steps", "compare_max_seconds",
                     "prime", "temperature", "length", "sweep_temperatures", "sweep_length")


def params_key(cfg: CharRNNNumpyParams) -> dict[str, Any]:
    """The config values a resume checkpoint must share with this run: all but RESUME_MAY_CHANGE
    (named apart from :func:`train`'s ``resume_key`` argument, which this becomes)."""
    return params_resume_key(cfg, RESUME_MAY_CHANGE)


def run_char_rnn_numpy(
    train_ids: np.ndarray, val_ids: np.ndarray, vocab: Any, cfg: CharRNNNumpyParams, seed: int,
    resume_path: str | Path | None = None, data_fingerprint: str = "",
) -> CharRNNNumpyOutcome:
    """Train, evaluate, compare the optimizers and sample: the `train_char_rnn_numpy` stage."""
    if cfg.prime:
        try:
            vocab.encode(cfg.prime)  # fail before training, not after
        except ValueError as exc:
            raise InputError(f"char_rnn_numpy.prime {cfg.prime!r}: {exc}") from None
    with blas_threads(cfg.blas_threads):
        return _run(train_ids, val_ids, vocab, cfg, seed, resume_path, data_fingerprint)


def _die_with_parent(parent: int) -> None:
    """Pool initializer: the worker ends when the stage process does (a killed stage must not
    leave a worker holding its stderr open, so `dvc repro` and callers that read it would wait)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the stage died before the line above
        os._exit(1)


def _compare_in_child(cfg: CharRNNNumpyParams, rnn: RNNConfig, train_ids: np.ndarray, val_ids: np.ndarray,
                      seed: int) -> dict[str, TrainResult]:
    """compare_optimizers in a worker process: one BLAS thread, no progress bar of its own."""
    os.environ["GENLAB_PROGRESS"] = "0"
    with blas_threads(cfg.blas_threads):
        return compare_optimizers(cfg, rnn, train_ids, val_ids, seed)


@contextlib.contextmanager
def _comparison_beside(cfg: CharRNNNumpyParams, rnn: RNNConfig, train_ids: np.ndarray, val_ids: np.ndarray,
                       seed: int) -> Iterator[Any]:
    """The optimizer comparison, started in a second process while the main model trains (it
    depends only on the params, the data and the seed, so its results are the same as in
    sequence; a one-thread trainer leaves the other cores idle). Yields a callable returning the
    results; an error in the main training stops the worker."""
    if not cfg.compare_steps:
        yield dict
        return
    if not cfg.compare_in_parallel or (os.cpu_count() or 1) < 2:
        yield lambda: compare_optimizers(cfg, rnn, train_ids, val_ids, seed)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    future = pool.submit(_compare_in_child, cfg, rnn, train_ids, val_ids, seed)
    try:
        yield future.result
    except BaseException:
        future.cancel()
        for proc in list(getattr(pool, "_processes", {}).values()):  # do not let it finish its ~seconds alone
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run(train_ids: np.ndarray, val_ids: np.ndarray, vocab: Any, cfg: CharRNNNumpyParams, seed: int,
         resume_path: str | Path | None, data_fingerprint: str) -> CharRNNNumpyOutcome:
    rnn = cfg.rnn_config(vocab.size)
    model = CharRNN(rnn, rng=np.random.default_rng(seed), vocab=vocab)
    log(f"char_rnn_numpy: {rnn.num_layers}x{rnn.hidden_size} tanh RNN, {model.num_parameters:,} parameters, "
        f"vocab {vocab.size}, {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size} x seq {cfg.seq_length}")
    with _comparison_beside(cfg, rnn, train_ids, val_ids, seed) as comparison_result:
        res = train(model, train_ids, val_ids, make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum),
                    batch_size=cfg.batch_size, seq_length=cfg.seq_length, clip=cfg.clip,
                    max_steps=cfg.max_steps, max_seconds=cfg.max_seconds, eval_interval=cfg.eval_interval,
                    eval_chars=cfg.eval_chars, log_interval=cfg.log_interval, loss_smoothing=cfg.loss_smoothing,
                    resume_path=resume_path, checkpoint_every=cfg.checkpoint_every,
                    resume_key={"seed": seed, "data": data_fingerprint,
                                **params_key(cfg)})
        comparison = comparison_result()
    final = res.val_history[-1]
    metrics = {
        "char_rnn_numpy/val_loss": final["val_loss"],
        "char_rnn_numpy/val_bpc": final["val_loss"] / np.log(2.0),
        "char_rnn_numpy/val_acc": final["val_acc"],
        "char_rnn_numpy/smooth_loss": res.smooth_loss,
        "char_rnn_numpy/train_loss": res.history[-1]["train_loss"],
        "char_rnn_numpy/train_acc": res.history[-1]["train_acc"],
        "char_rnn_numpy/chars_per_s": res.chars_per_s,
        "char_rnn_numpy/steps": res.steps,
        "char_rnn_numpy/train_seconds": res.train_seconds,
    }
    log(f"char_rnn_numpy: {res.steps} steps in {res.train_seconds:.1f} s ({res.chars_per_s:,.0f} chars/s), "
        f"val loss {final['val_loss']:.4f} nats/char, val acc {final['val_acc']:.3f}")
    for name, r in comparison.items():
        metrics[f"char_rnn_numpy/compare/{name}_val_loss"] = r.val_history[-1]["val_loss"]
    rng = np.random.default_rng([seed, 1])  # sampling has its own stream: same text for same weights
    generated = cfg.prime + generate_text(model.step, model.initial_state(), vocab, cfg.prime, cfg.length,
                                          cfg.temperature, rng)
    sweep = temperature_sweep(model, cfg.prime, cfg.sweep_temperatures, cfg.sweep_length, rng)
    return CharRNNNumpyOutcome(model, res, metrics, comparison, generated, sweep)

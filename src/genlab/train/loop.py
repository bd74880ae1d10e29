"""The one training loop every torch trainer plugs into (classifier, GAN, VAE, char-RNN).

A trainer (a :class:`StepModule`) supplies its modules, optimizers, schedulers and a
``step(idx) -> dict of scalar tensors``; the loop owns everything else, written once:

* **Batch order**: a pure function of ``(seed, epoch)`` (:func:`epoch_permutation`); the
  trainer's ``step`` gets the indices of its batch. Resuming mid-epoch needs no sampler state.
* **Full-state resume**: every ``checkpoint_every`` steps and at each epoch end the loop writes
  modules, optimizers, schedulers, every RNG (python, numpy, torch, CUDA, and the trainer's
  own generators), the history, the step and the trainer's extra state, atomically. A new run
  whose resume key (every setting of the trainer's params section except its short list of
  keys that may change, see :func:`genlab.params.resume_key`; plus seed, device, precision and
  data fingerprint) matches continues from it; on CPU it ends bit-identical to an uninterrupted
  run. A mismatch is logged with every differing key and both values, and training starts
  fresh. A finished checkpoint with the same key is restored without training.
* **Precision**: one policy, ``amp: auto | bf16 | off`` (:func:`resolve_bf16`); the
  environment variable ``GENLAB_FP32=1`` forces fp32 everywhere.
* **NaN/Inf guard**: a non-finite step metric raises :class:`TrainingDiverged` naming the epoch
  and step; the last good checkpoint on disk is kept (nothing is written after the bad step).
* **History** rows (means over the last ``log_every`` steps), **timing** (seconds in steps only),
  the **progress bar**, and **hooks**: ``on_epoch_end`` (grids, EMA, BatchNorm recalibration,
  validation) and ``on_eval`` every ``eval_every`` steps. Hooks run under
  ``torch.random.fork_rng``: what they draw cannot change training.
* ``max_steps`` and the opt-in ``max_seconds`` stop early; the result says what stopped it.
* **Live curves**: ``history_sinks`` (``{"step" | "epoch" | "eval": sink}``, e.g. a
  :class:`genlab.tracking.LiveCurve`) see each history row as it is made (``sink.append``),
  and, at start, the rows a resume restored (``sink.reset``): a curve on disk or in MLflow grows
  while training runs, and a resumed run continues the checkpoint's rows without repeating any.

* **Data parallel** (under ``torchrun``, :mod:`genlab.distributed`): each of N ranks takes
  every N-th item of the global batch (``batch_size`` stays the global batch and must divide by
  N); the trainer runs its training forward passes through PyTorch's DistributedDataParallel
  (:meth:`Loop.data_parallel`), so gradients are averaged across ranks during the backward pass
  (clipping and the optimizer see the global gradient), and every rank must end with rank 0's
  weights (checked: a mismatch is an error); step metrics are averaged; ranks draw from their own RNG
  streams (seeded from the seed and the rank; all saved for resume); rank 0 alone writes
  checkpoints (hooks run on every rank; trainers write files from rank 0 only). BatchNorm
  normalises over each rank's part of the batch (DDP's default without SyncBatchNorm); rank 0's
  running statistics are the ones saved.

``GENLAB_STOP_AFTER_STEPS=N`` SIGKILLs the process after global step N (the kill tests).
"""

from __future__ import annotations

import inspect
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from genlab import distributed as ddp
from genlab.errors import InputError, StageError, TrainingDiverged
from genlab.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from genlab.runtime import log, progress

RESUME_KIND = "resume"


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The item order of `epoch` (0-based), a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively: AMX tiles (Intel Xeon 4th gen and later) or
    AVX512-BF16 (AMD Zen 4/5, Intel Cooper Lake), where bf16 is the faster precision
    (docs/speed.md); without either, oneDNN emulates bf16 and fp32 is faster."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):  # another torch build or platform
        return False


def force_fp32() -> bool:
    """``GENLAB_FP32=1`` forces fp32 in every trainer (to measure the path of CPUs without bf16)."""
    return os.environ.get("GENLAB_FP32", "").strip().lower() in ("1", "true", "yes")


def resolve_bf16(amp: str, device: torch.device) -> bool:
    """``amp`` -> bf16 autocast or not. ``auto``: on CUDA, and on CPUs with native bf16 (AMX or
    AVX512-BF16), where it is faster than fp32 (docs/speed.md); elsewhere bf16 is emulated and slower, so fp32.
    ``GENLAB_FP32=1`` overrides everything. bf16 and fp32 runs give different (deterministic) numbers."""
    if force_fp32():
        return False
    if amp == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return amp == "bf16"


def adam(params: Any, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam as torch's fused kernel where every parameter is on a CPU or CUDA device (one pass over
    each tensor instead of a dozen elementwise ops); the default per-tensor Adam dominated the MLP
    VAE's short steps (docs/speed.md). Other devices get the per-tensor Adam."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


@dataclass
class LoopConfig:
    """What the loop needs to know; every trainer builds one from its params."""

    name: str  # metric prefix and messages: "gan", "vae", ...
    n_items: int  # items per epoch (images, text chunks)
    batch_size: int
    epochs: int
    seed: int
    device: torch.device
    amp: str = "auto"
    drop_last: bool = True  # else the last partial batch runs too (unless it holds one item)
    max_steps: int | None = None  # stop after this many steps (mid-epoch allowed)
    max_seconds: float | None = None  # opt-in wall-clock stop (results then depend on the machine)
    log_every: int = 20  # steps per history row
    checkpoint_every: int | None = None  # steps between mid-epoch resume checkpoints
    eval_every: int | None = None  # steps between on_eval calls (and at the last step)
    resume_path: str | Path | None = None
    resume_key: dict[str, Any] = field(default_factory=dict)  # the trainer's config values that must match (genlab.params.resume_key)
    data_fingerprint: str = ""
    # history kind ("step" | "epoch" | "eval") -> a sink with reset(rows) and append(row); rank 0 only
    history_sinks: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return min(self.batch_size, self.n_items)

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_last or self.n_items % self.batch == 1:
            return self.n_items // self.batch
        return math.ceil(self.n_items / self.batch)

    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total


class MethodAsForward(nn.Module):
    """``module.<method>(...)`` as a forward pass: DDP averages the gradients of what its wrapper's
    forward computed, and a trainer may train through another method (``VAE.loss``)."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, self.method)(*args, **kwargs)


class StepModule:
    """What a trainer gives the loop. Subclasses set ``modules``, ``optimizers`` (and
    ``schedulers``) in ``__init__`` and implement :meth:`step`; hooks are optional."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any] = {}
    loop: "Loop"  # set by the loop before training: epoch, step, total_steps, autocast()

    def step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on the items `idx` (on the device); scalar metrics, detached."""
        raise NotImplementedError

    def distribute(self, data_parallel: Callable[[nn.Module], nn.Module]) -> None:
        """Under ``torchrun``: call the forward passes that ``step`` trains through
        ``data_parallel(module)`` (DDP) from now on; ``modules`` keeps the bare modules."""
        raise NotImplementedError(f"{type(self).__name__} does not support data-parallel training")

    def on_epoch_end(self, epoch: int) -> dict[str, float] | None:
        """After epoch `epoch` (1-based): return a row for the epoch history (e.g. validation)."""
        return None

    def on_eval(self, step: int) -> dict[str, float] | None:
        """Every ``eval_every`` steps and after the last step: a row for the eval history."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Trainer state the loop does not know (EMA, own generators, best weights), weights_only-safe."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class LoopResult:
    history: list[dict[str, Any]]  # a row every log_every steps: step, epoch, metric means
    epoch_history: list[dict[str, Any]]  # on_epoch_end rows
    eval_history: list[dict[str, Any]]  # on_eval rows
    last_epoch_means: dict[str, float]  # step metrics averaged over the last (partial) epoch
    step: int
    epoch: int
    train_seconds: float  # in optimisation steps only (hooks and checkpoints excluded)
    resumed_from_step: int
    stopped_by: str  # "epochs" | "max_steps" | "max_seconds" | "restored"
    bf16: bool

    @property
    def resumed(self) -> bool:
        return self.resumed_from_step > 0


def describe_key_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Every differing key of two nested dicts as ``a.b: old -> new``."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_key_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def _stop_after_steps() -> int | None:
    v = os.environ.get("GENLAB_STOP_AFTER_STEPS")
    return int(v) if v else None


class Loop:
    """Runs one :class:`StepModule` under a :class:`LoopConfig`; see the module docstring."""

    def __init__(self, cfg: LoopConfig, trainer: StepModule):
        self.cfg, self.trainer = cfg, trainer
        self.device = torch.device(cfg.device)
        self.bf16 = resolve_bf16(cfg.amp, self.device)
        self.epoch = self.step_in_epoch = self.step = 0
        self.total_steps = cfg.total_steps
        self.epoch_means: dict[str, float] = {}  # the step metrics' means over the epoch that just ended
        # the config under the trainer's name, so a mismatch reads as its params key (gan.lr: ...)
        self.key = {"trainer": cfg.name, cfg.name: cfg.resume_key, "seed": cfg.seed, "device": self.device.type,
                    "bf16": self.bf16, "data": cfg.data_fingerprint}
        self.rank, self.world = ddp.rank(), ddp.world_size()
        if self.world > 1:
            self.key["nproc"] = self.world
            if cfg.batch % self.world:
                raise InputError(f"{cfg.name}.batch_size {cfg.batch} does not divide among distributed.nproc "
                                 f"{self.world} processes")
            self._distribute()
        trainer.loop = self

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _distribute(self) -> None:
        """Start every rank from rank 0's weights and buffers, then let the trainer send the forward
        passes it trains through :meth:`data_parallel` (PyTorch's DistributedDataParallel)."""
        import torch.distributed as dist

        with torch.no_grad():
            for module in self.trainer.modules.values():
                for t in module.state_dict().values():
                    if isinstance(t, torch.Tensor) and t.is_floating_point():
                        dist.broadcast(t, 0)
        self.trainer.distribute(self.data_parallel)

    def data_parallel(self, module: nn.Module) -> nn.Module:
        """`module` wrapped in DistributedDataParallel: the gradients of its parameters are averaged
        across ranks in buckets, overlapped with the backward pass, and are the global batch's when
        ``backward()`` returns (so clipping and the optimizer see the synced gradient). The trainer
        keeps the bare module in ``modules``: checkpoints hold its state under the same keys.

        ``forward_sync_buffers=False``: BatchNorm statistics stay each rank's own (see the module
        docstring); DDP's default would copy rank 0's into every rank before each forward pass.
        ``find_unused_parameters=False`` (the default, no graph walk each step): every parameter
        of a wrapped module must get a gradient in each backward pass through the wrapper."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
        # torch >= 2.14 names it forward_sync_buffers (it still syncs at init: _distribute already did)
        keep_buffers = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                        inspect.signature(DistributedDataParallel).parameters else {"broadcast_buffers": False})
        return DistributedDataParallel(module, device_ids=ids, **keep_buffers)

    def _check_ranks_agree(self) -> None:
        """Every rank must end with rank 0's parameters (bit for bit: the synced gradients are the
        same on every rank); a rank that trained apart means a forward pass bypassed DDP."""
        import torch.distributed as dist

        sums = torch.stack([p.detach().double().sum() for m in self.trainer.modules.values() for p in m.parameters()])
        gathered = [torch.empty_like(sums) for _ in range(self.world)]
        dist.all_gather(gathered, sums.contiguous())
        apart = [r for r, g in enumerate(gathered) if not torch.equal(g, gathered[0])]
        if apart:
            raise StageError(f"{self.cfg.name}: ranks {apart} ended with other weights than rank 0: "
                             "their gradients were not synchronised")

    def autocast(self) -> torch.autocast:
        """The precision policy as a context: bf16 autocast when the policy says so, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------ resume

    def _state(self, finished: bool, acc: dict[str, Any]) -> dict[str, Any]:
        t = self.trainer
        return {
            "key": self.key, "finished": finished,
            "modules": {k: m.state_dict() for k, m in t.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in t.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in t.schedulers.items()},
            "extra": t.extra_state(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
            "rng": rng_state(), **acc,
        }

    def _save(self, finished: bool, acc: dict[str, Any]) -> None:
        if self.cfg.resume_path is None:
            return
        if self.world > 1:  # every rank's RNG streams, gathered on rank 0 (a collective: all ranks call it)
            import torch.distributed as dist

            states: list[Any] = [None] * self.world
            dist.all_gather_object(states, rng_state())
            acc = {**acc, "rank_rng": states}
        if self.is_main:
            save_checkpoint(self.cfg.resume_path, kind=RESUME_KIND, config={"trainer": self.cfg.name},
                            **self._state(finished, acc))

    def _try_resume(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, or None. Under torchrun rank 0 reads it (its disk: the
        other nodes need no copy) and sends it to every rank."""
        if self.world == 1:
            return self._read_resume()
        import torch.distributed as dist

        box = [self._read_resume() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _read_resume(self) -> dict[str, Any] | None:
        path = self.cfg.resume_path
        if path is None or not Path(path).exists():
            return None
        name = self.cfg.name
        try:
            ck = load_checkpoint(path, RESUME_KIND, map_location=self.device if self.world == 1 else "cpu")
        except CheckpointError as exc:
            log(f"{name}: cannot resume ({exc}); starting fresh")
            return None
        diff = describe_key_diff(ck.get("key") or {}, self.key)
        if diff:
            shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
            log(f"{name}: {path} was written under other settings ({shown}); starting fresh")
            return None
        if ck["step"] > self.total_steps:
            log(f"{name}: {path} is at step {ck['step']}, past this run's {self.total_steps} steps; starting fresh")
            return None
        return ck

    def _restore(self, ck: dict[str, Any]) -> None:
        t = self.trainer
        for k, m in t.modules.items():
            m.load_state_dict(ck["modules"][k])
        for k, o in t.optimizers.items():
            o.load_state_dict(ck["optimizers"][k])
        for k, s in t.schedulers.items():
            s.load_state_dict(ck["schedulers"][k])
        t.load_extra_state(ck["extra"])
        self.epoch, self.step_in_epoch, self.step = ck["epoch"], ck["step_in_epoch"], ck["step"]
        set_rng_state(ck["rank_rng"][self.rank] if self.world > 1 else ck["rng"])

    # ------------------------------------------------------------------ the loop

    def run(self) -> LoopResult:
        cfg, t, name = self.cfg, self.trainer, self.cfg.name
        batch, spe = cfg.batch, cfg.steps_per_epoch
        if spe < 1:
            raise InputError(f"{name}: {cfg.n_items} items make no batch of {batch}")
        history: list[dict[str, Any]] = []
        epoch_history: list[dict[str, Any]] = []
        eval_history: list[dict[str, Any]] = []
        names: list[str] = []
        sums = epoch_sums = None
        count = epoch_count = 0
        train_s, resumed_from = 0.0, 0
        last_good = "no checkpoint had been written yet"

        if self.world > 1:  # ranks draw their own noise (dropout, GAN latents): a stream per rank
            torch.manual_seed(cfg.seed * 1_000_003 + 7919 * self.rank + 1)
        ck = self._try_resume()
        if ck is not None:
            self._restore(ck)
            history, epoch_history, eval_history = ck["history"], ck["epoch_history"], ck["eval_history"]
            names = list(ck["metric_names"])
            sums = ck["sums"].to(self.device) if ck["sums"] is not None else None
            epoch_sums = ck["epoch_sums"].to(self.device) if ck["epoch_sums"] is not None else None
            count, epoch_count, train_s = ck["count"], ck["epoch_count"], ck["train_seconds"]
            resumed_from = self.step
            last_good = f"the last good checkpoint ({cfg.resume_path}, step {self.step}) is kept"
            if ck["finished"] and self.step >= self.total_steps:
                log(f"{name}: {cfg.resume_path} holds this finished run; restored without training")
                return self._result(history, epoch_history, eval_history, names, epoch_sums, epoch_count,
                                    train_s, resumed_from, "restored")
            log(f"{name}: resuming from {cfg.resume_path} at epoch {self.epoch + 1}, step {self.step}/{self.total_steps}")

        sinks = cfg.history_sinks if self.is_main else {}
        for kind, rows in (("step", history), ("epoch", epoch_history), ("eval", eval_history)):
            if kind in sinks:
                sinks[kind].reset(rows)

        def acc() -> dict[str, Any]:
            return {"history": history, "epoch_history": epoch_history, "eval_history": eval_history,
                    "metric_names": names, "sums": None if sums is None else sums.cpu(),
                    "epoch_sums": None if epoch_sums is None else epoch_sums.cpu(),
                    "count": count, "epoch_count": epoch_count, "train_seconds": train_s}

        stop_at = _stop_after_steps()
        stopped_by = "epochs"
        t_start = time.perf_counter()
        bar = progress(total=self.total_steps, initial=self.step, desc=name, unit="step", disable=not self.is_main)
        while self.epoch < cfg.epochs and stopped_by == "epochs":
            perm = epoch_permutation(cfg.n_items, cfg.seed, self.epoch).to(self.device)
            if self.step_in_epoch == 0 and epoch_sums is not None:
                epoch_sums.zero_()
                epoch_count = 0
            t0 = time.perf_counter()
            while self.step_in_epoch < spe:
                idx = perm[self.step_in_epoch * batch: (self.step_in_epoch + 1) * batch]
                out = t.step(idx[self.rank::self.world] if self.world > 1 else idx)
                if not names:
                    names = list(out)
                vals = torch.stack([out[k].detach().float().reshape(()) for k in names])
                if self.world > 1:
                    vals = self.mean_across_ranks(vals)
                if not bool(torch.isfinite(vals).all()):
                    bad = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, vals.tolist()) if not math.isfinite(v))
                    raise TrainingDiverged(
                        f"{name}: training diverged at epoch {self.epoch + 1}, step {self.step + 1} "
                        f"({bad}); {last_good}. Lower {name}.lr or check the data.")
                if sums is None:
                    sums, epoch_sums = torch.zeros_like(vals), torch.zeros_like(vals)
                sums += vals
                epoch_sums += vals
                count += 1
                epoch_count += 1
                self.step += 1
                self.step_in_epoch += 1
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    means = (sums / count).tolist()
                    history.append({"step": self.step, "epoch": self.epoch + 1,
                                    **{k: round(v, 6) for k, v in zip(names, means)}})
                    if "step" in sinks:
                        sinks["step"].append(history[-1])
                    sums.zero_()
                    count = 0
                    bar.set_postfix({k: f"{v:.3f}" for k, v in list(zip(names, means))[:3]})
                last_step = self.step >= self.total_steps
                out_of_time = cfg.max_seconds is not None and time.perf_counter() - t_start >= cfg.max_seconds
                if out_of_time is not False and self.world > 1:  # every rank stops at the same step
                    out_of_time = bool(self.mean_across_ranks(torch.tensor([float(out_of_time)])).item() > 0)
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or last_step or out_of_time):
                    train_s += time.perf_counter() - t0
                    with torch.random.fork_rng(devices=self._rng_devices()):
                        row = t.on_eval(self.step)
                    if row is not None:
                        eval_history.append({"step": self.step, "epoch": self.epoch + 1, **row})
                        if "eval" in sinks:
                            sinks["eval"].append(eval_history[-1])
                    t0 = time.perf_counter()
                if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step_in_epoch < spe
                        and not last_step):
                    train_s += time.perf_counter() - t0
                    self._save(False, acc())
                    last_good = f"the last good checkpoint ({cfg.resume_path}, step {self.step}) is kept"
                    t0 = time.perf_counter()
                if stop_at is not None and self.step >= stop_at:
                    os.kill(os.getpid(), signal.SIGKILL)  # a hard crash, as kill -9 would be
                if last_step and self.step_in_epoch < spe:
                    stopped_by = "max_steps"
                    break
                if out_of_time:
                    stopped_by = "max_seconds"
                    break
            train_s += time.perf_counter() - t0
            if stopped_by != "epochs":
                break
            self.epoch += 1
            self.step_in_epoch = 0
            self.epoch_means = dict(zip(names, (epoch_sums / max(epoch_count, 1)).tolist()))
            with torch.random.fork_rng(devices=self._rng_devices()):
                row = t.on_epoch_end(self.epoch)
            if row is not None:
                epoch_history.append({"epoch": self.epoch, "step": self.step, **row})
                if "epoch" in sinks:
                    sinks["epoch"].append(epoch_history[-1])
            self._save(self.epoch == cfg.epochs or self.step >= self.total_steps, acc())
            last_good = f"the last good checkpoint ({cfg.resume_path}, step {self.step}) is kept"
            if self.step >= self.total_steps and self.epoch < cfg.epochs:
                stopped_by = "max_steps"
        bar.close()
        if self.world > 1:
            self._check_ranks_agree()
        if stopped_by in ("max_steps", "max_seconds") and self.step_in_epoch:
            self._save(True, acc())
        if stopped_by == "max_seconds":
            log(f"{name}: stopped by max_seconds={cfg.max_seconds} at step {self.step} "
                "(results then depend on machine speed)")
        return self._result(history, epoch_history, eval_history, names, epoch_sums, epoch_count, train_s,
                            resumed_from, stopped_by)

    def mean_across_ranks(self, vals: torch.Tensor) -> torch.Tensor:
        """`vals` averaged over the ranks (a collective: every rank calls it); itself in one process."""
        if self.world == 1:
            return vals
        import torch.distributed as dist

        vals = vals.clone()
        dist.all_reduce(vals)
        return vals / self.world

    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _result(self, history, epoch_history, eval_history, names, epoch_sums, epoch_count, train_s,
                resumed_from, stopped_by) -> LoopResult:
        means = (epoch_sums / max(epoch_count, 1)).tolist() if epoch_sums is not None else []
        return LoopResult(history, epoch_history, eval_history, dict(zip(names, means)), self.step, self.epoch,
                          train_s, resumed_from, stopped_by, self.bf16)

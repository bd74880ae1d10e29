"""Multi-process training (DDP under ``torchrun``), the part outside the loop: who am I, the
process group, and re-launching a stage through ``torchrun`` when ``distributed.nproc`` > 1.

The loop (:mod:`genlab.train.loop`) does the rest, once for every trainer: each rank takes its
shard of the global batch, gradients are averaged across ranks as they are accumulated, step
metrics are averaged, and rank 0 alone runs hooks and writes checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True on rank 0 and in a plain single-process run: the process that writes outputs."""
    return rank() == 0


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> None:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    if not under_torchrun() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(script: str, nproc: int) -> int:
    """Run `script` under ``torchrun --standalone --nproc-per-node nproc``; its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", script]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    return subprocess.run(cmd, env=env).returncode

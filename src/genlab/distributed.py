"""Multi-process training (DDP under ``torchrun``), the part outside the loop: who am I, the
process group, and re-launching a stage through torchrun's agent when ``distributed.nproc`` > 1
(``--standalone``) or ``distributed.nnodes`` > 1 (a c10d rendezvous at ``rdzv_endpoint``).

The loop (:mod:`genlab.train.loop`) does the rest, once for every trainer: each rank takes its
shard of the global batch, gradients are averaged across ranks by DistributedDataParallel, step
metrics are averaged, and rank 0 alone writes checkpoints (and reads the one a run resumes from).
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

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


def init_from_env(device: str = "auto", node_rank: int = 0) -> None:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA).

    On several nodes the rank is ``node_rank * nproc + local rank``, from params: torchrun's c10d
    rendezvous numbers the nodes in an order of its own (host names, process ids), and rank 0,
    which writes the outputs, must be on node 0, where ``dvc`` runs the stage."""
    if not under_torchrun() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    world = int(os.environ["WORLD_SIZE"])
    rank_ = int(os.environ["RANK"])
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1:
        rank_ = node_rank * int(os.environ["LOCAL_WORLD_SIZE"]) + int(os.environ["LOCAL_RANK"])
        os.environ["RANK"] = str(rank_)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank_, world_size=world)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# set for the workers of :func:`launch`: the launcher reports a lost peer or a signal, once a node
LAUNCHED = "GENLAB_LAUNCHED"
EXIT_PEER_LOST = 3  # a worker's exit code when another process of the run vanished under a collective


def is_peer_loss(exc: BaseException) -> bool:
    """Whether `exc` says another process of the run is gone (killed, its node lost): torch's
    distributed errors, and the RuntimeError DDP's reducer raises from a gloo or NCCL transport."""
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and bool(
        re.search(r"[Cc]onnection (reset|closed) by peer|gloo/transport|NCCL (error|communicator)", str(exc)))


def torchrun_args(script: str, nproc: int, nnodes: int = 1, node_rank: int = 0,
                  rdzv_endpoint: str | None = None) -> list[str]:
    """torchrun's command line for `script`: ``--standalone`` on one node; on several, a c10d
    rendezvous at `rdzv_endpoint` whose id is the script's name (the same on every node), held
    by node 0 (``is_host``). No ``--node-rank``: c10d ignores it (torchrun warns when it is not
    0); :func:`init_from_env` ranks the nodes by ``distributed.node_rank``."""
    if nnodes == 1:
        return ["--standalone", f"--nproc-per-node={nproc}", script]
    return [f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id=genlab-{Path(script).stem}",
            f"--rdzv-conf=is_host={int(node_rank == 0)}", "--max-restarts=0", script]


def launch(script: str, nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None, name: str = "stage",
           node_rank: int = 0) -> int:
    """Run `script` under torchrun's agent (:func:`torchrun_args`) in a child process; its exit code.

    The child runs :func:`run_agent` with torch's C++ warnings off (a lost rendezvous store
    prints a C++ stack otherwise); the workers it starts get the caller's environment back."""
    import subprocess

    env = {**os.environ, "TORCH_CPP_LOG_LEVEL": "ERROR", "GENLAB_CPP_LOG_LEVEL": os.environ.get("TORCH_CPP_LOG_LEVEL", "")}
    code = "import sys; from genlab.distributed import run_agent; raise SystemExit(run_agent(*sys.argv[1:]))"
    args = [script, str(nproc), str(nnodes), rdzv_endpoint or "", name, str(node_rank)]
    return subprocess.run([sys.executable, "-c", code, *args], env=env).returncode


def run_agent(script: str, nproc: str, nnodes: str, rdzv_endpoint: str, name: str, node_rank: str) -> int:
    """torchrun's agent in this process, started by :func:`launch`. A failure is one line for
    this node, never the agent's log and traceback: a worker that exited by itself has printed
    its own line; a worker killed by a signal, a lost peer or rendezvous, or this agent stopped
    by a signal gets one here."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import get_args_parser, run

    for logger_name in list(logging.root.manager.loggerDict):  # the agent's own log: replaced by one line
        if logger_name.startswith("torch.distributed"):
            logging.getLogger(logger_name).setLevel(logging.CRITICAL)
    nproc_, nnodes_, node_rank_ = int(nproc), int(nnodes), int(node_rank)
    previous = os.environ.pop("GENLAB_CPP_LOG_LEVEL", "")  # torch read it at import: the workers get the caller's
    os.environ.pop("TORCH_CPP_LOG_LEVEL", None)
    if previous:
        os.environ["TORCH_CPP_LOG_LEVEL"] = previous
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc_)))
    os.environ[LAUNCHED] = "1"
    if nnodes_ > 1:
        print(f"{name}: node {node_rank} of {nnodes} ({nproc} process{'es' * (nproc_ > 1)}) joining the "
              f"rendezvous at {rdzv_endpoint}", file=sys.stderr)
    try:
        run(get_args_parser().parse_args(torchrun_args(script, nproc_, nnodes_, node_rank_, rdzv_endpoint or None)))
    except ChildFailedError as exc:
        quiet = (130, 143, EXIT_PEER_LOST)  # exit codes of workers that printed nothing under the launcher
        codes = [f.exitcode for f in exc.failures.values()]
        if any(c >= 0 and c not in quiet for c in codes):  # that worker printed its line (or a traceback)
            return max(c for c in codes if c >= 0 and c not in quiet)
        killed = sorted((f.timestamp, f.local_rank, f.signal_name()) for f in exc.failures.values() if f.exitcode < 0)
        if killed:
            what = f"its process of local rank {killed[0][1]} was killed by {killed[0][2]}"
        else:
            what = "lost the processes of another node (killed, or its machine stopped)"
        print(f"error: {name}: node {node_rank}: {what}; start the run again on every node to resume from its "
              "last checkpoint", file=sys.stderr)
        return 1
    except SignalException as exc:
        print(f"error: {name}: node {node_rank}: {'interrupted' if exc.sigval == signal.SIGINT else 'terminated'}",
              file=sys.stderr)
        return 130 if exc.sigval == signal.SIGINT else 143
    except RendezvousError as exc:  # on a join timeout, or when the node that held the rendezvous stopped
        print(f"error: {name}: node {node_rank}: lost the rendezvous at {rdzv_endpoint} "
              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); start the run again on every "
              "node to resume from its last checkpoint", file=sys.stderr)
        return 1
    return 0

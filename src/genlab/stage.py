"""One shape for every `stages/*.py` script: ``main() -> int`` run through :func:`run_stage`.

A stage script reads::

    from genlab.stage import load_stage_params, run_stage

    def main() -> int:
        common, cfg = load_stage_params("gan", GanParams)   # validate params (ParamsError)
        result = train_gan(cfg, ...)                          # one library function
        write_json("metrics/gan.json", result.metrics)       # write the declared outputs
        return 0

    if __name__ == "__main__":
        raise SystemExit(run_stage(main))

:func:`run_stage` turns every expected failure into one line on stderr and an exit code, so
DVC (and a person) sees what went wrong without a traceback:

=================================================  =====  ==========================================
raised inside ``main``                             exit   stderr
=================================================  =====  ==========================================
:class:`genlab.params.ParamsError`                 2      ``error: <stage>: <message>`` (one line per
                                                          problem when a file has several)
:class:`genlab.errors.GenlabError`                 1      ``error: <stage>: <first line of message>``
(:class:`StageError`, ``CheckpointError``,
``ImageSourceError``, ``TrainingDiverged``, ...),
``OSError`` (``FileNotFoundError``, ...)
``KeyboardInterrupt``                              130    ``error: <stage>: interrupted``
SIGTERM (``kill``, a CI timeout, a shutdown)       143    ``error: <stage>: terminated``
another process of a distributed run lost          3      ``error: <stage>: rank R lost the other
(killed, its node gone: a gloo/NCCL error)                processes of the run (...)``; under
                                                          ``distributed.*`` the launcher says it
                                                          instead, one line a node, exit 1
=================================================  =====  ==========================================

Ctrl-C and SIGTERM unwind the stage like an exception, so every atomic write in progress
removes its temporary file and no output is left half-written.

A :class:`~genlab.checkpoint.CheckpointError` or an unreadable images file about a file another
stage writes (``generate`` reading a truncated ``models/gan/checkpoint.pt``, ``evaluate`` a
truncated ``data/generated/gan.npy``) gets the commands that restore it, from
``dvc.yaml``: ``; restore it with `dvc checkout models/gan` or rebuild it with `dvc repro -f train_gan```.

``main`` returning ``None`` counts as 0. Anything else (a bug: ``TypeError``, ``KeyError``,
a shape ``RuntimeError`` from torch, a ``ValueError`` from NumPy, ...) keeps its traceback. ``GENLAB_TRACEBACK=1`` shows the traceback of handled errors too.
The stage name is the script's file name (``stages/train_gan.py`` -> ``train_gan``).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from genlab.errors import GenlabError, StageError, first_line
from genlab.params import CommonParams, ParamsError, load_params

M = TypeVar("M", bound=BaseModel)

EXIT_OK, EXIT_ERROR, EXIT_PARAMS, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanups run as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


# Failures of data, files or the run itself; a stage reports them in one line, exit 1: genlab's
# own errors (StageError, CheckpointError, ImageSourceError, ... all GenlabError) and the
# operating system's (a missing file, a full disk). A ValueError or RuntimeError from anywhere
# else is a bug and keeps its traceback. (ParamsError is a GenlabError too; it is tested first.)
DATA_ERRORS: tuple[type[BaseException], ...] = (GenlabError, OSError)


def load_stage_params(section: str, model: type[M], path: str | Path = "params.yaml") -> tuple[CommonParams, M]:
    """The shared sections and `section` of params.yaml, validated (raises :class:`ParamsError`)."""
    return load_params(section, model, path)


def stage_name(main: Callable[..., object]) -> str:
    """``stages/train_gan.py``'s ``main`` -> ``train_gan``."""
    code = getattr(main, "__code__", None)
    return Path(code.co_filename).stem if code is not None else getattr(main, "__name__", "stage")


def dvc_outputs(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, str]:
    """Every declared output of `dvc_yaml` (outs, metrics, plots) -> the stage that writes it;
    empty when there is no readable dvc.yaml (a stage run outside the repository)."""
    import yaml

    try:
        stages = (yaml.safe_load(Path(dvc_yaml).read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    outs: dict[str, str] = {}
    for stage, spec in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in (spec or {}).get(kind) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                if isinstance(path, str):
                    outs[path.rstrip("/")] = stage
    return outs


def restore_hint(message: str, current: str, dvc_yaml: str | Path = "dvc.yaml") -> str:
    """The commands that restore the first DVC output of another stage named in `message`, or ""."""
    outs = dvc_outputs(dvc_yaml)
    for token in re.findall(r"[\w.~/-]+", message):
        token = token.rstrip(".")
        for out, stage in outs.items():
            if stage != current and (token == out or token.startswith(out + "/")):
                return f"restore it with `dvc checkout {out}` or rebuild it with `dvc repro -f {stage}`"
    return ""


def _is_damaged_input(exc: BaseException) -> bool:
    """A checkpoint or an images file that cannot be read (a truncated ``models/gan/checkpoint.pt``,
    ``data/generated/gan.npy``). Checked by the loaded modules, not imports: NumPy-only stages
    must not pay for importing torch."""
    kinds = [getattr(sys.modules.get(m), name, None) for m, name in
             (("genlab.checkpoint", "CheckpointError"), ("genlab.data.arrays", "ImageArrayError"))]
    return any(k is not None and isinstance(exc, k) for k in kinds)


def _raw_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml unvalidated (validation, and its errors, come with the stage's own params)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _distributed_settings() -> dict:
    """``distributed.*`` of params.yaml where valid, else one process on one node (the stage's
    own validation then names the bad key)."""
    from genlab.params import DistributedParams

    try:
        return DistributedParams.model_validate(_raw_params().get("distributed") or {}).model_dump()
    except ValueError:
        return DistributedParams().model_dump()


def run_stage(main: Callable[[], int | None], name: str | None = None, *, distributed: bool = False) -> int:
    """Run a stage's ``main`` and map its failures to an exit code and one stderr line.

    Use as ``raise SystemExit(run_stage(main))``; `name` defaults to the script's file name.
    ``distributed=True`` (the torch train stages): with ``distributed.nproc`` > 1 the script
    re-launches itself under ``torchrun`` and each rank joins the process group (DDP).
    """
    name = name or stage_name(main)
    if distributed:
        from genlab import distributed as ddp

        settings = _distributed_settings()
        if not ddp.under_torchrun() and (settings["nproc"] > 1 or settings["nnodes"] > 1):
            return ddp.launch(sys.argv[0], settings["nproc"], settings["nnodes"], settings["rdzv_endpoint"], name,
                              settings["node_rank"])
        ddp.init_from_env(str(_raw_params().get("device", "auto")), settings["node_rank"])
    try:
        return _run(main, name)
    except Exception as exc:
        if not distributed or not ddp.is_peer_loss(exc) or os.environ.get("GENLAB_TRACEBACK", "") not in ("", "0"):
            raise
        if not os.environ.get(ddp.LAUNCHED):  # else genlab's launcher says it, once for the node
            print(f"error: {name}: rank {ddp.rank()} lost the other processes of the run ({first_line(exc)}); "
                  "start the run again on every node to resume from its last checkpoint", file=sys.stderr)
        return ddp.EXIT_PEER_LOST
    finally:
        if distributed:
            ddp.shutdown()


def _run(main: Callable[[], int | None], name: str) -> int:
    show_traceback = os.environ.get("GENLAB_TRACEBACK", "") not in ("", "0")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        code = main()
    except ParamsError as exc:
        if show_traceback:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {name}: {line}", file=sys.stderr)
        return EXIT_PARAMS
    except DATA_ERRORS as exc:
        if show_traceback:
            raise
        line = first_line(exc)
        if _is_damaged_input(exc) and "dvc " not in line:
            hint = restore_hint(line, name)
            line = f"{line}; {hint}" if hint else line
        print(f"error: {name}: {line}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        if show_traceback:
            raise
        terminated = isinstance(exc, Terminated)
        if not os.environ.get("GENLAB_LAUNCHED"):  # else genlab.distributed.launch says it, once for the node
            print(f"error: {name}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    sys.stdout.flush()
    return EXIT_OK if code is None else int(code)

"""Runtime pieces every stage shares: seeding, device choice, atomic writes, progress bars."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from genlab.errors import StageError, first_line

T = TypeVar("T")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch (CPU and CUDA) from one integer; return a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # the NumPy-only stages need no torch
        pass
    else:
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def resolve_device(name: str = "auto") -> "torch.device":  # noqa: F821
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is a clear error."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("device: cuda was requested but no CUDA device is available (use auto or cpu)")
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: this rank's GPU
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def repo_root(start: str | Path | None = None) -> Path:
    """The DVC/git root above `start` (default: cwd); DVC sets DVC_ROOT for stage commands."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for cand in (here, *here.parents):
        if (cand / "dvc.yaml").exists() or (cand / ".dvc").is_dir() or (cand / ".git").exists():
            return cand
    return here


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception leaves the previous `path` (if any) untouched and no partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the name first, the file inside the try: a Ctrl-C between creating the file and entering the
    # try (mkstemp's own bytecode, the chmod) left it behind. 64 random bits make a clash with
    # another writer's temporary file as good as impossible (O_EXCL would refuse it).
    tmp_path = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp{path.suffix}"
    if path.is_dir():  # the rename would fail after all the work, naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a folder; name a file in it", str(path))
    try:
        try:
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
        except OSError as exc:  # the caller's path, not the temporary file's
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        yield tmp_path
        with open(tmp_path, "rb") as fh:  # the data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        try:  # and the rename itself (a sleep or power loss could otherwise leave an empty file)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # not every platform can fsync a folder
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _errno_cause(exc: BaseException) -> OSError | None:
    """The OSError with an errno behind a failed write (torch and NumPy keep it as the context)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def describe_write_error(exc: BaseException, folder: str | Path) -> str:
    """Why a write failed, in words: the errno behind it (torch and NumPy lose it on the way),
    else a full disk or a file size limit (``ulimit -f``) when one is the likely cause."""
    cause = _errno_cause(exc)
    if cause is not None:
        return os.strerror(cause.errno)
    try:
        if shutil.disk_usage(folder).free < 1 << 20:
            return os.strerror(28)  # No space left on device
    except OSError:
        pass
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"{os.strerror(27)} (the file size limit, ulimit -f, is {limit} bytes)"
    return first_line(exc)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return Path(path)


def write_tsv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of dicts (same keys) as a tab-separated file, the format `dvc plots` reads."""
    if not rows:
        return write_text(path, "")
    keys = list(rows[0])
    lines = ["\t".join(keys)] + [format_tsv_row(r, keys) for r in rows]
    return write_text(path, "\n".join(lines) + "\n")


def format_tsv_row(row: dict[str, Any], keys: list[str]) -> str:
    """One row of :func:`write_tsv`'s format (no newline): the values of `keys`, tab-separated."""
    return "\t".join(_fmt(row.get(k)) for k in keys)


def save_figure(fig: "matplotlib.figure.Figure", path: str | Path, **kwargs: Any) -> Path:  # noqa: F821
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight", **kwargs)
    plt.close(fig)
    return path


def torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` atomically: an interrupted save never leaves a truncated checkpoint."""
    import torch

    # Serialised in memory, written by Python: a Ctrl-C during torch's own writes to a file came back
    # as its RuntimeError ("unexpected pos ...", an interrupted write) and ended the stage as a
    # write error (exit 1) instead of an interrupt (130). The checkpoint is in memory twice meanwhile.
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(buf.getbuffer())
        except (OSError, RuntimeError) as exc:
            err = OSError(f"cannot write {path}: {describe_write_error(exc, Path(path).parent)}")
            cause = _errno_cause(exc)
            err.errno = cause.errno if cause else None
            raise err from exc
    return Path(path)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None, unit: str = "it", **kw: Any):
    """The project's tqdm convention: one bar per long loop on stderr, quiet when not a TTY
    unless GENLAB_PROGRESS=1, and never when GENLAB_PROGRESS=0 (tests)."""
    from tqdm.auto import tqdm

    flag = os.environ.get("GENLAB_PROGRESS")
    disable = kw.pop("disable", False) or (flag == "0") or (flag != "1" and not sys.stderr.isatty())
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True,
                mininterval=0.5, **kw)


def log(msg: str) -> None:
    """Stage chatter goes to stderr so stdout stays clean for data (e.g. `genlab evaluate`)."""
    print(f"[genlab] {msg}", file=sys.stderr, flush=True)

"""Cheap checks that a local data source exists and holds what it should, before any stage runs.

`check_params` calls these: DVC deletes a stage's outputs before running its command, so a
source that is missing would otherwise cost the previous ``data/images`` (or ``data/text``)
before `prepare_images` finds out. Each check reads headers and directory listings only; the
stage still does the full reading and validation.

Relative paths resolve against the working directory, as the stages resolve them (DVC runs
every stage from the repository root). Each function returns None when the source is fine or
when it is not a local source (``synthetic-digits``, downloads), else a one-line problem that
names the path.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from genlab.data.encodings import TextEncodingError, decode_text
from genlab.data.idx import IdxError, find_idx_file
from genlab.data.images import IMAGE_EXTENSIONS

# how much of a text source is decoded to tell text from a binary file (the stage reads all)
TEXT_PROBE_BYTES = 1 << 20


def resolve(path: str, base: str | Path | None = None) -> Path:
    """``~`` expanded; a relative path joined to `base` (default: the working directory)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or base is None else Path(base) / p


def _idx_header_problem(path: Path, rank: int) -> str | None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
    except (OSError, EOFError) as exc:
        return f"{path}: cannot read ({exc})"
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        return f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})"
    if head[3] != rank:
        return f"{path}: expected an IDX file of {rank} dimension(s), the header says {head[3]}"
    return None


def check_idx_folder(folder: Path) -> str | None:
    """The four MNIST-named IDX files are present and start with an IDX header of the right rank."""
    if not folder.is_dir():
        return f"no such folder {folder}" if not folder.exists() else f"{folder} is not a folder"
    for split in ("train", "test"):
        for kind, rank in (("images", 3), ("labels", 1)):
            try:
                path = find_idx_file(folder, split, kind)
            except IdxError as exc:
                return str(exc)
            problem = _idx_header_problem(path, rank)
            if problem:
                return problem
    return None


def check_image_folder(folder: Path) -> str | None:
    """The folder exists and holds at least one image file (at any depth)."""
    if not folder.is_dir():
        return f"no such folder {folder}" if not folder.exists() else f"{folder} is not a folder"
    for p in folder.rglob("*"):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            return None
    return f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"


def check_text_file(path: Path, encoding: str = "auto") -> str | None:
    """A readable, non-empty file whose first MiB is text in `encoding` (``auto``: any detected)."""
    if not path.exists():
        return f"no such file {path}"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        with open(path, "rb") as fh:
            head = fh.read(TEXT_PROBE_BYTES)
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"
    if not head:
        return f"{path} is empty"
    try:  # incremental: a character cut at the probe's end is not an error
        decode_text(head, encoding, final=len(head) < TEXT_PROBE_BYTES)
    except TextEncodingError as exc:
        return f"{path} {exc}"
    return None


def check_image_source(source: str, base: str | Path | None = None) -> str | None:
    """``idx:<dir>`` or ``folder:<dir>``: a problem line, or None (also for non-local sources)."""
    if source.startswith("idx:"):
        return check_idx_folder(resolve(source[len("idx:"):], base))
    if source.startswith("folder:"):
        return check_image_folder(resolve(source[len("folder:"):], base))
    return None


def check_text_source(source: str, base: str | Path | None = None, encoding: str = "auto") -> str | None:
    """``path:<file>``: a problem line, or None (also for non-local sources)."""
    if source.startswith("path:"):
        return check_text_file(resolve(source[len("path:"):], base), encoding)
    return None


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.rglob("*"))


def source_has_labels(source: str, base: str | Path | None = None) -> bool | None:
    """Whether `source` will have usable labels (two or more classes), when that is known
    before reading it: False for CelebA, a flat ``folder:`` (or one class sub-folder) and one
    LSUN category; True for the labelled named sources; None when it cannot be told cheaply."""
    if source == "celeba":
        return False
    if source in ("synthetic-digits", "synthetic-rgb", "mnist", "fashion-mnist", "kmnist", "cifar10", "svhn"):
        return True
    if source.startswith("folder:"):
        folder = resolve(source[len("folder:"):], base)
        if not folder.is_dir():
            return None
        classes = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and _holds_images(d)]
        return len(classes) >= 2
    if source.startswith("lsun:"):
        folder = resolve(source[len("lsun:"):], base)
        if not folder.is_dir():
            return None
        return len([d for d in folder.iterdir() if d.name.endswith("_train_lmdb")]) >= 2
    return None

"""The IDX file format of MNIST and its kin (LeCun et al.), gzip-compressed or plain.

Header: two zero bytes, one type byte, one byte giving the number of dimensions, then each
dimension as a big-endian uint32; the payload follows in big-endian order.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder(">").str: k for k, v in _DTYPES.items()}

# MNIST naming: train-images-idx3-ubyte, t10k-labels-idx1-ubyte (also "train-images.idx3-ubyte",
# as the unzipped files are often named, and "test-" for "t10k-"), optionally ".gz".
_SPLIT_PREFIX = {"train": ("train",), "test": ("t10k", "test")}


class IdxError(GenlabError, ValueError):
    """A file that is not a well-formed IDX file, or a folder without the expected files."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into an array of its native shape and dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise IdxError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise IdxError(f"{path}: truncated IDX header ({ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - 4 - 4 * ndim
    if payload != expected:
        raise IdxError(f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds {payload} bytes")
    arr = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file (gzip-compressed when `path` ends in ``.gz``)."""
    path = Path(path)
    arr = np.asarray(array)
    be = arr.astype(arr.dtype.newbyteorder(">"))
    code = _CODES.get(be.dtype.str)
    if code is None:
        raise IdxError(f"IDX cannot store dtype {arr.dtype}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    blob = header + be.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(blob)
    return path


def find_idx_file(folder: str | Path, split: str, kind: str) -> Path:
    """The IDX file of `split` ("train"/"test") and `kind` ("images"/"labels") in `folder`."""
    folder = Path(folder)
    rank = 3 if kind == "images" else 1
    pattern = re.compile(
        rf"^({'|'.join(_SPLIT_PREFIX[split])})-{kind}[-.]idx{rank}-ubyte(\.gz)?$", re.IGNORECASE
    )
    found = sorted(p for p in folder.iterdir() if pattern.match(p.name)) if folder.is_dir() else []
    if not found:
        prefix = _SPLIT_PREFIX[split][0]
        raise IdxError(f"{folder}: no {prefix}-{kind}-idx{rank}-ubyte[.gz] file")
    return found[0]


def read_idx_split(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, H, W), labels int64 (N,)) of one split."""
    img_path, lab_path = find_idx_file(folder, split, "images"), find_idx_file(folder, split, "labels")
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.dtype != np.uint8:
        raise IdxError(f"{img_path}: expected unsigned bytes, got {images.dtype}")
    if images.ndim != 3:
        raise IdxError(f"{img_path}: expected 3 dimensions (N, H, W), got shape {images.shape}")
    images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise IdxError(f"{lab_path}: {labels.shape[0] if labels.ndim else 0} labels for {images.shape[0]} images in {img_path.name}")
    if labels.size and (labels.min() < 0):
        raise IdxError(f"{lab_path}: negative labels")
    return np.ascontiguousarray(images), labels.astype(np.int64)

"""The image-set format every stage shares, and pure transforms on it.

Images are ``uint8`` arrays of shape (N, C, H, W), C in {1, 3}; labels are ``int64`` (N,).
A prepared set lives in one folder as ``{train,test}_{images,labels}.npy`` plus ``meta.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError, first_line
from genlab.runtime import describe_write_error


class ImageArrayError(GenlabError, ValueError):
    """An images file that is not uint8 (N, C, H, W) with C in {1, 3}."""


def check_images(images: np.ndarray, name: str = "images", channels: int | None = None) -> np.ndarray:
    """Validate the shared image format; return `images` unchanged."""
    if not isinstance(images, np.ndarray):
        raise ImageArrayError(f"{name}: expected a numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise ImageArrayError(f"{name}: expected shape (N, C, H, W), got {images.shape}")
    if images.dtype != np.uint8:
        raise ImageArrayError(f"{name}: expected dtype uint8 (0..255), got {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ImageArrayError(f"{name}: expected 1 or 3 channels in axis 1 (N, C, H, W), got shape {images.shape}")
    if channels is not None and images.shape[1] != channels:
        raise ImageArrayError(f"{name}: has {images.shape[1]} channel(s), the model expects {channels}")
    if images.shape[0] == 0:
        raise ImageArrayError(f"{name}: holds no images")
    return images


class PreparedDataError(GenlabError, ValueError):
    """A prepared data folder that is missing, truncated, corrupted or out of step with its
    meta.json; the message names the file and the command that restores it."""


NPY_MAGIC, NPZ_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def restore_hint(path: str | Path, stage: str) -> str:
    """What to run when a DVC output of `stage` is damaged: restore it from DVC's cache, or rebuild it."""
    return f"restore it with `dvc checkout {path}` or rebuild it with `dvc repro -f {stage}`"


def read_npy(path: str | Path, accepted: str = ".npy") -> np.ndarray:
    """``np.load`` of one `.npy` without pickle, as one clear ValueError per failure: missing,
    not a NumPy file (a text or image file renamed `.npy`), truncated, or object (pickled) data."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise ImageArrayError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageArrayError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head != NPY_MAGIC:
        what = "empty" if not head else f"not a readable {accepted} file (it does not start with the NumPy header)"
        raise ImageArrayError(f"{path}: {what}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Object arrays" in msg:
            raise ImageArrayError(f"{path}: holds Python objects (pickled data), which genlab does not load") from None
        if "fully written" in msg or "could only read" in msg or "cannot reshape" in msg:
            raise ImageArrayError(f"{path}: truncated ({msg.split('.')[0]})") from None
        raise ImageArrayError(f"{path}: not a readable .npy file ({first_line(exc)})") from None
    except (OSError, EOFError) as exc:  # a header cut short
        raise ImageArrayError(f"{path}: truncated or corrupted ({exc})") from None


def load_images(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Load a `.npy` (or the ``images`` entry of a `.npz`) and validate it."""
    path = Path(path)
    if not path.exists():
        raise ImageArrayError(f"images file not found: {path}")
    if path.suffix != ".npz":
        return check_images(read_npy(path, ".npy/.npz"), str(path), channels)
    try:
        with open(path, "rb") as fh:
            if fh.read(len(NPZ_MAGIC)) != NPZ_MAGIC:
                raise ImageArrayError(f"{path}: not a .npz file (it is not a zip archive)")
        with np.load(path, allow_pickle=False) as z:
            key = "images" if "images" in z.files else z.files[0]
            arr = z[key]
    except ImageArrayError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile and numpy raise many kinds for a bad archive
        cause = first_line(exc)
        if "allow_pickle" in cause or "Object arrays" in cause:
            cause = "it holds Python objects (pickled data), which genlab does not load"
        raise ImageArrayError(f"{path}: not a readable .npz file: {cause}") from None
    return check_images(arr, str(path), channels)


def load_meta(data_dir: str | Path, stage: str = "prepare_images") -> dict:
    """A prepared folder's meta.json; missing or malformed is a :class:`PreparedDataError`."""
    path = Path(data_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise PreparedDataError(f"{path} is missing: run `dvc repro {stage}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PreparedDataError(f"{path} is not readable JSON ({exc}); {restore_hint(path.parent, stage)}") from None
    if not isinstance(meta, dict):
        raise PreparedDataError(f"{path} does not hold a JSON object; {restore_hint(path.parent, stage)}")
    return meta


def has_labels(meta: dict) -> bool:
    """Whether a prepared set's labels can train a judge classifier, a conditional model or a
    label probe: `prepare_images` records ``has_labels`` (a flat folder, CelebA or one LSUN
    category has none), and one class is no label either."""
    return bool(meta.get("has_labels", True)) and int(meta.get("num_classes", 0)) >= 2


def read_prepared(data_dir: str | Path, name: str, meta: dict, stage: str) -> np.ndarray:
    """One array of a prepared folder, checked against the sha256 its meta.json recorded.

    A truncated, corrupted or replaced file (a half-copied folder, a file from another run)
    is a :class:`PreparedDataError` that names the file and what to run; nothing is trained on it.
    """
    from genlab.runtime import sha256_file

    data_dir = Path(data_dir)
    path = data_dir / name
    if not path.exists():
        raise PreparedDataError(f"{path} is missing; {restore_hint(data_dir, stage)}")
    try:
        arr = read_npy(path)
    except ImageArrayError as exc:
        raise PreparedDataError(f"{exc}; {restore_hint(data_dir, stage)}") from None
    expected = (meta.get("sha256") or {}).get(name)
    if expected is not None and sha256_file(path) != expected:
        raise PreparedDataError(f"{path} does not match {data_dir / 'meta.json'} (sha256 differs: changed after "
                                f"{stage} wrote it); {restore_hint(data_dir, stage)}")
    return arr


def load_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 NCHW, labels int64) of `split` in a prepared data folder, checked against
    its meta.json (checksums, shapes): a damaged folder is a one-line :class:`PreparedDataError`."""
    data_dir = Path(data_dir)
    meta = load_meta(data_dir)
    images = read_prepared(data_dir, f"{split}_images.npy", meta, "prepare_images")
    labels = read_prepared(data_dir, f"{split}_labels.npy", meta, "prepare_images")
    where = f"{data_dir}/{split}_images.npy"
    shape = (meta.get("shape") or {}).get(split)
    if shape is not None and list(images.shape) != list(shape):
        raise PreparedDataError(f"{where} has shape {tuple(images.shape)}, {data_dir}/meta.json says {tuple(shape)}; "
                                f"{restore_hint(data_dir, 'prepare_images')}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise PreparedDataError(f"{data_dir}/{split}_labels.npy holds {labels.shape} labels for {len(images)} images; "
                                f"{restore_hint(data_dir, 'prepare_images')}")
    try:
        check_images(images, where)
    except ImageArrayError as exc:
        raise PreparedDataError(f"{exc}; {restore_hint(data_dir, 'prepare_images')}") from None
    return images, labels.astype(np.int64)


@contextlib.contextmanager
def atomic_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out_dir`; swap it in for `out_dir` (renames only)
    when the block succeeds. A crash, a kill or a full disk leaves the previous `out_dir` whole
    (a prepared set is never half old, half new); at worst a hidden ``.<name>.tmp-*`` remains.
    A failed write is an OSError naming `out_dir` and the cause (``File too large``, ...)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        try:
            yield tmp
        except OSError as exc:
            err = OSError(f"cannot write {out_dir}: {describe_write_error(exc, out_dir.parent)}")
            err.errno = exc.errno  # kept for callers; str(err) stays one plain line
            raise err from exc
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual permissions
        backup = None
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, backup)
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            if backup is not None:
                os.replace(backup, out_dir)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_float(images: np.ndarray, range_: str = "tanh") -> np.ndarray:
    """uint8 -> float32 in [-1, 1] (``tanh``, for GAN outputs) or [0, 1] (``unit``)."""
    x = images.astype(np.float32) / 255.0
    return x * 2.0 - 1.0 if range_ == "tanh" else x


def to_uint8(x: np.ndarray, range_: str = "tanh") -> np.ndarray:
    """Inverse of :func:`to_float`, clipping and rounding to the nearest level."""
    x = (np.asarray(x, dtype=np.float32) + 1.0) / 2.0 if range_ == "tanh" else np.asarray(x, dtype=np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

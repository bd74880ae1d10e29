"""Text corpora for the character-level models: sources, ASCII folding, vocabulary, splits.

Sources (``prepare_text.source``):

* ``pydoc``: Python's own documentation topics bundled with every CPython
  (``pydoc_data.topics``), ~465 kB of English; the offline default.
* ``tinyshakespeare``: the canonical 1,115,394-byte char-rnn corpus, downloaded and
  sha256-checked.
* ``path:<file>``: a text file in any common encoding (``prepare_text.encoding``: ``auto``
  detects it, see :mod:`genlab.data.encodings`; the seed's novels are Windows-1252).

Every corpus is folded to printable ASCII (as in the seed report): Unicode is NFKD-decomposed
so accents fall off (``é`` -> ``e``), tabs become spaces, CR/LF become ``\\n``, and any other
non-ASCII or control character is dropped. Case and punctuation are kept.

``prepare_text`` writes ``data/text/{corpus.txt, vocab.json, train.npy, val.npy, meta.json}``;
the ids are int64 indices into ``vocab.json``'s sorted ``chars``; ``meta.json`` names the
encoding the source was read in.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from genlab.errors import InputError
from genlab.data.arrays import PreparedDataError, atomic_folder, load_meta, read_prepared, restore_hint
from genlab.data.download import OFFLINE_TEXT, fetch
from genlab.data.encodings import TextEncodingError, check_encoding_name, decode_text
from genlab.params import StrictModel
from genlab.runtime import log, sha256_file, write_json, write_npy, write_text

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

SOURCES = ("pydoc", "tinyshakespeare", "path:<file>")


# --------------------------------------------------------------------------------------------
# folding and vocabulary (pure functions)
# --------------------------------------------------------------------------------------------

def fold_ascii(text: str) -> str:
    """Fold `text` to printable ASCII plus newline.

    NFKD first (``é`` -> ``e`` + combining accent, ``…`` -> ``...``, ``ﬁ`` -> ``fi``), then
    tabs -> one space, ``\\r\\n`` and lone ``\\r`` -> ``\\n``, and every other character outside
    ``' '..'~'`` and ``\\n`` (combining marks, curly quotes, dashes, emoji, control codes) is
    dropped. Case and punctuation are kept.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c == "\n" or " " <= c <= "~")


class Vocab:
    """A character vocabulary: ``chars`` sorted, ids are indices into it."""

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars))
        bad = [c for c in chars if len(c) != 1]
        if bad:
            raise ValueError(f"vocabulary entries must be single characters, got {bad!r}")
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        self.chars: list[str] = chars
        self.index: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(set(text))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"Vocab(size={self.size})"

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str) -> np.ndarray:
        """`text` -> int64 ids of shape (len(text),); a ValueError names every unknown character."""
        missing = self.unknown(text)
        if missing:
            raise InputError(
                f"{len(missing)} character(s) not in the vocabulary: {', '.join(repr(c) for c in missing)} "
                f"(the vocabulary has {self.size} characters: {''.join(self.chars)!r})"
            )
        lut = self.index
        return np.fromiter((lut[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """ids -> text; an id outside [0, size) is a ValueError."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in [0, {self.size}), got min {ids.min()} max {ids.max()}")
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> dict:
        return {"chars": list(self.chars)}

    @classmethod
    def from_json(cls, obj: dict | str | Path) -> "Vocab":
        """From the dict ``{"chars": [...]}``, or a path to a ``vocab.json`` holding it."""
        if isinstance(obj, (str, Path)):
            obj = json.loads(Path(obj).read_text())
        if not isinstance(obj, dict) or not isinstance(obj.get("chars"), list):
            raise InputError('a vocabulary must be {"chars": [...]}')
        return cls(obj["chars"])


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """First ``1 - val_fraction`` of the stream for training, the rest for validation
    (contiguous, not shuffled: characters are a sequence)."""
    n_val = int(round(len(ids) * val_fraction))
    n_val = min(max(n_val, 1), len(ids) - 1)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def load_text_data(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, Vocab]:
    """Read what `prepare_text` wrote: (train ids int64, val ids int64, vocab), each file checked
    against the sha256 in meta.json; a damaged folder is a one-line PreparedDataError."""
    data_dir = Path(data_dir)
    meta = load_meta(data_dir, "prepare_text")
    vocab_path = data_dir / "vocab.json"
    hint = restore_hint(data_dir, "prepare_text")
    try:
        vocab = Vocab.from_json(vocab_path)
    except FileNotFoundError:
        raise PreparedDataError(f"{vocab_path} is missing; {hint}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise PreparedDataError(f"{vocab_path} is not a readable vocabulary ({exc}); {hint}") from None
    expected = (meta.get("sha256") or {}).get("vocab.json")
    if expected is not None and sha256_file(vocab_path) != expected:
        raise PreparedDataError(f"{vocab_path} does not match {data_dir / 'meta.json'} (sha256 differs); {hint}")
    train = read_prepared(data_dir, "train.npy", meta, "prepare_text").astype(np.int64, copy=False)
    val = read_prepared(data_dir, "val.npy", meta, "prepare_text").astype(np.int64, copy=False)
    for name, ids in (("train", train), ("val", val)):
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= vocab.size)):
            raise PreparedDataError(f"{data_dir}/{name}.npy does not hold 1-D ids in [0, {vocab.size}); {hint}")
    return train, val, vocab


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------

class PrepareTextParams(StrictModel):
    """The `prepare_text` section of params.yaml."""

    # pydoc (offline default) | tinyshakespeare | path:<file>
    source: str = "pydoc"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_chars: int | None = Field(None, gt=0)  # keep only the first N folded characters
    min_chars: int = Field(1000, ge=2)  # shorter corpora are an error (trainers need whole sequences)
    root: str = "~/.cache/genlab/downloads"  # download cache (tinyshakespeare)
    encoding: str = "auto"  # auto | utf-8 | cp1252 | latin-1 | any Python codec name (path: sources)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        return check_encoding_name(v)

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in ("pydoc", "tinyshakespeare"):
            return v
        if v.startswith("path:") and len(v) > len("path:"):
            return v
        raise InputError(f"unknown text source {v!r} (allowed: {', '.join(SOURCES)})")


def load_source(source: str, root: str | Path = "~/.cache/genlab/downloads",
                encoding: str = "auto") -> tuple[str, str]:
    """(the raw, unfolded text of a source, the encoding it was read in).

    A ``path:`` file that is not text in `encoding` (or, for ``auto``, in any detected one) is a
    one-line :class:`TextEncodingError` naming the file.
    """
    if source == "pydoc":
        from pydoc_data.topics import topics

        # dict order is the file's order, stable within a Python release
        return "\n\n".join(topics[k] for k in topics), "str"  # a Python string: nothing to decode
    if source == "tinyshakespeare":
        path = fetch(TINYSHAKESPEARE_URL, Path(root).expanduser() / "tinyshakespeare" / "input.txt",
                     TINYSHAKESPEARE_SHA256, source="tinyshakespeare", offline_alternatives=OFFLINE_TEXT)
        return path.read_text(encoding="utf-8"), "utf-8"
    if source.startswith("path:"):
        path = Path(source[len("path:"):]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"text source {source!r}: no such file {path}")
        try:
            return decode_text(path.read_bytes(), encoding)
        except TextEncodingError as exc:
            raise TextEncodingError(f"text source {source!r}: {path} {exc}") from None
    raise InputError(f"unknown text source {source!r} (allowed: {', '.join(SOURCES)})")


def read_source(source: str, root: str | Path = "~/.cache/genlab/downloads", encoding: str = "auto") -> str:
    """The raw (unfolded) text of a source."""
    return load_source(source, root, encoding)[0]


def build_corpus(cfg: PrepareTextParams) -> str:
    """Read, fold and truncate the configured source; a too-short corpus is a ValueError."""
    return _build_corpus(cfg)[0]


def _build_corpus(cfg: PrepareTextParams) -> tuple[str, str]:
    raw, encoding = load_source(cfg.source, cfg.root, cfg.encoding)
    text = fold_ascii(raw)
    if cfg.max_chars is not None:
        text = text[: cfg.max_chars]
    if len(text) < cfg.min_chars:
        raise InputError(
            f"text source {cfg.source!r} gives {len(text)} characters after folding to ASCII"
            f"{' and max_chars' if cfg.max_chars is not None else ''}; at least min_chars={cfg.min_chars} "
            "are needed to train on whole sequences"
        )
    return text, encoding


def prepare_text(cfg: PrepareTextParams, out_dir: str | Path) -> dict:
    """Write corpus.txt, vocab.json, train.npy, val.npy and meta.json to `out_dir`; return meta."""
    out_dir = Path(out_dir)
    text, encoding = _build_corpus(cfg)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    train, val = split_ids(ids, cfg.val_fraction)
    meta = {
        "source": cfg.source,
        "encoding": encoding,  # what the source was read in (prepare_text.encoding, or what auto detected)
        "n_chars": len(text),
        "n_train": int(train.size),
        "n_val": int(val.size),
        "vocab_size": vocab.size,
        "val_fraction": cfg.val_fraction,
        "max_chars": cfg.max_chars,
    }
    # written beside out_dir and swapped in whole: a kill never leaves new ids with an old vocabulary
    with atomic_folder(out_dir) as tmp:
        write_text(tmp / "corpus.txt", text)
        write_json(tmp / "vocab.json", vocab.to_json())
        write_npy(tmp / "train.npy", train)
        write_npy(tmp / "val.npy", val)
        meta["sha256"] = {name: sha256_file(tmp / name) for name in ("corpus.txt", "vocab.json", "train.npy", "val.npy")}
        write_json(tmp / "meta.json", meta)
    log(f"prepare_text: {cfg.source} ({encoding}): {len(text):,} chars, vocab {vocab.size}, train {train.size:,} / val {val.size:,}")
    return meta

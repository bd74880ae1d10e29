"""Self-describing checkpoints: model config, states, step and RNG state in one file.

A checkpoint rebuilds its model with no other file, and loads with
``torch.load(..., weights_only=True)``: configs are plain dicts, RNG states are tensors or
lists, so opening a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import GenlabError, first_line
from genlab.runtime import torch_save

FORMAT_VERSION = 1


class CheckpointError(GenlabError, RuntimeError):
    """A checkpoint that is missing, corrupted or of the wrong kind."""


def rng_state() -> dict[str, Any]:
    """Every RNG a training loop draws from, as weights_only-safe values."""
    np_state = np.random.get_state()
    return {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(path: str | Path, *, kind: str, config: dict[str, Any], **payload: Any) -> Path:
    """Atomically write ``{"kind", "config", "format_version", **payload}`` to `path`.

    `payload` holds state dicts (``model=...``, ``optimizer=...``), ``step``, ``epoch``,
    ``rng=rng_state()``, histories: anything `weights_only` loading accepts.
    """
    return torch_save({"kind": kind, "config": config, "format_version": FORMAT_VERSION, **payload}, path)


def load_failure(exc: BaseException) -> str:
    """Why torch.load refused a file, in one line. A file that needs unpickling is named for what
    it is; torch's own hint (to load it again without weights_only) is never repeated: following
    it runs whatever code the file carries."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        return ("it holds pickled Python objects" + (f" ({found.group(1)})" if found else "")
                + ", which genlab never loads")
    return first_line(exc, typed=True)


def load_checkpoint(path: str | Path, kind: str | tuple[str, ...] | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with one clear error per failure."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"checkpoint {path} is corrupted or not a genlab checkpoint: {load_failure(exc)}") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a genlab checkpoint (no kind/config)")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and ckpt["kind"] not in kinds:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt['kind']!r} model, expected {' or '.join(map(repr, kinds))}")
    return ckpt

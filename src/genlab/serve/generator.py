"""One trained generator (GAN or VAE) behind validated sampling and traversal calls.

Both the web app (`genlab serve`) and the MLflow pyfunc model go through
:class:`GeneratorService`, so a seed means the same images everywhere:

* ``sample(seed, count)`` draws ``count`` latents from N(0, I) with a CPU generator seeded by
  ``seed`` and decodes them exactly as `genlab sample --seed S --n N` does (balanced labels
  0, 1, ..., K-1, 0, ... for a conditional model unless one class is asked for).
* ``traverse(seed, seed2, steps, count)`` walks from the first image of seed's grid of
  ``count`` to the first image of seed2's grid along the same path the `render` stage draws
  between two consecutive points (:func:`genlab.render.traversal.traversal_path`):
  ``steps + 2`` images, both ends included.

Bad input raises :class:`BadRequest` (a ValueError) with a one-line message; servers answer
it with a 4xx.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

GENERATOR_KINDS = ("gan", "vae")
MAX_COUNT = 256  # images per request: a 256-image grid decodes in well under a second on CPU
MAX_STEPS = 500  # images strictly between the two ends of a traversal
MAX_SEED = 2**53  # exact in JSON numbers and JavaScript, so the web page shows the seed it used
INTERPOLATIONS = ("linear", "slerp")


class BadRequest(ValueError):
    """Input a client can fix: answered with a 4xx and this message, never a crash."""


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi], or a BadRequest naming `name` and the allowed range."""
    if isinstance(value, bool) or value is None:
        raise BadRequest(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not float(value).is_integer():
            raise BadRequest(f"{name} must be an integer, got {value!r}")
        value = int(value)
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, str) and value.strip() != str(iv):
        raise BadRequest(f"{name} must be an integer, got {value!r}")
    if not lo <= iv <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {iv}")
    return iv


def encode_png(image: np.ndarray) -> str:
    """One uint8 (C, H, W) image -> base64 of a lossless PNG (grey for C=1, RGB for C=3)."""
    from PIL import Image

    hwc = image.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    pil = Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(data: str | bytes) -> np.ndarray:
    """base64 PNG (as :func:`encode_png` writes) -> uint8 (C, H, W)."""
    from PIL import Image

    try:
        arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(data, validate=True))))
    except Exception as exc:  # noqa: BLE001 - PIL and base64 raise many kinds for bad bytes
        raise BadRequest(f"not a base64 PNG image: {type(exc).__name__}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(np.uint8)


@dataclass
class GeneratorService:
    """A loaded generator that follows genlab's decode contract (``z_dim``, ``num_classes``,
    ``image_shape``, ``decode(z, labels)``), with the name it is served under."""

    name: str
    kind: str
    model: Any
    class_names: list[str] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = ""
    # one decode at a time: parallel requests would only fight over the same cores
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str | None = None,
                        device: torch.device | str = "cpu") -> "GeneratorService":
        """Load a `train_gan` / `train_vae` checkpoint (kind read from the file, weights_only)."""
        from genlab.checkpoint import load_checkpoint
        from genlab.generate import load_generator

        ckpt = load_checkpoint(path, kind=GENERATOR_KINDS)
        device = torch.device(device)
        model = load_generator(ckpt["kind"], path, device)
        num_classes = getattr(model, "num_classes", None)
        return cls(name=name or ckpt["kind"], kind=ckpt["kind"], model=model,
                   class_names=_class_names(ckpt, num_classes), device=device, source=str(path))

    @property
    def z_dim(self) -> int:
        return int(self.model.z_dim)

    @property
    def num_classes(self) -> int | None:
        k = getattr(self.model, "num_classes", None)
        return int(k) if k else None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.model.image_shape)  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        """What a client needs to build a request: shape, classes and the limits."""
        return {"name": self.name, "kind": self.kind, "z_dim": self.z_dim,
                "image_shape": list(self.image_shape), "conditional": self.num_classes is not None,
                "classes": self.class_names or [], "max_count": MAX_COUNT, "max_steps": MAX_STEPS,
                "source": self.source}

    def check_label(self, label: Any) -> int | None:
        """None (balanced labels / unconditional) or a valid class index; accepts a class name."""
        if label is None or (isinstance(label, str) and label.strip() == ""):
            return None
        if self.num_classes is None:
            raise BadRequest(f"model {self.name!r} is unconditional: it takes no class (got {label!r})")
        if isinstance(label, str) and self.class_names and label in self.class_names:
            return self.class_names.index(label)
        try:
            return check_int("label", label, 0, self.num_classes - 1)
        except BadRequest:
            shown = self.class_names and self.class_names != [str(i) for i in range(self.num_classes)]
            names = f" ({', '.join(self.class_names)})" if shown else ""
            raise BadRequest(f"unknown class {label!r}: model {self.name!r} has classes 0-{self.num_classes - 1}{names}") from None

    def latents(self, seed: int, count: int) -> torch.Tensor:
        """(count, z_dim) N(0, I) latents of `seed`: the same draw as `genlab sample` and `generate`."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(count, self.z_dim, generator=gen)

    def labels(self, count: int, label: int | None) -> torch.Tensor | None:
        if self.num_classes is None:
            return None
        if label is None:
            from genlab.generate import balanced_labels

            return balanced_labels(count, self.num_classes)
        return torch.full((count,), label, dtype=torch.long)

    def sample(self, seed: Any, count: Any = 16, label: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (count, C, H, W) images and their labels (None when unconditional)."""
        seed = check_int("seed", seed, 0, MAX_SEED)
        count = check_int("count", count, 1, MAX_COUNT)
        labels = self.labels(count, self.check_label(label))
        return self._decode(self.latents(seed, count), labels), _np(labels)

    def traverse(self, seed: Any, seed2: Any, steps: Any = 30, count: Any = 1, label: Any = None,
                 interpolation: Literal["linear", "slerp"] | str = "linear") -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (steps + 2, C, H, W): from the first image of seed's `count`-grid to seed2's."""
        from genlab.render.traversal import traversal_path

        seed = check_int("seed", seed, 0, MAX_SEED)
        seed2 = check_int("seed2", seed2, 0, MAX_SEED)
        steps = check_int("steps", steps, 0, MAX_STEPS)
        count = check_int("count", count, 1, MAX_COUNT)
        if interpolation not in INTERPOLATIONS:
            raise BadRequest(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
        label = self.check_label(label)
        points = torch.stack([self.latents(seed, count)[0], self.latents(seed2, count)[0]])  # (2, z_dim)
        z = traversal_path(points, steps, interpolation)  # (steps + 2, z_dim)
        # a conditional path keeps the class of its start, as render's segments do
        first = self.labels(count, label)
        labels = None if first is None else first[:1].repeat(len(z))
        return self._decode(z, labels), _np(labels)

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> np.ndarray:
        from genlab.generate import decode_uint8

        with self._lock:
            return decode_uint8(self.model, z, labels, device=self.device, desc=f"decode {self.name}")


def _np(labels: torch.Tensor | None) -> np.ndarray | None:
    return None if labels is None else labels.numpy().astype(np.int64)


def _class_names(ckpt: dict[str, Any], num_classes: int | None) -> list[str] | None:
    """The class names a checkpoint carries (top level or in its config), else "0".."K-1"."""
    if not num_classes:
        return None
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    for cand in (ckpt.get("class_names"), config.get("class_names"), (config.get("model") or {}).get("class_names")
                 if isinstance(config.get("model"), dict) else None):
        if isinstance(cand, (list, tuple)) and len(cand) == num_classes:
            return [str(c) for c in cand]
    return [str(i) for i in range(num_classes)]


def find_generators(models_dir: str | Path, device: torch.device | str = "cpu") -> dict[str, GeneratorService]:
    """The trained generators under `models_dir` (``<dir>/gan/checkpoint.pt``, ``<dir>/vae/...``)."""
    models_dir = Path(models_dir)
    found = {}
    for kind in GENERATOR_KINDS:
        path = models_dir / kind / "checkpoint.pt"
        if path.exists():
            found[kind] = GeneratorService.from_checkpoint(path, kind, device)
    return found

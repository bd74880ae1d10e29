"""The one contract every model module in `genlab.models` follows.

Each ``genlab/models/<name>.py`` exposes the same four things:

* ``Config``: a dataclass built on :class:`ModelConfig`, with ``to_dict()`` / ``from_dict()``;
  an impossible value raises :class:`ConfigError`, a plain ``ValueError`` that names the config
  field (``d_layers``), never a params.yaml key path: mapping fields to key paths is the params
  layer's job (:func:`genlab.params.model_section`).
* ``build(config)``: the ``nn.Module`` (or the pair of them, for the GAN).
* ``save(path, model, **extra)``: a self-describing checkpoint (config + weights + extra).
* ``load(path, device)``: the model rebuilt from that file alone, in eval mode; the file is read
  with ``torch.load(weights_only=True)`` and its kind is checked.

Value ranges and choices are declared once, on the dataclass field (``bounds(ge=2, le=4)`` in
its metadata, ``Literal`` choices in its type), and checked here on construction; the params
layer derives its pydantic fields from the same declarations, so defaults cannot drift.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

import torch
from torch import nn

from genlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from genlab.errors import GenlabError, first_line

C = TypeVar("C", bound="ModelConfig")


class ConfigError(GenlabError, ValueError):
    """A model config value that cannot build a model. ``key`` is the config field's name."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def bounds(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> dict[str, dict[str, float]]:
    """Field metadata declaring a numeric range: ``field(default=3, metadata=bounds(ge=2, le=4))``."""
    return {"bounds": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}}


_OPS = {"ge": (lambda a, b: a >= b, ">="), "gt": (lambda a, b: a > b, ">"),
        "le": (lambda a, b: a <= b, "<="), "lt": (lambda a, b: a < b, "<")}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """`value` coerced to `tp` (int -> float, list -> tuple), or ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_type(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(key, f"must be of type {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            raise ConfigError(key, f"must be a list, got {value!r}")
        item = (typing.get_args(tp) or (Any,))[0]
        vals = [_check_type(key, v, item) for v in value]
        return tuple(vals) if origin is tuple else list(vals)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    return value


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args) + " or null"


class ModelConfig:
    """Mixin for the model config dataclasses: field checks on construction, dict round trip.

    Subclasses are ``@dataclass``es; they override :meth:`check` for rules between fields.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _check_type(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
            for op, limit in f.metadata.get("bounds", {}).items():
                test, sym = _OPS[op]
                if value is not None and not test(value, limit):
                    raise ConfigError(f.name, f"must be {sym} {_num(limit)}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Rules between fields; raise :class:`ConfigError`. The default has none."""

    def to_dict(self) -> dict[str, Any]:
        """Plain, weights_only-safe values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(unknown[0], f"unknown key (allowed: {', '.join(names)})")
        return cls(**d)

    def differs_from_default(self, name: str) -> bool:
        f = next(f for f in dataclasses.fields(self) if f.name == name)  # type: ignore[arg-type]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        return getattr(self, name) != default

    def only_for(self, selector: str, applies: dict[str, tuple[str, ...]]) -> None:
        """Fields that apply only to some values of `selector` (e.g. ``arch``) must keep their
        defaults otherwise: a setting that would be silently ignored is an error."""
        current = getattr(self, selector)
        for name, allowed in applies.items():
            if current not in allowed and self.differs_from_default(name):
                raise ConfigError(name, f"applies only to {selector} {' or '.join(allowed)} "
                                        f"({selector} is {current}), got {getattr(self, name)!r}")


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_model(path: str | Path, kind: str, config: ModelConfig, states: dict[str, nn.Module],
               **extra: Any) -> Path:
    """A checkpoint ``{kind, config: config.to_dict(), <name>: state_dict for each of states, **extra}``."""
    payload = {name: state_dict_cpu(m) for name, m in states.items()}
    return save_checkpoint(path, kind=kind, config=config.to_dict(), **payload, **extra)


def load_model(path: str | Path, kind: str, config_cls: type[C], build: Callable[[C], Any],
               state_keys: dict[str, Callable[[Any], nn.Module]], device: str | torch.device = "cpu"
               ) -> tuple[Any, dict[str, Any]]:
    """(built model(s) with their states loaded, the checkpoint dict). `state_keys` maps a key of
    the checkpoint to the module (of what `build` returned) that takes it. A checkpoint whose
    weights do not fit its own config is a :class:`CheckpointError`."""
    ckpt = load_checkpoint(path, kind, map_location="cpu")
    try:
        config = config_cls.from_dict(dict(ckpt["config"]))
        built = build(config)
        for key, pick in state_keys.items():
            pick(built).load_state_dict(ckpt[key])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not hold a valid {kind} model: {first_line(exc)}") from None
    return built, ckpt

"""Typed params: `params.yaml` becomes validated config objects at the stage boundary.

Every stage reads the shared sections (`seed`, `device`, `tracking`) plus its own section and
validates both before doing any work. A bad value raises :class:`ParamsError` whose message is
one line naming the key path, e.g. ``params.yaml: gan.lr: must be > 0, got -1``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import GenlabError, first_line

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every params section: unknown keys are errors, values are validated on assignment."""

    # allow_inf_nan: `.inf` / `.nan` parse as floats in YAML and would pass every range check
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)


class TrackingParams(StrictModel):
    enabled: bool = True
    experiment: str = Field("genlab", min_length=1)
    # Log trained models as MLflow PyTorch models (slower; the DVC checkpoint is always written).
    log_models: bool = True
    # also register each logged model as a new version of `<register_as>-<model name>` (None: don't)
    register_as: str | None = Field(None, min_length=1)


class DistributedParams(StrictModel):
    """Data-parallel training: > 1 launches the torch train stages through torchrun (DDP)."""

    nproc: int = Field(1, ge=1, le=256)  # processes (GPUs, or CPU processes with gloo) per stage
    nnodes: int = Field(1, ge=1, le=1024)  # machines; > 1: they meet through a c10d rendezvous at rdzv_endpoint
    node_rank: int = Field(0, ge=0)  # this machine, 0..nnodes-1; node 0 holds rank 0, which writes the outputs
    rdzv_endpoint: str | None = None  # host:port on node 0 that every node reaches

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        host, _, port = (v or "").rpartition(":")
        if v is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("must be host:port with a port in 1..65535, e.g. node0.example.org:29400")
        return v

    @model_validator(mode="after")
    def _nodes_fit(self) -> "DistributedParams":
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes} (nodes count from 0)")
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ValueError(f"nnodes {self.nnodes} needs rdzv_endpoint: host:port of node 0, the same on every node")
        return self


class CommonParams(StrictModel):
    """The sections every stage shares."""

    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tracking: TrackingParams = TrackingParams()
    distributed: DistributedParams = DistributedParams()


class ParamsError(GenlabError, ValueError):
    """A params file that cannot drive a stage; ``str(err)`` is a one-line message."""


_SHARED = tuple(CommonParams.model_fields)


def _describe(err: dict[str, Any], model: type[BaseModel] | None) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "greater_than":
        return f"must be > {_num(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])}"
    if kind == "less_than":
        return f"must be < {_num(ctx['lt'])}"
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx['le'])}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, err["loc"][:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}"
    if kind == "missing":
        return "is required"
    if kind in ("value_error", "assertion_error"):
        msg = str(ctx.get("error", err["msg"]))
        return msg[0].lower() + msg[1:] if msg else kind
    return err["msg"][0].lower() + err["msg"][1:] if err["msg"] else kind


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _allowed_keys(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The field names of the (sub)model at `loc`, for 'unknown key' messages."""
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        ann = model.model_fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


def format_validation_error(
    exc: ValidationError, prefix: str, model: type[BaseModel] | None = None, source: str = "params.yaml"
) -> str:
    """One line per problem: ``params.yaml: <prefix>.<key path>: <what is wrong>, got <value>``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        cause = (err.get("ctx") or {}).get("error")
        if getattr(cause, "key", None):  # a model ConfigError raised while validating: it names the field
            path = f"{path}.{cause.key}" if path else cause.key
            lines.append(f"{source}: {path}: {cause.message}")
            continue
        line = f"{source}: {path}: {_describe(err, model)}"
        if err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
            line += f", got {err['input']!r}"
        lines.append(line)
    return "\n".join(lines)


def validate_section(raw: Any, section: str, model: type[M], source: str = "params.yaml") -> M:
    """Validate one section (a dict from YAML) into `model`, raising :class:`ParamsError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: {section}: must be a mapping, got {raw!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, section, model, source)) from None


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line that keeps where it is: ``line 3, column 8: <problem>``."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def duplicate_key(text: str) -> str | None:
    """The first key a YAML mapping of `text` repeats, as ``gan.lr: duplicate key (lines 12 and 30)``,
    or None. PyYAML keeps the last value silently; DVC refuses the file."""
    def walk(node: yaml.Node, path: tuple[str, ...]) -> str | None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if isinstance(key_node, yaml.ScalarNode) and key != "<<":
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        return f"{'.'.join((*path, key))}: duplicate key (lines {seen[key]} and {line}); keep one"
                    seen[key] = line
                found = walk(value_node, (*path, key))
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, (*path, str(i)))
                if found:
                    return found
        return None

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return walk(root, ()) if root is not None else None


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The parsed params file; a missing, unreadable, malformed or empty file is a one-line ParamsError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
        duplicate = duplicate_key(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {yaml_error_line(exc)}") from None
    if duplicate:
        raise ParamsError(f"{path}: {duplicate}")
    if data is None:
        raise ParamsError(f"{path}: is empty; expected a mapping of sections (seed, device, tracking, and one per stage)")
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got a {type(data).__name__}")
    return data


def load_params(
    section: str, model: type[M], path: str | Path = "params.yaml"
) -> tuple[CommonParams, M]:
    """Load the shared sections and `section` of `path`, validated."""
    data = read_params(path)
    source = Path(path).name
    common = validate_section({k: data[k] for k in _SHARED if k in data}, "", CommonParams, source)
    if section not in data:
        raise ParamsError(f"{source}: {section}: section is missing")
    return common, validate_section(data[section], section, model, source)


def load_params_or_exit(
    section: str, model: type[M], path: str | Path = "params.yaml"
) -> tuple[CommonParams, M]:
    """For stage scripts: like :func:`load_params`, but a bad file exits 2 with its message."""
    try:
        return load_params(section, model, path)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (MLflow params are flat)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------- model configs -> sections


def resume_key(cfg: BaseModel, may_change: Iterable[str]) -> dict[str, Any]:
    """The settings a resume checkpoint must share with this run: every field of `cfg` except
    those in `may_change` (a trainer's short list of keys that may differ between a run and its
    resume: run length, logging and checkpoint intervals, figures). A field added to a params
    class is in the key without anyone listing it; nanoGPT checks its model args the same way."""
    fields = type(cfg).model_fields
    unknown = sorted(set(may_change) - set(fields))
    if unknown:
        raise KeyError(f"{type(cfg).__name__} has no field {', '.join(unknown)} (in its may-change list)")
    values = cfg.model_dump(mode="json")
    return {k: values[k] for k in fields if k not in set(may_change)}


class ModelSection(StrictModel):
    """Base of a params section that holds a model's keys (made by :func:`model_section`):
    the model config's own checks run when the section is validated, and
    :meth:`config_for` builds the config for the data, mapping errors to key paths."""

    section_spec: ClassVar[tuple[type, str, dict[str, str]]]  # (config class, section, data field -> key path)
    section_model_keys: ClassVar[tuple[str, ...]] = ()

    def placeholder_data(self) -> dict[str, Any]:
        """Data-derived config fields to check the model keys with before any data is read."""
        return {}

    def _model_values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.section_model_keys}

    @model_validator(mode="after")
    def _model_keys_apply(self):  # noqa: ANN202
        if self.section_model_keys:  # the raw ConfigError: the validation error names its key
            self.section_spec[0](**self.placeholder_data(), **self._model_values())
        return self

    def config_for(self, **data: Any) -> Any:
        """The model config for data with these derived fields (``image_size=28``, ...); a value
        that does not fit is a ParamsError naming the key path (``gan.arch``, ``prepare_images.image_size``)."""
        config_cls, section, data_keys = self.section_spec
        try:
            return config_cls(**data, **self._model_values())
        except ValueError as exc:
            raise config_error(exc, section, data_keys) from None


def model_section(name: str, config_cls: type, base: type[M], *, section: str, exclude: tuple[str, ...] = (),
                  data_key_paths: dict[str, str] | None = None, doc: str | None = None,
                  defaults: dict[str, Any] | None = None) -> type[M]:
    """A params section class: `base`'s training keys (a :class:`ModelSection`) plus the fields
    of the model config dataclass `config_cls` (minus `exclude`: those the stage derives from the
    data), with the same types, defaults and ranges (``bounds`` metadata). Declared once, so
    they cannot drift. `defaults` replaces the model's default of a field where the training
    default (params.yaml's) differs from the model's own."""
    import dataclasses
    import typing

    from pydantic import create_model

    hints = typing.get_type_hints(config_cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        default = (defaults or {}).get(f.name, default)
        fields[f.name] = (hints[f.name], Field(default, **f.metadata.get("bounds", {})))
    cls = create_model(name, __base__=base, __module__=base.__module__, **fields)
    cls.__doc__ = doc or base.__doc__
    cls.section_spec = (config_cls, section, dict(data_key_paths or {}))
    cls.section_model_keys = tuple(fields)
    return cls


def config_error(exc: ValueError, section: str, data_keys: dict[str, str] | None = None,
                 source: str = "params.yaml") -> ParamsError:
    """A model :class:`~genlab.models.contract.ConfigError` as a ParamsError naming the key path:
    ``gan.d_layers``, or for fields the stage derives from the data, the key that sets them
    (`data_keys`, e.g. ``{"image_size": "prepare_images.image_size"}``)."""
    key = getattr(exc, "key", None)
    if key is None:
        return ParamsError(f"{source}: {section}: {exc}")
    path = (data_keys or {}).get(key, f"{section}.{key}")
    return ParamsError(f"{source}: {path}: {getattr(exc, 'message', str(exc))}")

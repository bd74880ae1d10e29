"""Study definitions (``studies.yaml``): a grid of params overrides, the metrics that judge
it and the figures that show it, validated like every params section.

A study expands to candidates; each candidate is one DVC experiment named
``<study>--<candidate>`` whose params are params.yaml with the study's ``base`` overrides
(plus ``gpu`` with ``--preset gpu``) and the candidate's own.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from genlab.errors import first_line
from genlab.params import ParamsError, StrictModel, read_params, validate_section

STUDY_SEPARATOR = "--"  # experiment name = <study>--<candidate> (genlab.tracking tags runs from it)
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
Scalar = int | float | str | bool | None


class MetricSpec(StrictModel):
    """One number per candidate: a key of a metrics JSON file, or a statistic of a plot column."""

    label: str = Field(min_length=1)
    file: str | None = None      # metrics/evaluate.json
    key: str | None = None       # dotted path inside it: gan.fid
    plot: str | None = None      # plots/gan/losses.tsv
    column: str | None = None    # d_loss_real
    stat: Literal["last", "min", "max", "mean", "std"] = "last"  # over the plot column's rows
    skip: int = Field(0, ge=0)   # plot rows to drop first (the first steps' transient)
    goal: Literal["min", "max"] | None = None  # the first metric with a goal gives the verdict
    fmt: str = ".4g"

    @model_validator(mode="after")
    def _one_source(self) -> MetricSpec:
        if bool(self.file and self.key) == bool(self.plot and self.column):
            raise ValueError("give either file + key (a metrics JSON) or plot + column (a plots TSV)")
        return self


class FigureSpec(StrictModel):
    """One figure of the comparison page, drawn from every candidate's outputs."""

    kind: Literal["grids", "image", "curves", "text"]
    title: str = Field(min_length=1)
    # grids: a path pattern with {epoch} (reports/gan/epoch_{epoch:03d}.png); image/text: a file
    path: str | None = None
    # grids: the epochs to show; those a run does not have are dropped, and when none is left
    # up to `max_columns` evenly spaced epochs of the ones it has (always the last)
    epochs: list[int] | None = None
    max_columns: int = Field(5, ge=1, le=12)
    # curves: a plots TSV, its x column and the y columns (one panel each, one line per candidate)
    plot: str | None = None
    x: str = "step"
    y: list[str] = []
    smooth: int = Field(1, ge=1)  # moving-average window over the rows
    chars: int = Field(600, ge=1)  # text: characters shown per candidate

    @model_validator(mode="after")
    def _fields_of_kind(self) -> FigureSpec:
        if self.kind in ("grids", "image", "text") and not self.path:
            raise ValueError(f"a {self.kind} figure needs a path")
        if self.kind == "grids" and "{epoch" not in (self.path or ""):
            raise ValueError("a grids figure's path must contain {epoch} (e.g. reports/gan/epoch_{epoch:03d}.png)")
        if self.kind == "curves" and not (self.plot and self.y):
            raise ValueError("a curves figure needs plot and y")
        return self


class StudySpec(StrictModel):
    """One study: what varies (grid and/or candidates), what stays (base), what judges it."""

    description: str = Field(min_length=1)
    seed_report: str = ""  # the seed report's conclusion, printed beside the verdict to check it
    target: str = Field(min_length=1)  # the dvc.yaml stage each experiment runs up to
    base: dict[str, Any] = {}  # overrides every candidate shares (the CPU budget)
    gpu: dict[str, Any] = {}   # applied over base with --preset gpu
    grid: dict[str, list[Any]] = {}  # the cartesian product of these values
    candidates: list[dict[str, Any]] = []  # and/or explicit override sets (these come first)
    metrics: list[MetricSpec] = Field(min_length=1)
    figures: list[FigureSpec] = []

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"{key}: needs at least one value")
        return v

    @model_validator(mode="after")
    def _has_candidates(self) -> StudySpec:
        if not self.grid and not self.candidates:
            raise ValueError("give a grid or candidates (what varies between the experiments)")
        if not any(m.goal for m in self.metrics):
            raise ValueError("metrics: give one metric a goal (min or max); it decides the verdict")
        return self


class StudiesFile(StrictModel):
    studies: dict[str, StudySpec] = Field(min_length=1)

    @field_validator("studies")
    @classmethod
    def _names(cls, v: dict[str, StudySpec]) -> dict[str, StudySpec]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(f"study name {name!r}: use lower-case letters, digits and _ (it names DVC experiments)")
        return v


@dataclass(frozen=True)
class Candidate:
    """One experiment of a study."""

    study: str
    name: str                     # unique in the study, a valid git ref component
    label: str                    # for people: "d_layers=4, d_dropout=0.2"
    varied: dict[str, Any]        # the candidate's own overrides (what the table shows)
    overrides: dict[str, Any]     # base (+ gpu) + varied: every -S of its `dvc exp run`

    @property
    def exp_name(self) -> str:
        return f"{self.study}{STUDY_SEPARATOR}{self.name}"


def load_studies(path: str | Path) -> StudiesFile:
    """The validated studies file; any problem is a one-line :class:`ParamsError`."""
    path = Path(path)
    data = read_params(path) if path.exists() else None
    if data is None:
        raise ParamsError(f"{path}: file not found (the study definitions; see README 'Studies')")
    return validate_section(data, "", StudiesFile, source=path.name)


def get_study(studies: StudiesFile, name: str, source: str = "studies.yaml") -> StudySpec:
    if name not in studies.studies:
        raise ParamsError(f"{source}: no study {name!r} (studies: {', '.join(studies.studies)})")
    return studies.studies[name]


def format_value(value: Any) -> str:
    """A value as DVC's ``-S key=value`` (Hydra override syntax) reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise ParamsError(f"cannot pass a {type(value).__name__} to dvc exp run -S: {value!r}")


def _name_part(value: Any) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").replace("..", ".") or "x"


def candidate_name(varied: dict[str, Any]) -> str:
    """`{gan.d_layers: 4, gan.d_dropout: 0.2}` -> ``d_layers-4_d_dropout-0.2`` (a git ref component)."""
    return "_".join(f"{key.rsplit('.', 1)[-1]}-{_name_part(v)}" for key, v in varied.items())


def expand(study_name: str, study: StudySpec, preset: Literal["cpu", "gpu"] = "cpu") -> list[Candidate]:
    """The study's candidates in definition order: the explicit ones, then the grid's product."""
    shared = {**study.base, **(study.gpu if preset == "gpu" else {})}
    varied_sets = [dict(c) for c in study.candidates]
    if study.grid:
        varied_sets += [dict(zip(study.grid, combo)) for combo in itertools.product(*study.grid.values())]
    out, seen = [], {}
    for varied in varied_sets:
        if not varied:
            raise ParamsError(f"studies.yaml: studies.{study_name}.candidates: an empty candidate (give each at least one key)")
        name = candidate_name(varied)
        if name in seen:
            raise ParamsError(f"studies.yaml: studies.{study_name}: two candidates are both {name!r}")
        seen[name] = True
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in varied.items())
        out.append(Candidate(study_name, name, label, varied, {**shared, **varied}))
    return out


def get_key(params: dict[str, Any], key: str) -> Any:
    """`params["gan"]["lr"]` for ``gan.lr``; KeyError when a part is missing."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_key(params: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = params
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def same_value(a: Any, b: Any) -> bool:
    """Equal as params: 1e-4 == 0.0001, 2 == 2.0, lists element-wise."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def check_candidates(candidates: list[Candidate], params: dict[str, Any], source: str = "studies.yaml") -> None:
    """Every override names a key of params.yaml and gives a value its section accepts;
    raises a one-line :class:`ParamsError` naming the candidate and key otherwise (before
    anything is queued)."""
    import copy

    from genlab.params import CommonParams
    from genlab.sections import SECTIONS, config_class

    for cand in candidates:
        merged = copy.deepcopy(params)
        for key, value in cand.overrides.items():
            try:
                get_key(params, key)
            except KeyError:
                raise ParamsError(f"{source}: studies.{cand.study}: {key}: no such key in params.yaml") from None
            set_key(merged, key, value)
        sections = {key.split(".")[0] for key in cand.overrides}
        for section in sorted(sections):
            where = f"{source}: studies.{cand.study} candidate {cand.name}"
            try:
                if section in SECTIONS:
                    validate_section(merged[section], section, config_class(section), source=where)
                elif section in CommonParams.model_fields:
                    validate_section({k: merged[k] for k in CommonParams.model_fields if k in merged}, "", CommonParams, source=where)
            except ParamsError as exc:
                raise ParamsError(first_line(exc)) from None

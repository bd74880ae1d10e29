"""Presets: small YAML files of params overrides in ``presets/``, run as named DVC experiments.

A preset ``presets/NAME.yaml`` is shaped like params.yaml but holds only the keys that differ,
under a leading comment that says why. ``genlab preset run NAME`` turns it into
``dvc exp run -n NAME -S section.key=value ...``, so the run is an ordinary DVC experiment
(``dvc exp show`` lists it, its params.yaml holds the overrides) and MLflow names its parent
run after it.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from genlab.params import ParamsError, read_params
from genlab.study.spec import format_value

PRESETS_DIR = "presets"
# a string DVC's -S (Hydra override grammar) reads unquoted: no spaces, quotes, brackets or commas
_PLAIN = re.compile(r"[A-Za-z/][\w/.:+@-]*")


def preset_names(directory: str | Path = PRESETS_DIR) -> list[str]:
    """The presets in `directory`, sorted by name (``presets/quick.yaml`` -> ``quick``)."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def preset_path(name: str, directory: str | Path = PRESETS_DIR) -> Path:
    """The file of preset `name`; an unknown name is a one-line ParamsError listing the known ones."""
    path = Path(directory) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(preset_names(directory)) or "none"
        raise ParamsError(f"{name}: no such preset in {directory}/ (presets: {known})")
    return path


def preset_summary(name: str, directory: str | Path = PRESETS_DIR) -> str:
    """The first sentence of the preset's leading comment, without a leading ``NAME:`` (what
    `genlab preset list` shows)."""
    lines = []
    for line in preset_path(name, directory).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines).removeprefix(f"{name}:").strip()
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def load_preset(name: str, directory: str | Path = PRESETS_DIR) -> dict[str, Any]:
    """The preset's overrides as a nested mapping (a preset without a leading comment is refused:
    the comment is where it says why)."""
    path = preset_path(name, directory)
    data = read_params(path)
    if not path.read_text(encoding="utf-8").lstrip().startswith("#"):
        raise ParamsError(f"{path}: starts without a comment; say in one why this preset exists")
    return data


def flatten(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{gan: {epochs: 1}}`` -> ``{"gan.epochs": 1}``; lists stay values (as in params.yaml)."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def merge(params: dict[str, Any], overrides: dict[str, Any], source: str = "preset") -> dict[str, Any]:
    """`params` with `overrides` applied; a key that params.yaml does not have is a ParamsError
    (``dvc exp run -S`` would add it, and a typo would then fail later in check_params)."""
    merged = copy.deepcopy(params)
    for key, value in flatten(overrides).items():
        node = merged
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"{source}: {key}: no such key in params.yaml")
            node = node[part]
        if last not in node:
            raise ParamsError(f"{source}: {key}: no such key in params.yaml")
        node[last] = value
    return merged


def check_preset(name: str, params_path: str | Path = "params.yaml", directory: str | Path = PRESETS_DIR,
                 sources: bool = False) -> list[str]:
    """Every problem of params.yaml with preset `name` applied, one line each (empty: valid),
    found by the same checks as the `check_params` stage. ``sources=False`` skips whether local
    data sources exist (a preset may name a folder of another machine)."""
    from genlab.check_params import check_params

    overrides = load_preset(name, directory)
    merged = merge(read_params(params_path), overrides, source=f"{directory}/{name}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
        problems = check_params(path, base=Path(params_path).resolve().parent, sources=sources)
    return [p.replace(str(path), "params.yaml", 1).replace("params.yaml:", f"params.yaml + presets/{name}.yaml:", 1)
            for p in problems]


def dvc_command(name: str, overrides: dict[str, Any], dvc_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``dvc exp run -n NAME -S key=value ... [dvc_args]``: the preset's overrides first, so a
    ``-S`` among `dvc_args` wins (DVC applies them in order)."""
    args = ["dvc", "exp", "run", "-n", name]
    for key, value in flatten(overrides).items():
        args += ["-S", f"{key}={override_value(value)}"]
    return [*args, *dvc_args]


def override_value(value: Any) -> str:
    """`value` as ``-S key=value`` reads it back unchanged: plain strings such as
    ``idx:/usr/share/datasets/fashion-mnist`` unquoted (as one types them), others quoted."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return format_value(value)

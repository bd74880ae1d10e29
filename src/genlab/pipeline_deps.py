"""Exact code deps for dvc.yaml: each stage's import closure inside ``src/genlab``.

DVC re-runs a stage when one of its ``deps`` changes, so a module a stage imports but does not
list leaves stale outputs that ``dvc repro`` calls up to date. This module computes, for each
stage whose ``cmd`` runs ``python stages/<script>.py``, every ``src/genlab`` file the script can
import: it parses imports with :mod:`ast` (top-level and inside functions, since lazy imports
run too), follows ``from genlab.x import y`` into ``genlab/x/y.py`` when ``y`` is a submodule,
and counts every package ``__init__.py`` on the way (importing ``genlab.a.b`` runs
``genlab/__init__.py`` and ``genlab/a/__init__.py``).

    python -m genlab.pipeline_deps --check   # exit 1 and list what dvc.yaml misses or lists stale
    python -m genlab.pipeline_deps --write   # rewrite the src/genlab entries of every stage's deps

``--write`` edits dvc.yaml in place with ruamel.yaml's round trip, so comments, order and other
deps (data folders, the stage script, ``data/params.ok``) stay as they are; the stage's
``src/genlab`` entries become its sorted closure, placed where the first of them was.

Stages in :data:`WHOLE_PACKAGE` keep ``src/genlab`` as one dep: ``check_params`` imports every
params section's config class by name through :data:`genlab.sections.SECTIONS`
(``importlib``), which no static parse can follow, and it must re-run when any of them
changes. Its output never changes, so depending on more than it imports costs about a second
and re-runs nothing downstream.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "genlab"
# Imports not followed, each with the reason. `genlab.tracking` (which every stage imports)
# reaches the MLflow pyfunc code only to log a trained model to MLflow: it writes nothing DVC
# tracks, and following it would make every stage, prepare_images included, depend on every
# model, the generators and the server.
NOT_FOLLOWED = {("genlab.tracking", "genlab.serve.pyfunc"), ("genlab.tracking", "genlab.serve")}
SRC = "src"  # the package lives in <root>/src/genlab
WHOLE_PACKAGE = {"check_params": f"{SRC}/{PACKAGE}"}
_CMD = re.compile(r"^python3?\s+(stages/[\w./-]+\.py)\b")


def repo_root() -> Path:
    """The folder holding dvc.yaml and src/ (this file is src/genlab/pipeline_deps.py)."""
    return Path(__file__).resolve().parents[2]


def module_file(root: Path, module: str) -> Path | None:
    """``genlab.a.b`` -> ``<root>/src/genlab/a/b.py`` or ``.../a/b/__init__.py``; None if neither."""
    base = root / SRC / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(root: Path, path: Path) -> str:
    """The package a file belongs to, for relative imports (``src/genlab/a/b.py`` -> ``genlab.a``)."""
    rel = path.relative_to(root / SRC).with_suffix("")
    return ".".join(rel.parts[:-1])  # a/b.py and a/__init__.py both sit in package a


def imported_modules(root: Path, path: Path) -> set[str]:
    """Every ``genlab`` module that importing or running `path` imports, parents included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_package = (root / SRC) in path.resolve().parents
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and in_package:  # from . import x / from ..a import b
                base = _package_of(root, path.resolve()).split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, node.module] if node.module else base)
            elif node.level:
                continue
            else:
                module = node.module or ""
            names.add(module)
            # `from genlab.x import y`: y may be a submodule (genlab/x/y.py) or a name in x
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            prefix = ".".join(parts[:i])
            if module_file(root, prefix) is not None:
                found.add(prefix)
    return found


def module_name(root: Path, path: Path) -> str | None:
    """``<root>/src/genlab/a/b.py`` -> ``genlab.a.b`` (``__init__`` -> the package); None outside src."""
    try:
        rel = path.resolve().relative_to((root / SRC).resolve()).with_suffix("")
    except ValueError:
        return None
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def import_closure(root: Path, script: Path) -> set[Path]:
    """Every ``src/genlab`` file `script` can import, directly or through other modules
    (except the edges in :data:`NOT_FOLLOWED`)."""
    todo, seen, files = [script], set(), set()
    while todo:
        path = todo.pop()
        importer = module_name(root, path)
        for module in imported_modules(root, path):
            if module in seen or (importer, module) in NOT_FOLLOWED:
                continue
            seen.add(module)
            file = module_file(root, module)
            files.add(file)
            todo.append(file)
    return files


def stage_scripts(root: Path, stages: dict) -> dict[str, Path]:
    """stage name -> its ``stages/*.py`` script, for stages whose cmd runs one."""
    out = {}
    for name, stage in stages.items():
        cmd = stage.get("cmd") if isinstance(stage, dict) else None
        match = _CMD.match(cmd.strip()) if isinstance(cmd, str) else None
        if match:
            out[name] = root / match.group(1)
    return out


def _dep_path(dep) -> str:
    return next(iter(dep)) if isinstance(dep, dict) else str(dep)


def _is_code_dep(dep: str) -> bool:
    return dep == f"{SRC}/{PACKAGE}" or dep.startswith(f"{SRC}/{PACKAGE}/")


def expected_code_deps(root: Path, stage: str, script: Path) -> list[str]:
    """The sorted ``src/genlab`` deps `stage` should list."""
    if stage in WHOLE_PACKAGE:
        return [WHOLE_PACKAGE[stage]]
    return sorted(p.relative_to(root).as_posix() for p in import_closure(root, script))


@dataclass
class StageDiff:
    stage: str
    missing: list[str] = field(default_factory=list)  # imported, not covered by any dep
    stale: list[str] = field(default_factory=list)    # listed, not imported (or no longer there)

    def lines(self) -> Iterable[str]:
        for dep in self.missing:
            yield f"dvc.yaml: stages.{self.stage}.deps: missing {dep} (imported by the stage)"
        for dep in self.stale:
            yield f"dvc.yaml: stages.{self.stage}.deps: {dep} is listed but not imported"


def _load(dvc_yaml: Path):
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: keeps comments, order and quoting
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml, yaml.load(dvc_yaml.read_text(encoding="utf-8"))


def check(root: Path | None = None, dvc_yaml: Path | None = None) -> list[StageDiff]:
    """The stages whose ``src/genlab`` deps differ from their import closure (empty: all exact)."""
    root = root or repo_root()
    dvc_yaml = dvc_yaml or root / "dvc.yaml"
    _, doc = _load(dvc_yaml)
    diffs = []
    for stage, script in stage_scripts(root, doc.get("stages") or {}).items():
        listed = [_dep_path(d) for d in doc["stages"][stage].get("deps") or []]
        code = [d.rstrip("/") for d in listed if _is_code_dep(d)]
        expected = expected_code_deps(root, stage, script)
        covered = lambda f: any(f == d or f.startswith(d + "/") for d in code)  # noqa: E731
        diff = StageDiff(stage, missing=[f for f in expected if not covered(f)],
                         stale=[d for d in code if d not in expected])
        if diff.missing or diff.stale:
            diffs.append(diff)
    return diffs


def write(root: Path | None = None, dvc_yaml: Path | None = None) -> list[str]:
    """Rewrite each stage's ``src/genlab`` deps to its closure; return the stages changed."""
    root = root or repo_root()
    dvc_yaml = dvc_yaml or root / "dvc.yaml"
    yaml, doc = _load(dvc_yaml)
    changed = []
    for stage, script in stage_scripts(root, doc.get("stages") or {}).items():
        deps = doc["stages"][stage].get("deps")
        if deps is None:
            continue
        expected = expected_code_deps(root, stage, script)
        code_at = [i for i, d in enumerate(deps) if _is_code_dep(_dep_path(d))]
        if [_dep_path(deps[i]) for i in code_at] == expected:
            continue
        # after the stage script when the stage lists no code yet
        at = code_at[0] if code_at else next(
            (i + 1 for i, d in enumerate(deps) if _dep_path(d) == script.relative_to(root).as_posix()), len(deps))
        for i in reversed(code_at):
            del deps[i]
        for offset, dep in enumerate(expected):
            deps.insert(at + offset, dep)
        changed.append(stage)
    if changed:
        buf = io.StringIO()
        yaml.dump(doc, buf)
        dvc_yaml.write_text(buf.getvalue(), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genlab.pipeline_deps", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when a stage's src/genlab deps differ from its imports")
    mode.add_argument("--write", action="store_true", help="rewrite the src/genlab deps of every stage in dvc.yaml")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    root = (args.root or repo_root()).resolve()
    if args.write:
        changed = write(root)
        print(f"dvc.yaml: rewrote the src/genlab deps of {', '.join(changed)}" if changed
              else "dvc.yaml: every stage's src/genlab deps are already exact")
        return 0
    diffs = check(root)
    for diff in diffs:
        for line in diff.lines():
            print(line, file=sys.stderr)
    if diffs:
        print("fix: python -m genlab.pipeline_deps --write", file=sys.stderr)
        return 1
    print("dvc.yaml: every stage's src/genlab deps match its imports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

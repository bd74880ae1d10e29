"""dvc.yaml lists every src/genlab module each stage imports (genlab.pipeline_deps), and the
library's imports point down the layers only."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from genlab.pipeline_deps import check, import_closure, imported_modules, write


def test_dvc_yaml_lists_every_stage_import_closure():
    diffs = check(ROOT)
    assert not diffs, "\n".join(line for d in diffs for line in d.lines()) + "\nfix: python -m genlab.pipeline_deps --write"


def _copy_repo(tmp_path: Path) -> Path:
    """dvc.yaml, stages/ and src/genlab of this checkout, for editing without touching it."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copytree(ROOT / "stages", tmp_path / "stages")
    shutil.copytree(ROOT / "src" / "genlab", tmp_path / "src" / "genlab", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_removed_dep_fails_the_check_and_write_restores_it(tmp_path):
    repo = _copy_repo(tmp_path)
    original = (repo / "dvc.yaml").read_text()
    stages = yaml.safe_load(original)["stages"]
    victim = next(d for d in stages["render"]["deps"] if d.startswith("src/genlab/") and d.endswith("traversal.py"))
    lines = original.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  render:"))
    drop = next(i for i in range(start, len(lines)) if lines[i].strip() == f"- {victim}")
    (repo / "dvc.yaml").write_text("".join(lines[:drop] + lines[drop + 1:]))

    diffs = check(repo)
    assert [(d.stage, d.missing, d.stale) for d in diffs] == [("render", [victim], [])]
    proc = subprocess.run([sys.executable, "-m", "genlab.pipeline_deps", "--check", "--root", str(repo)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"dvc.yaml: stages.render.deps: missing {victim} (imported by the stage)" in proc.stderr

    assert write(repo) == ["render"]
    assert (repo / "dvc.yaml").read_text() == original  # comments, order and data deps kept
    assert check(repo) == []


def test_a_new_import_needs_a_new_dep(tmp_path):
    """A stage that starts importing a module (here: a new one) fails the check until --write."""
    repo = _copy_repo(tmp_path)
    (repo / "src/genlab/render/extra_figure.py").write_text("X = 1\n")
    script = repo / "stages/report.py"
    script.write_text(script.read_text().replace("from pathlib import Path", "from pathlib import Path\n\nfrom genlab.render import extra_figure  # noqa: F401"))
    assert [(d.stage, d.missing) for d in check(repo)] == [("report", ["src/genlab/render/extra_figure.py"])]
    write(repo)
    report_deps = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["report"]["deps"]
    assert "src/genlab/render/extra_figure.py" in report_deps and "reports/render" in report_deps
    assert check(repo) == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_closure_follows_submodules_relative_and_lazy_imports_and_inits(tmp_path):
    root = _package(tmp_path, {
        "src/genlab/__init__.py": "",
        "src/genlab/a/__init__.py": "",
        "src/genlab/a/b.py": "from . import c\nfrom .sub import d\n",
        "src/genlab/a/c.py": "import numpy\n",
        "src/genlab/a/sub/__init__.py": "from genlab.a.sub.e import E\n",
        "src/genlab/a/sub/d.py": "def f():\n    from genlab import lazy  # runs when f does\n",
        "src/genlab/a/sub/e.py": "E = 1\n",
        "src/genlab/lazy.py": "",
        "src/genlab/unused.py": "",
        "stages/s.py": "from genlab.a import b\nfrom genlab.a.c import numpy as np\n",
    })
    rel = sorted(p.relative_to(root).as_posix() for p in import_closure(root, root / "stages/s.py"))
    assert rel == ["src/genlab/__init__.py", "src/genlab/a/__init__.py", "src/genlab/a/b.py", "src/genlab/a/c.py",
                   "src/genlab/a/sub/__init__.py", "src/genlab/a/sub/d.py", "src/genlab/a/sub/e.py", "src/genlab/lazy.py"]
    # `from genlab.a.c import numpy`: numpy is a name in c, not a module of genlab
    assert imported_modules(root, root / "src/genlab/a/c.py") == set()


# --- layers ------------------------------------------------------------------------------------
# genlab's top-level parts, bottom to top. A module may import its own part and parts below it,
# never above, nor a part of its own layer that SEPARATE keeps apart: the base never imports a
# model, models never import training or rendering, training and rendering never import each
# other (a trainer hands images to a hook the stage wires to rendering), and no library module
# imports a stage script.
LAYERS = [
    {"errors", "runtime", "params", "checkpoint", "sampling", "grids", "stage", "distributed", "clean"},
    {"data"},
    {"models", "char_rnn_numpy"},
    {"generate"},
    {"render", "evaluate", "interpret", "train"},
    # entry points and sinks: tracking logs trained models as servable MLflow models (serve)
    {"sections", "check_params", "cli", "serve", "tracking", "study", "pipeline_deps", "presets"},
]


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


# parts of one layer that must not import each other, either way
SEPARATE = [{"train"}, {"render", "evaluate", "interpret"}]


def _rank(part: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if part in layer), None)


def _may_import(src: str, dst: str) -> bool:
    """Whether genlab part `src` may import part `dst` (both ranked)."""
    if _rank(dst) > _rank(src):
        return False
    group = [next((i for i, g in enumerate(SEPARATE) if part in g), None) for part in (src, dst)]
    return None in group or group[0] == group[1]


def test_library_imports_point_down_the_layers():
    pkg = ROOT / "src" / "genlab"
    upward, unranked = [], set()
    for path in sorted(pkg.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        src = _part(module)
        if not src:
            continue
        if _rank(src) is None:
            unranked.add(src)
            continue
        text = path.read_text()
        assert "import stages" not in text and "from stages" not in text, f"{module} imports a stage script"
        for target in imported_modules(ROOT, path):
            dst = _part(target)
            if not dst or dst == src:
                continue
            if _rank(dst) is None:
                unranked.add(dst)
            elif not _may_import(src, dst):
                upward.append(f"{module} imports {target}")
    assert not unranked, f"add these parts of genlab to LAYERS in tests/test_deps.py: {sorted(unranked)}"
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize(("src", "dst"), [("generate", "render"), ("render", "train"), ("train", "render"),
                                        ("train", "evaluate"), ("models", "train"), ("data", "models")])
def test_layer_rule_forbids(src, dst):
    assert not _may_import(src, dst)


@pytest.mark.parametrize(("src", "dst"), [("train", "models"), ("render", "generate"), ("render", "evaluate"),
                                        ("cli", "train"), ("tracking", "serve")])
def test_layer_rule_allows(src, dst):
    assert _may_import(src, dst)


def test_a_trainer_importing_rendering_fails_the_layer_rule(tmp_path, monkeypatch):
    """The check itself, on a copy of the package where train/vae.py draws its own figures."""
    import test_deps

    root = _copy_repo(tmp_path)
    vae = root / "src/genlab/train/vae.py"
    vae.write_text(vae.read_text() + "\n\ndef _draw():\n    from genlab.render.vae_figures import reconstruction_figure\n")
    monkeypatch.setattr(test_deps, "ROOT", root)
    with pytest.raises(AssertionError, match="genlab.train.vae imports genlab.render.vae_figures"):
        test_library_imports_point_down_the_layers()


def _module_graph() -> dict[str, set[str]]:
    """genlab module -> the genlab modules it imports (top level and inside functions), leaving
    out its own parent packages (importing ``genlab.a.b`` runs ``genlab/a/__init__.py`` anyway)."""
    pkg = ROOT / "src" / "genlab"
    graph = {}
    for path in sorted(pkg.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {m for m in imported_modules(ROOT, path) if m != module and not module.startswith(m + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_even_through_function_local_imports():
    """A cycle hidden by a function-local import still runs; shared types go in their own module
    (e.g. genlab.data.sources_base for the image sources)."""
    assert _cycles(_module_graph()) == []


def test_the_cycle_check_sees_a_function_local_import():
    graph = {"genlab.data.images": {"genlab.data.lsun"}, "genlab.data.lsun": {"genlab.data.sources_base"},
             "genlab.data.sources_base": set()}
    assert _cycles(graph) == []
    graph["genlab.data.lsun"].add("genlab.data.images")
    assert _cycles(graph) == [["genlab.data.images", "genlab.data.lsun"]]


def test_every_command_is_one_module_named_genlab_cli_command():
    """`genlab NAME` lives in genlab/cli/NAME.py; no other module is named like a CLI."""
    from genlab.cli import COMMANDS

    assert COMMANDS == {name: f"genlab.cli.{name}" for name in COMMANDS}
    cli_dir = ROOT / "src" / "genlab" / "cli"
    assert {p.stem for p in cli_dir.glob("*.py")} - {"__init__", "__main__"} == set(COMMANDS)
    stray = [p.relative_to(ROOT).as_posix() for p in (ROOT / "src" / "genlab").rglob("*cli*.py")
             if p.parent != cli_dir]
    assert not stray, f"CLI modules outside genlab/cli/: {stray}"


def test_one_function_named_data_fingerprint():
    """Two `data_fingerprint`s hashed different things (a meta.json, the arrays in memory); the
    one left is genlab.tracking's, the hash of a data stage's meta.json."""
    import ast

    defined = [path.relative_to(ROOT / "src").as_posix() for path in sorted((ROOT / "src" / "genlab").rglob("*.py"))
               for node in ast.parse(path.read_text()).body
               if isinstance(node, ast.FunctionDef) and node.name == "data_fingerprint"]
    assert defined == ["genlab/tracking.py"]


@pytest.mark.faults
def test_no_empty_file_is_a_dvc_dependency():
    """DVC warns once per stage for every empty file among its deps ("... is empty"): a tiny
    `dvc repro` printed half its lines as such warnings. Every package __init__ says what it holds."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    empty = sorted({dep for stage in stages.values() for dep in stage.get("deps", [])
                    if (ROOT / dep).is_file() and (ROOT / dep).stat().st_size == 0})
    assert not empty, f"empty files listed as dvc.yaml deps: {empty}"

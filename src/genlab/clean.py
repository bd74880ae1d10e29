"""What ``genlab clean`` (``make clean-outputs``) may delete: only what can be rebuilt.

The default plan, like ``dvc gc`` for the workspace, removes

* the resume state under ``.genlab/`` (training resumes from it; without it a stage starts fresh),
* the workspace copy of every cached DVC output (``outs:`` without ``cache: false``) that
  ``dvc status`` reports unchanged since ``dvc.lock``, i.e. whose content is in the DVC cache:
  ``dvc checkout`` (or ``dvc repro``) brings it back byte for byte.

It keeps, and says so, everything else: an output changed since ``dvc.lock`` or missing from the
cache (it exists nowhere else), the git-tracked outputs (``metrics/*.json``, ``plots/*.tsv``),
``dvc.lock``, and the MLflow store of the repository (``mlflow.db``, ``mlruns/``: the run history
of every experiment, in no cache and no git). ``--all`` removes those too, after a confirmation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# rebuildable state outside DVC: training resume checkpoints, the tracking probe's marker
RESUME_STATE = ".genlab"
# the repository's own MLflow store (genlab.tracking's default) and its artifacts
MLFLOW_STORE = ("mlflow.db", "mlruns", "mlartifacts")


@dataclass
class CleanPlan:
    """Paths (relative to the repository root) to remove, and the ones kept with the reason."""

    remove: list[str] = field(default_factory=list)
    keep: list[tuple[str, str]] = field(default_factory=list)


def declared_outputs(root: Path) -> list[tuple[str, str, bool]]:
    """(stage, path, cached) of every output `root`/dvc.yaml declares (outs, metrics, plots)."""
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    found = []
    for stage, spec in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in (spec or {}).get(kind) or []:
                path, opts = (next(iter(entry.items())) if isinstance(entry, dict) else (entry, {}))
                if isinstance(path, str):
                    found.append((stage, path.rstrip("/"), (opts or {}).get("cache", True) is not False))
    return found


def locked_outputs(root: Path) -> set[str]:
    """The outputs dvc.lock records (their content hash is what `dvc checkout` restores)."""
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    except OSError:
        return set()
    return {o["path"].rstrip("/") for spec in (lock.get("stages") or {}).values()
            for o in (spec or {}).get("outs") or [] if isinstance(o, dict) and "path" in o}


def changed_outputs(root: Path) -> set[str]:
    """Outputs `dvc status` reports as differing from dvc.lock or absent from the cache."""
    dvc = Path(sys.executable).with_name("dvc")
    cmd = [str(dvc) if dvc.exists() else "dvc", "status", "--json"]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"cannot run `dvc status` ({exc}): nothing removed") from exc
    if proc.returncode != 0:
        why = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), f"exit {proc.returncode}")
        raise RuntimeError(f"`dvc status` failed ({why}): nothing removed")
    changed = set()
    for entries in (json.loads(proc.stdout or "{}") or {}).values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                changed |= {p.rstrip("/") for p in entry.get("changed outs", {})}
    return changed


def git_tracked(root: Path, path: str) -> bool:
    try:
        proc = subprocess.run(["git", "ls-files", "--", path], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: keep it
    return proc.returncode != 0 or bool(proc.stdout.strip())


def plan_clean(root: str | Path, everything: bool = False) -> CleanPlan:
    """What to remove from the repository at `root`; `everything` adds what cannot be rebuilt."""
    root = Path(root)
    if not (root / "dvc.yaml").is_file():
        raise ValueError(f"{root.resolve()}: no dvc.yaml here; run it at the repository root")
    plan = CleanPlan()
    if (root / RESUME_STATE).exists():
        plan.remove.append(RESUME_STATE)
    outputs = [(stage, path, cached) for stage, path, cached in declared_outputs(root) if (root / path).exists()]
    if everything:
        plan.remove += [path for _, path, _ in outputs]
        plan.remove += [p for p in ("dvc.lock", *MLFLOW_STORE) if (root / p).exists()]
        return plan
    locked, changed = locked_outputs(root), changed_outputs(root)
    for _, path, cached in outputs:
        if not cached:
            plan.keep.append((path, "not in the DVC cache (git-tracked)" if git_tracked(root, path)
                              else "not in the DVC cache"))
        elif path not in locked or path in changed:
            plan.keep.append((path, "changed since dvc.lock or not in the DVC cache: it exists nowhere else"))
        elif git_tracked(root, path):
            plan.keep.append((path, "tracked by git"))
        else:
            plan.remove.append(path)
    for path in ("dvc.lock",):
        if (root / path).exists():
            plan.keep.append((path, "tracked by git"))
    for path in MLFLOW_STORE:
        if (root / path).exists():
            plan.keep.append((path, "the MLflow run history: it exists nowhere else"))
    return plan


def apply_plan(root: str | Path, plan: CleanPlan) -> None:
    for rel in plan.remove:
        path = Path(root) / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            os.unlink(path)

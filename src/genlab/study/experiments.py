"""A study's candidates as DVC experiments: queue the missing ones, run the queue, find the
finished ones.

Experiments live in git refs ``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>`` (DVC's
layout), so "is this candidate done?" is a ref lookup under the current commit plus a check
that the experiment's params.yaml holds the candidate's values; nothing finished is run again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genlab.runtime import log, progress
from genlab.study.spec import Candidate, format_value, get_key, same_value

EXPS_REFS = "refs/exps"


@dataclass(frozen=True)
class Experiment:
    """A finished DVC experiment: its name, commit and the commit it was run on."""

    name: str
    rev: str
    baseline: str
    timestamp: int


def dvc_env() -> dict[str, str]:
    """The environment for dvc and its queue workers: this interpreter's bin first, so stage
    commands (`python stages/...`) run in the same virtualenv."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else "dvc"


def run_dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``dvc <args>`` in `root`; a failure is a RuntimeError with dvc's last error line."""
    proc = subprocess.run([_dvc(), *args], cwd=root, capture_output=True, text=True, env=dvc_env())
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        error = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise RuntimeError(f"dvc {' '.join(args[:3])} ...: {error}")
    return proc


def worker_env(jobs: int, cpus: int | None = None) -> dict[str, str]:
    """The environment of `jobs` queue workers: each gets an equal share of the CPU threads
    (``OMP_NUM_THREADS``) unless the caller set it. Two 2-thread trainers on 2 cores fight
    over them (benchmarks/omp_wait.py --busy 1; docs/speed.md)."""
    env = dvc_env()
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (cpus or os.cpu_count() or 1) // jobs))
    return env


def start_workers(root: Path, jobs: int) -> None:
    """``dvc queue start -j <jobs>``. Its workers are daemons that inherit the caller's stdout
    and stderr: with those captured through pipes, waiting for dvc would wait for the last worker
    to exit, so they go to a log file instead."""
    log_path = root / ".dvc" / "tmp" / "genlab-queue-start.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        code = subprocess.call([_dvc(), "queue", "start", "-j", str(jobs)], cwd=root, stdout=out, stderr=out,
                               stdin=subprocess.DEVNULL, env=worker_env(jobs))
    if code != 0:
        lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
        raise RuntimeError(f"dvc queue start -j {jobs}: {lines[-1] if lines else f'exit {code}'}")


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
    return proc.stdout


def find_root(start: str | Path = ".") -> Path:
    """The git repository holding `start` (DVC experiments need git and a dvc.yaml)."""
    try:
        root = Path(git(Path(start), "rev-parse", "--show-toplevel").strip())
    except (RuntimeError, FileNotFoundError):
        raise RuntimeError(f"{Path(start).resolve()}: not inside a git repository (studies run as DVC experiments)") from None
    if not (root / "dvc.yaml").exists():
        raise RuntimeError(f"{root}: no dvc.yaml (run studies from the genlab repository)")
    return root


def head(root: Path) -> str:
    try:
        return git(root, "rev-parse", "HEAD").strip()
    except RuntimeError:
        raise RuntimeError(f"{root}: no commit yet; DVC experiments start from a commit (git commit first)") from None


def experiments(root: Path, prefix: str = "") -> list[Experiment]:
    """Every finished experiment whose name starts with `prefix`, over all baselines."""
    out = git(root, "for-each-ref", "--format=%(refname) %(objectname) %(committerdate:unix)", f"{EXPS_REFS}/")
    found = []
    for line in out.splitlines():
        ref, rev, stamp = line.split()
        parts = ref.split("/")  # refs exps ab cdef... name
        if len(parts) != 5 or not parts[4].startswith(prefix):
            continue
        found.append(Experiment(parts[4], rev, parts[2] + parts[3], int(stamp)))
    return found


def read_at(root: Path, rev: str, path: str) -> str | None:
    """A git-tracked file at `rev` (params.yaml, metrics, plots), or None."""
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def params_at(root: Path, rev: str) -> dict[str, Any]:
    text = read_at(root, rev, "params.yaml")
    return (yaml.safe_load(text) or {}) if text else {}


def mismatches(cand: Candidate, params: dict[str, Any]) -> list[str]:
    """The candidate's overrides that `params` (an experiment's params.yaml) does not hold."""
    out = []
    for key, want in cand.overrides.items():
        try:
            got = get_key(params, key)
        except KeyError:
            out.append(f"{key} missing")
            continue
        if not same_value(got, want):
            out.append(f"{key}={got!r}, want {want!r}")
    return out


def finished(root: Path, candidates: list[Candidate]) -> tuple[dict[str, Experiment], set[str]]:
    """(candidate name -> its finished experiment on HEAD with the candidate's params, names
    that have an experiment on HEAD with other params: re-run with -f)."""
    base = head(root)
    on_head = {e.name: e for e in experiments(root) if e.baseline == base}
    done, stale = {}, set()
    for cand in candidates:
        exp = on_head.get(cand.exp_name)
        if exp is None:
            continue
        if mismatches(cand, params_at(root, exp.rev)):
            stale.add(cand.name)
        else:
            done[cand.name] = exp
    return done, stale


def queue_command(cand: Candidate, target: str, force: bool = False) -> list[str]:
    """``dvc exp run --queue -n <study>--<candidate> -S key=value ... <target>``."""
    args = ["exp", "run", "--queue", "-n", cand.exp_name]
    if force:
        args.append("-f")  # replace this commit's experiment of the same name (its params changed)
    for key, value in cand.overrides.items():
        args += ["-S", f"{key}={format_value(value)}"]
    return [*args, target]


def _queue_status(root: Path) -> list[dict[str, Any]]:
    """DVC's queue tasks (rev, name, status: Queued | Running | Success | Failed)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.experiments.celery_queue.status())


def stale_baseline(root: Path, target: str) -> list[str]:
    """The stages up to `target` whose committed outputs are out of date: every candidate re-runs them."""
    proc = subprocess.run([_dvc(), "status", "--json", target], cwd=root, capture_output=True, text=True, env=dvc_env())
    if proc.returncode != 0:
        return []
    try:
        import json

        return sorted(k.split(":")[-1] for k in json.loads(proc.stdout or "{}"))
    except ValueError:
        return []


def run_study(root: Path, candidates: list[Candidate], target: str, jobs: int = 1, poll_s: float = 1.0,
              dry_run: bool = False) -> tuple[list[str], list[str], list[str]]:
    """Queue the candidates that have no finished experiment on HEAD, run the queue with `jobs`
    workers and wait for it with a progress bar.

    Returns (reused, ran, failed) candidate names; failed includes tasks removed from the queue
    meanwhile. A failed candidate's log is ``dvc queue logs <study>--<candidate>``.
    """
    done, stale = finished(root, candidates)
    todo = [c for c in candidates if c.name not in done]
    base = head(root)
    if dry_run:
        for cand in todo:
            print("dvc " + " ".join(queue_command(cand, target, force=cand.name in stale)))
        return sorted(done), [], []
    if not todo:
        return sorted(done), [], []
    stale_stages = stale_baseline(root, target)
    if stale_stages:
        log(f"note: outputs of {', '.join(stale_stages)} are not up to date in this commit: every candidate re-runs "
            f"them (`dvc repro` and committing dvc.lock first saves that)")
    before = {t["rev"] for t in _queue_status(root)}
    for cand in todo:
        run_dvc(root, *queue_command(cand, target, force=cand.name in stale))
    names = {c.exp_name: c.name for c in todo}
    mine = {t["rev"]: t["name"] for t in _queue_status(root) if t["rev"] not in before and t["name"] in names}
    log(f"queued {len(mine)} experiment(s) of {len(candidates)} ({len(done)} already done); "
        f"starting {jobs} DVC queue worker(s)")
    start_workers(root, jobs)
    failed: set[str] = set()
    succeeded: set[str] = set()
    missing: dict[str, int] = {}
    with progress(desc=f"study {candidates[0].study}", total=len(mine), unit="exp") as bar:
        while len(succeeded) + len(failed) < len(mine):
            time.sleep(poll_s)
            status = {t["rev"]: t["status"] for t in _queue_status(root) if t["rev"] in mine}
            # a task gone from the queue either finished (its experiment ref exists) or was removed
            # (`dvc queue remove`/`kill`) and will not finish; a task between running and its result
            # can be missing from a poll or two, so "removed" needs 30 polls in a row without a ref
            gone = {r for r in mine if r not in status}
            refs = {e.name for e in experiments(root) if e.baseline == base} if gone else set()
            now_ok = {r for r, s in status.items() if s == "Success"} | {r for r in gone if mine[r] in refs}
            for r in mine:
                missing[r] = missing.get(r, 0) + 1 if r in gone and mine[r] not in refs else 0
            now_failed = {r for r, s in status.items() if s == "Failed"} | {r for r, n in missing.items() if n >= 30}
            bar.update(len(now_ok | now_failed) - len(succeeded | failed))
            succeeded, failed = now_ok, now_failed
            running = sum(s == "Running" for s in status.values())
            bar.set_postfix_str(f"{running} running, {len(failed)} failed", refresh=False)
    ran = sorted(names[mine[r]] for r in succeeded)
    bad = sorted(names[mine[r]] for r in failed)
    return sorted(done), ran, bad

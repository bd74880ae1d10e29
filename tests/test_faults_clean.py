"""Fault suite, cleaning: `make clean-outputs` removes only what can be rebuilt (resume state,
DVC outputs whose content is in the DVC cache) and keeps the MLflow history, dvc.lock, the
git-tracked metrics and plots and any output changed since dvc.lock; `ALL=1` removes them only
when confirmed (issue 25 finding 1). A real git + DVC repository, the project's Makefile."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, dvc

pytestmark = pytest.mark.faults

DVC_YAML = """\
stages:
  make:
    cmd: >-
      mkdir -p out metrics plots && echo data > out/a.bin && echo mine > edited.bin
      && echo '{"m": 1}' > metrics/m.json && printf 'step\\tloss\\n0\\t1\\n' > plots/p.tsv
    outs:
      - out
      - edited.bin
    metrics:
      - metrics/m.json:
          cache: false
    plots:
      - plots/p.tsv:
          cache: false
"""
IRREPLACEABLE = ["mlflow.db", "mlruns/0/run/artifact.txt", "dvc.lock", "metrics/m.json", "plots/p.tsv", "edited.bin"]


@pytest.fixture
def repo(tmp_path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, env=env)  # noqa: E731
    git("init", "-q", "-b", "main")
    dvc(tmp_path, "init", "-q")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / ".gitignore").write_text("/mlflow.db\n/mlruns/\n/.genlab/\n")
    dvc(tmp_path, "repro", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "a run")
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\0 every run of every experiment")
    (tmp_path / "mlruns/0/run").mkdir(parents=True)
    (tmp_path / "mlruns/0/run/artifact.txt").write_text("a logged figure")
    (tmp_path / ".genlab/resume").mkdir(parents=True)
    (tmp_path / ".genlab/resume/train_gan.pt").write_bytes(b"resume state")
    (tmp_path / "edited.bin").write_text("edited by hand after the run: in no cache")
    return tmp_path


def make_clean(repo: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "clean-outputs",
                           f"BIN={Path(sys.executable).parent}", *extra],
                          cwd=repo, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def digests(repo: Path) -> dict[str, str]:
    return {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in IRREPLACEABLE}


def test_clean_outputs_removes_only_what_can_be_rebuilt(repo):
    before = digests(repo)
    proc = make_clean(repo)
    assert proc.returncode == 0, proc.stderr
    assert digests(repo) == before  # the MLflow history, tracked files and the hand-edited output
    assert not (repo / ".genlab").exists() and not (repo / "out").exists()
    assert "removed out" in proc.stdout and "kept " in proc.stdout and "mlflow.db" in proc.stdout, proc.stdout
    dvc(repo, "checkout", "out")  # what was removed comes back from the DVC cache
    assert (repo / "out/a.bin").read_text() == "data\n"


def test_clean_outputs_all_asks_first_and_force_removes_everything(repo):
    before = digests(repo)
    refused = make_clean(repo, "ALL=1")  # no terminal to ask in: refused, nothing removed
    assert refused.returncode != 0
    err = [line for line in refused.stderr.splitlines() if line.startswith("genlab clean")]
    assert len(err) == 1 and "mlflow.db" in err[0] and "--force" in err[0], refused.stderr
    assert digests(repo) == before and (repo / ".genlab/resume/train_gan.pt").exists() and (repo / "out").exists()
    forced = make_clean(repo, "ALL=1", "FORCE=1")
    assert forced.returncode == 0, forced.stderr
    assert not any((repo / p).exists() for p in [*IRREPLACEABLE, "mlruns", "out", ".genlab"])

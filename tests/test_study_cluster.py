"""`genlab study run NAME --cluster`: the candidates as tasks of a local Dask cluster of two
worker processes, each in its own clone of a bare git remote, logging to one MLflow store and
pushing its experiment to the git remote and a local DVC remote; another clone pulls them and
its report shows every candidate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from conftest import dvc, make_pipeline_repo

pytestmark = pytest.mark.slow

STUDY = {
    "studies": {
        "tiny": {
            "description": "The NumPy char-RNN at hidden 8 vs 16 (seconds each).",
            "seed_report": "more hidden units help.",
            "target": "train_char_rnn_numpy",
            "base": {"char_rnn_numpy.max_steps": 10, "char_rnn_numpy.eval_interval": 10,
                     "char_rnn_numpy.compare_steps": 0},
            "grid": {"char_rnn_numpy.hidden_size": [8, 16]},
            "metrics": [{"label": "val loss", "file": "metrics/char_rnn_numpy.json", "key": "char_rnn_numpy/val_loss",
                         "goal": "min", "fmt": ".3f"}],
            "figures": [{"kind": "text", "title": "text", "path": "reports/char_rnn_numpy/generated.txt", "chars": 80}],
        }
    }
}
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ID})


def _genlab(cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab.cli", "study", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **GIT_ID}, timeout=300)


def test_cluster_study_pushes_every_candidate_and_another_clone_reports_them(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from genlab.study.experiments import experiments

    store = f"sqlite:///{tmp_path / 'shared-mlflow.db'}"  # one tracking store for every worker
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    remote = tmp_path / "remote.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    repo = make_pipeline_repo(tmp_path / "repo")
    (repo / "studies.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    dvc(repo, "remote", "add", "-d", "shared", str(tmp_path / "dvc-remote"))
    _git(repo, "add", "studies.yaml", ".dvc/config")
    _git(repo, "commit", "-qm", "study")
    _git(repo, "remote", "add", "origin", str(remote))
    _git(repo, "push", "-q", "origin", "main")

    proc = _genlab(repo, "run", "tiny", "-j", "2", "--cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study tiny: 2 ran, 0 reused (finished on this commit), 0 failed" in proc.stdout
    names = {"tiny--hidden_size-8", "tiny--hidden_size-16"}
    assert {e.name for e in experiments(repo)} == names  # pulled back into the caller's repository

    # any clone: pull the candidates from the shared remotes, then the page shows both
    other = tmp_path / "other"
    _git(tmp_path, "clone", "-q", str(remote), str(other))
    proc = _genlab(other, "pull", "tiny")
    assert proc.returncode == 0 and "pulled 2 of 2 candidates from origin" in proc.stdout, proc.stdout + proc.stderr
    proc = _genlab(other, "report", "tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (other / "reports/studies/tiny/index.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| hidden_size-")]
    assert len(rows) == 2 and all("| — |" not in row for row in rows), md

    # one MLflow store: each candidate's runs, tagged with the study and the candidate
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`genlab.study` = 'tiny'")
    assert {r.data.tags["genlab.candidate"] for r in runs} == {"hidden_size-8", "hidden_size-16"}

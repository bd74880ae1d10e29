"""Fault suite, MLflow store: an unreachable store costs one warning line and seconds, and
several processes logging to one sqlite store at once lose no run (issue 17)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from genlab.params import CommonParams
from genlab.tracking import STAGE_TAG, log_stage

pytestmark = pytest.mark.faults

# writer processes beside this one (each costs ~5 s of imports on this 2-core machine)
N_WRITERS = 2


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("uri", [
    pytest.param(lambda tmp: f"http://127.0.0.1:{closed_port()}", id="server-down"),
    pytest.param(lambda tmp: f"sqlite:///{tmp}/a-file/mlflow.db", id="sqlite-under-a-file"),
    pytest.param(lambda tmp: f"sqlite:///{tmp}/a-file/deeper/mlflow.db", id="sqlite-folder-under-a-file"),
])
def test_unreachable_store_is_one_warning_in_seconds(uri, tmp_path, monkeypatch, capfd):
    (tmp_path / "a-file").write_text("not a folder")
    uri = uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.perf_counter()
    log_stage("train_gan", CommonParams(), {"lr": 0.1}, metrics={"gan/fid": 1.0})
    took = time.perf_counter() - start
    lines = warnings(capfd.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(
        f"[genlab] warning: MLflow tracking disabled for this stage: store {uri}: "), lines
    assert took < 5, f"took {took:.1f} s"  # MLflow's own retries took over 120 s per stage


# one writer: waits for the start signal (so that every writer opens the fresh store at once),
# then logs a stage as a pipeline of its own (as `dvc exp run` stages of parallel experiments do)
WRITER = """
import os, sys, time
from pathlib import Path
from genlab.params import CommonParams
from genlab.tracking import log_stage
import mlflow.store.tracking.sqlalchemy_store  # the slow imports before the start signal
Path(sys.argv[3]).touch()
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(300)]
log_stage(sys.argv[2], CommonParams(), {"lr": 0.1}, metrics={"m": 1.0}, history={"loss": rows})
"""


@pytest.fixture
def store_dir(tmp_path):
    """A folder for a fresh sqlite store: in memory (/dev/shm) where there is one, since
    creating MLflow's tables takes 8 s of fsyncs on a disk and 1 s there; same race either way."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="genlab-faults-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_sqlite_store_in_a_new_folder_is_not_refused(store_dir, monkeypatch, capfd):
    """MLflow creates the folders of a sqlite store: the fast check must not refuse them."""
    uri = f"sqlite:///{store_dir}/new/folder/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    log_stage("train_gan", CommonParams(), {"lr": 0.1}, metrics={"gan/fid": 1.0})
    assert "warning" not in capfd.readouterr().err
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    assert [r.data.metrics for r in runs if STAGE_TAG in r.data.tags] == [{"gan/fid": 1.0}]


def test_concurrent_writers_to_one_fresh_sqlite_store_lose_no_run(store_dir, monkeypatch, capfd):
    store = store_dir / "mlflow.db"
    uri = f"sqlite:///{store}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    go, ready = store_dir / "go", [store_dir / f"ready{i}" for i in range(N_WRITERS)]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(go), f"stage{i}", str(ready[i])], stderr=subprocess.PIPE,
                         text=True, env={**os.environ, "DVC_EXP_NAME": f"exp{i}"})
        for i in range(N_WRITERS)
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    # this process writes too (as `genlab evaluate` or a stage run by hand would)
    log_stage(f"stage{N_WRITERS}", CommonParams(), {"lr": 0.1}, metrics={"m": 1.0},
              history={"loss": [{"step": i, "loss": float(i)} for i in range(300)]})
    errs = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * N_WRITERS, errs
    for err in [*errs, capfd.readouterr().err]:
        assert "warning" not in err and "locked" not in err, err
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    stages = sorted(r.data.tags[STAGE_TAG] for r in runs if STAGE_TAG in r.data.tags)
    assert stages == sorted(f"stage{i}" for i in range(N_WRITERS + 1))
    for run in runs:
        if STAGE_TAG in run.data.tags:
            assert len(client.get_metric_history(run.info.run_id, "loss")) == 300
            assert run.info.status == "FINISHED"


@pytest.fixture
def silent_server():
    """A real server on 127.0.0.1 that accepts connections (the kernel completes the handshake)
    and never answers: a hung tracking server, or a proxy in front of a stopped one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_server_that_never_answers_costs_the_pipeline_one_warning_in_seconds(silent_server, tmp_path, monkeypatch,
                                                                              capfd):
    """MLflow's request timeout (30 s) times its retries stalled each stage about 100 s (issue 25 finding 2)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # the stages of one pipeline share the repo's .genlab/
    monkeypatch.setenv("DVC_EXP_NAME", "hung-server")
    start = time.perf_counter()
    for stage in ("train_classifier", "train_gan", "train_vae"):
        log_stage(stage, CommonParams(), {"lr": 0.1}, metrics={f"{stage}/x": 1.0})
    took = time.perf_counter() - start
    lines = warnings(capfd.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(
        f"[genlab] warning: MLflow tracking disabled for this stage: store {silent_server}: connected to "
        "127.0.0.1:"), lines
    assert "no answer within 3 s" in lines[0] and "later stages of this pipeline skip it" in lines[0], lines
    assert took < 5, f"took {took:.1f} s"
    # another pipeline execution asks again (the server may be back)
    monkeypatch.setenv("DVC_EXP_NAME", "another-run")
    log_stage("train_gan", CommonParams(), {"lr": 0.1}, metrics={"gan/x": 1.0})
    assert len(warnings(capfd.readouterr().err)) == 1

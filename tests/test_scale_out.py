"""Scale-out without a GPU: four queued DVC experiments run two at a time into one MLflow store,
and a stage logging to a real `mlflow server` on 127.0.0.1, read back over HTTP. (DDP: test_distributed.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import dvc, run_stage, tiny_params
from test_tracking import runs, toy_repo  # noqa: F401  (the toy pipeline fixture)

pytestmark = pytest.mark.slow

LRS = (0.25, 0.5, 1.0, 2.0)


def test_four_queued_experiments_run_two_at_a_time_into_one_store(toy_repo):  # noqa: F811
    from genlab.study.experiments import _queue_status, start_workers

    for lr in LRS:
        dvc(toy_repo, "exp", "run", "--queue", "-n", f"lr-{lr}", "-S", f"toy.lr={lr}")
    t0 = time.perf_counter()
    start_workers(toy_repo, 2)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = _queue_status(toy_repo)
        if all(t["status"] not in ("Queued", "Running") for t in status):
            break
        time.sleep(1)
    print(f"4 queued experiments, -j 2: {time.perf_counter() - t0:.1f} s")
    assert sorted(t["status"] for t in status) == ["Success"] * 4, status

    show = json.loads(dvc(toy_repo, "exp", "show", "--json").stdout)
    exps = {e["name"]: e for base in show for e in base.get("experiments") or []}
    assert set(exps) == {f"lr-{lr}" for lr in LRS}
    for lr in LRS:  # each experiment's own metrics: its own lr took effect
        data = exps[f"lr-{lr}"]["revs"][0]["data"]
        assert data["metrics"]["metrics/second.json"]["data"]["second/score"] == lr * 2
        assert data["params"]["params.yaml"]["data"]["toy"]["lr"] == lr

    _, parents, children = runs(f"sqlite:///{toy_repo}/mlflow.db")
    assert sorted(p.info.run_name for p in parents) == sorted(f"lr-{lr}" for lr in LRS)
    for p in parents:
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == p.info.run_id]
        assert sorted(c.info.run_name for c in mine) == ["first", "second"]
        assert all(c.info.status == "FINISHED" for c in mine)
        # the store was created by a queued experiment, in a working copy DVC deletes: the
        # artifacts must still live in the main repository
        for c in mine:
            stored = Path(c.info.artifact_uri.removeprefix("file://"))
            assert stored.is_relative_to(toy_repo / "mlruns"), c.info.artifact_uri
            assert (stored / f"{c.info.run_name}.json").is_file()
    for lr in LRS:
        logs = dvc(toy_repo, "queue", "logs", f"lr-{lr}").stdout
        assert "database is locked" not in logs and "WARNING: MLflow" not in logs, logs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    # one web worker and no job runner: the defaults start 4 uvicorn workers and 7 huey
    # consumers, a dozen processes importing mlflow, for a server that answers a few requests
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    import urllib.request

    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    else:
        pytest.fail("mlflow server did not answer /health in 120 s")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_a_stage_logs_to_a_shared_tracking_server(mlflow_server, tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(tracking={"experiment": "team"})))
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    run_stage("prepare_text.py", root, env=env)
    run_stage("train_char_rnn_numpy.py", root, env=env)
    assert not (root / "mlflow.db").exists()  # nothing went to a local store

    client = MlflowClient(tracking_uri=mlflow_server)  # over HTTP
    exp = client.get_experiment_by_name("team")
    found = client.search_runs([exp.experiment_id], filter_string="tags.`genlab.stage` = 'train_char_rnn_numpy'")
    assert len(found) == 1
    run = found[0]
    local = json.loads((root / "metrics/char_rnn_numpy.json").read_text())
    assert run.data.metrics["char_rnn_numpy/val_loss"] == pytest.approx(local["char_rnn_numpy/val_loss"])
    assert run.data.params["hidden_size"] == "32"
    # artifacts travel through the server too: the generated text comes back byte for byte
    path = client.download_artifacts(run.info.run_id, "generated.txt", str(tmp_path / "dl"))
    assert Path(path).read_bytes() == (root / "reports/char_rnn_numpy/generated.txt").read_bytes()

"""MLflow tracking against a real sqlite store, grouped by real `dvc repro` / `dvc exp run`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import dvc
from genlab.params import CommonParams
from genlab.tracking import PIPELINE_TAG, STAGE_TAG, _main_repo_root, log_stage, tracking_uri

TOY_STAGE = textwrap.dedent(
    """
    import sys
    from pydantic import Field
    from genlab.params import StrictModel, load_params_or_exit
    from genlab.runtime import write_json
    from genlab.tracking import log_stage

    class Toy(StrictModel):
        lr: float = Field(gt=0)

    name = sys.argv[1]
    common, cfg = load_params_or_exit("toy", Toy)
    metrics = {f"{name}/score": cfg.lr * 2}
    write_json(f"metrics/{name}.json", metrics)
    log_stage(name, common, cfg, metrics=metrics,
              history={"loss": [{"step": i, "loss": 1.0 / (i + 1)} for i in range(3)]},
              artifacts=[f"metrics/{name}.json"])
    """
)


def runs(uri: str, experiment: str = "genlab"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return client, [], []
    all_runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.fixture
def toy_repo(tmp_path, monkeypatch):
    """A git+DVC repo with two toy stages that log to MLflow; the store is the repo's default."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "toy.py").write_text(TOY_STAGE)
    (repo / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "tracking": {"enabled": True}, "toy": {"lr": 0.5}}))
    stages = {
        name: {
            "cmd": f"{sys.executable} toy.py {name}",
            "deps": ["toy.py"] + ([] if name == "first" else ["metrics/first.json"]),
            "params": ["toy", "tracking"],
            "metrics": [{f"metrics/{name}.json": {"cache": False}}],
        }
        for name in ("first", "second")
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "toy"], cwd=repo, check=True)
    # the default store: sqlite:///<repo>/mlflow.db (no MLFLOW_TRACKING_URI)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    return repo


def test_default_uri_is_absolute_and_shared_by_queued_experiments(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    exp_dir = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert _main_repo_root(exp_dir) == tmp_path.resolve()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_dvc_repro_and_exp_run_group_runs(toy_repo):
    uri = f"sqlite:///{toy_repo}/mlflow.db"
    dvc(toy_repo, "repro")
    _, parents, children = runs(uri)
    assert len(parents) == 1 and parents[0].info.run_name.startswith("workspace")
    assert sorted(c.data.tags[STAGE_TAG] for c in children) == ["first", "second"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    first = next(c for c in children if c.info.run_name == "first")
    assert first.data.params["lr"] == "0.5" and first.data.params["seed"] == "0"
    assert first.data.metrics["first/score"] == 1.0
    assert first.data.tags["git_commit"] != "none" and first.info.status == "FINISHED"
    client = MlflowClient(tracking_uri=uri)
    assert [m.step for m in client.get_metric_history(first.info.run_id, "loss")] == [0, 1, 2]
    assert [a.path for a in client.list_artifacts(first.info.run_id)] == ["first.json"]

    # a second repro runs nothing, so logs nothing
    out = dvc(toy_repo, "repro").stdout
    assert "didn't change" in out or "is cached" in out
    assert len(runs(uri)[1]) == 1

    # an experiment: its own parent, named after the experiment, one child per executed stage
    dvc(toy_repo, "exp", "run", "-n", "fast-lr", "-S", "toy.lr=2.0")
    _, parents, children = runs(uri)
    exp_parent = [p for p in parents if p.info.run_name == "fast-lr"]
    assert len(parents) == 2 and len(exp_parent) == 1
    assert exp_parent[0].data.tags[PIPELINE_TAG] == "exp:fast-lr"
    exp_children = [c for c in children if c.data.tags["mlflow.parentRunId"] == exp_parent[0].info.run_id]
    assert sorted(c.info.run_name for c in exp_children) == ["first", "second"]
    assert all(c.data.tags["dvc_experiment"] == "fast-lr" for c in exp_children)
    assert next(c for c in exp_children if c.info.run_name == "first").data.metrics["first/score"] == 4.0


def test_disabled_tracking_logs_nothing(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    common = CommonParams.model_validate({"tracking": {"enabled": False, "experiment": "off-test"}})
    log_stage("x", common, {"a": 1}, metrics={"x/m": 1.0})
    assert runs(uri, "off-test")[1] == []


def test_unreachable_store_is_a_warning_not_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # closed port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    out = tmp_path / "m.json"
    out.write_text("{}")
    log_stage("x", CommonParams(), {"a": 1}, metrics={"x/m": 1.0}, artifacts=[out])
    assert "warning: MLflow tracking disabled" in capsys.readouterr().err
    assert out.exists()


def test_manual_stage_runs_get_their_own_parent(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    common = CommonParams.model_validate({"tracking": {"experiment": "manual-test"}})
    log_stage("a", common, {"k": 1}, metrics={"a/m": 1.0})
    log_stage("b", common, {"k": 1}, metrics={"b/m": 2.0})
    _, parents, children = runs(uri, "manual-test")
    assert len(parents) == 2 and len(children) == 2
    assert all(p.info.run_name.startswith("manual") for p in parents)


def test_models_are_logged_as_servable_pyfunc_models_without_pickle(tmp_path, monkeypatch, capsys):
    """The classifier and char-RNN checkpoints become pyfunc models that load with pickle off
    (the generators: tests/test_serve_mlflow.py); a bare module is refused with a warning."""
    import mlflow.pyfunc
    import pandas as pd
    import torch
    from serve_helpers import make_checkpoints

    from genlab.serve.generator import encode_png

    monkeypatch.chdir(tmp_path)  # the sqlite store puts artifacts in ./mlruns
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    ckpts = make_checkpoints(tmp_path / "models")
    common = CommonParams.model_validate({"tracking": {"experiment": "model-test", "log_models": True}})
    log_stage("train_toy", common, {"k": 1}, models={"classifier": ckpts["classifier"], "char_rnn": str(ckpts["char_rnn"]),
                                                     "module": torch.nn.Linear(3, 2)})
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert err == ["[genlab] warning: MLflow logging failed (log_model): TypeError: models['module']: "
                   "expected the path of a genlab checkpoint, got Linear"]
    _, _, children = runs(uri, "model-test")
    run_id = children[0].info.run_id
    assert "module" not in {a.path for a in MlflowClient(uri).list_artifacts(run_id)}

    classifier = mlflow.pyfunc.load_model(f"runs:/{run_id}/classifier")
    out = classifier.predict(pd.DataFrame({"image": [encode_png(np.zeros((1, 28, 28), np.uint8))] * 2}))
    assert list(out.columns) == ["label", "class_name", "confidence"] and len(out) == 2
    assert out["label"].between(0, 9).all() and out["confidence"].between(0.1, 1).all()
    assert classifier.metadata.signature.inputs.input_names() == ["image"]

    text = mlflow.pyfunc.load_model(f"runs:/{run_id}/char_rnn")
    a = text.predict(pd.DataFrame([{"prime": "The ", "length": 30, "temperature": 0.8, "seed": 1}]))["text"][0]
    b = text.predict(pd.DataFrame([{"prime": "The ", "length": 30, "temperature": 0.8, "seed": 1}]))["text"][0]
    c = text.predict(pd.DataFrame([{"prime": "The ", "length": 30, "temperature": 0.8, "seed": 2}]))["text"][0]
    assert len(a) == 30 and a == b and a != c

"""The whole pipeline, end to end, with real DVC in a temporary git repo and tiny params."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import dvc, make_pipeline_repo, tiny_params

STAGES = {"check_params", "prepare_images", "prepare_text", "train_classifier", "train_char_rnn", "train_char_rnn_numpy",
          "train_gan", "train_vae", "generate", "evaluate", "render", "interpret", "report"}
EVALUATE_KEYS = {"confidence_mean", "frac_confident", "kl_uniform", "fid", "kid_mean", "kid_std", "inception_score",
                 # the label-free judges (genlab.evaluate.label_free), on every row
                 "c2st_acc", "precision", "recall", "memorisation", "memorisation_ratio"}


def _git(repo, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One tiny end-to-end `dvc repro`, shared by the tests below (they run in file order).
    MLflow logs to the repo's default store, `<repo>/mlflow.db`."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("GENLAB_PROGRESS", "0")
        out = dvc(repo, "repro").stdout
    return repo, out


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_outputs(pipeline):
    repo, out = pipeline
    assert ran(out) == STAGES
    assert set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]) == STAGES
    for path in ["data/images/meta.json", "data/text/vocab.json", "models/classifier/checkpoint.pt",
                 "models/gan/checkpoint.pt", "models/vae/checkpoint.pt", "data/generated/gan.npy",
                 "reports/render/gan_traversal.png", "reports/render/vae_traversal.gif",
                 "reports/render/gan_vs_vae.png", "reports/index.md", "reports/index.html", "dvc.lock"]:
        assert (repo / path).exists(), path
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(metrics) == {"real", "gan", "vae"}
    for row in metrics.values():
        assert set(row) == EVALUATE_KEYS
    index = (repo / "reports/index.md").read_text()
    for fig in ("render/gan_traversal.png", "render/vae_traversal.png", "evaluate/gan_histogram.png", "render/gan_vs_vae.png"):
        assert f"({fig})" in index


@pytest.mark.slow
def test_plots_render_every_curve(pipeline):
    repo, _ = pipeline
    out = dvc(repo, "plots", "show", "--json").stdout
    plots = json.loads(out)
    assert not plots.get("errors"), plots.get("errors")
    plots = plots["data"]
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    assert len(declared) >= 9
    images = [e for e in declared if isinstance(e, str)]  # image plots: the generators' sample grids
    assert images, "dvc.yaml declares no image plot"
    for path in images:
        assert path in plots and plots[path], f"dvc plots show has no {path}"
    for entry in (e for e in declared if isinstance(e, dict)):  # every curve plot, with every curve it names
        (name, spec), = entry.items()
        assert name in plots, name
        values = plots[name][0]["content"]["data"]["values"]
        seen = {str(v) for row in values for v in (*row, *row.values())}
        for columns in spec["y"].values():
            for column in columns:
                assert column in seen, f"{name}: no {column} curve"
        assert sum(1 for row in values if spec["x"] in row) > 1, f"{name}: fewer than 2 points"


@pytest.mark.slow
def test_second_repro_runs_nothing(pipeline):
    repo, _ = pipeline
    out = dvc(repo, "repro").stdout
    assert ran(out) == set()
    assert "Data and pipelines are up to date" in out


@pytest.mark.slow
def test_exp_run_reruns_exactly_the_gan_and_downstream(pipeline, monkeypatch):
    repo, _ = pipeline
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    before = json.loads((repo / "metrics/evaluate.json").read_text())
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "results")  # main's results, to come back to
    out = dvc(repo, "exp", "run", "-n", "gan-lr", "-S", "gan.lr=0.0001").stdout
    assert ran(out) == {"check_params", "train_gan", "generate", "evaluate", "render", "interpret", "report"}
    show = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    exp = next(e for base in show for e in base.get("experiments") or [] if e.get("name") == "gan-lr")
    scores = exp["revs"][0]["data"]["metrics"]["metrics/evaluate.json"]["data"]
    # the experiment's own numbers: the GAN's changed with its lr, the VAE's and the real set's did not
    assert scores["gan"]["fid"] != before["gan"]["fid"] and scores["vae"] == before["vae"]
    assert scores == json.loads((repo / "metrics/evaluate.json").read_text())
    # MLflow: one parent per pipeline execution, one child per executed stage
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("genlab").experiment_id], max_results=500)
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert sorted(p.info.run_name.split()[0] for p in parents.values()) == ["gan-lr", "workspace"]
    exp_parent = next(p for p in parents.values() if p.info.run_name == "gan-lr")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == exp_parent.info.run_id]
    assert {c.info.run_name for c in children} == {"train_gan", "generate", "evaluate", "render", "interpret", "report"}  # check_params logs nothing
    assert any(a.path == "index.md" for a in client.list_artifacts(exp_parent.info.run_id))
    # back to main's results: the resume state still holds the experiment's GAN, and that must
    # not make DVC re-train anything (it lives in .genlab/resume, which DVC does not hash)
    assert (repo / ".genlab/resume/train_gan.pt").exists()
    _git(repo, "checkout", "--", ".")
    dvc(repo, "checkout")
    assert json.loads((repo / "metrics/evaluate.json").read_text()) == before
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    assert ran(dvc(repo, "repro").stdout) == set()


@pytest.mark.slow
def test_bad_params_stop_the_stage_and_change_nothing(pipeline):
    repo, _ = pipeline
    before = (repo / "metrics/evaluate.json").read_bytes()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["gan"]["lr"] = -1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = dvc(repo, "repro", check=False)
    assert proc.returncode != 0
    assert "params.yaml: gan.lr: must be > 0, got -1" in proc.stdout + proc.stderr
    assert (repo / "metrics/evaluate.json").read_bytes() == before
    assert (repo / "models/gan/checkpoint.pt").exists()

"""`genlab study`: definitions validated with one-line errors, and a tiny two-candidate study
end to end through real DVC (queue, 2 workers), MLflow and the comparison page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_pipeline_repo, tiny_params
from genlab.params import ParamsError, read_params, validate_section
from genlab.study.spec import MetricSpec, StudiesFile, candidate_name, check_candidates, expand, format_value, load_studies

TINY_STUDY = {
    "studies": {
        "tiny": {
            "description": "GAN epochs 1 vs 2 (a setting whose effect is visible in every output).",
            "seed_report": "more epochs help.",
            "target": "train_gan",
            "base": {"gan.sample_every": 1},
            "grid": {"gan.epochs": [1, 2]},
            "metrics": [
                {"label": "epochs", "file": "metrics/gan.json", "key": "gan/epochs", "goal": "max", "fmt": ".0f"},
                {"label": "steps", "file": "metrics/gan.json", "key": "gan/steps", "fmt": ".0f"},
                {"label": "G loss std", "plot": "plots/gan/losses.tsv", "column": "g_loss", "stat": "std"},
            ],
            "figures": [
                {"kind": "grids", "title": "samples", "path": "reports/gan/epoch_{epoch:03d}.png", "epochs": [1, 2, 50]},
                {"kind": "curves", "title": "losses", "plot": "plots/gan/losses.tsv", "y": ["d_loss_fake", "g_loss"]},
            ],
        }
    }
}


def _studies(raw: dict) -> StudiesFile:
    return validate_section(raw, "", StudiesFile, source="studies.yaml")


def test_shipped_studies_validate_and_every_candidate_fits_params_yaml():
    studies = load_studies(ROOT / "studies.yaml")
    assert {"gan_discriminator", "gan_lr", "gan_generator_depth", "gan_init", "gan_eecs598", "vae_latent",
            "char_rnn"} <= set(studies.studies)
    params = read_params(ROOT / "params.yaml")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, spec in studies.studies.items():
        assert spec.target in stages, name
        for preset in ("cpu", "gpu"):
            check_candidates(expand(name, spec, preset), params)
    disc = expand("gan_discriminator", studies.studies["gan_discriminator"])
    assert [c.label for c in disc][:2] == ["d_layers=3, d_dropout=0.0", "d_layers=4, d_dropout=0.0"] and len(disc) == 6
    assert len(expand("char_rnn", studies.studies["char_rnn"])) == 16


@pytest.mark.parametrize(("patch", "message"), [
    ({"target": None}, "studies.yaml: studies.tiny.target: input should be a valid string"),
    ({"colour": 1}, "studies.yaml: studies.tiny.colour: unknown key"),
    ({"grid": {}, "candidates": []}, "studies.yaml: studies.tiny: give a grid or candidates"),
    ({"metrics": [{"label": "x", "file": "m.json"}]}, "give either file + key"),
    ({"figures": [{"kind": "grids", "title": "t", "path": "reports/gan/a.png"}]}, "must contain {epoch}"),
])
def test_bad_definitions_are_one_line_errors(patch, message):
    raw = yaml.safe_load(yaml.safe_dump(TINY_STUDY))
    raw["studies"]["tiny"].update(patch)
    with pytest.raises(ParamsError) as err:
        _studies(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_overrides_are_checked_against_params_before_anything_is_queued():
    params = tiny_params()
    spec = _studies(TINY_STUDY).studies["tiny"]
    with pytest.raises(ParamsError, match=r"^studies.yaml: studies.tiny: gan.epochz: no such key in params.yaml$"):
        check_candidates(expand("tiny", spec.model_copy(update={"grid": {"gan.epochz": [1]}})), params)
    with pytest.raises(ParamsError, match=r"candidate lr-0.*gan.lr: must be > 0, got 0"):
        check_candidates(expand("tiny", spec.model_copy(update={"grid": {"gan.lr": [0.0]}})), params)


def test_candidate_names_and_values_for_dvc():
    assert candidate_name({"gan.d_layers": 4, "gan.d_dropout": 0.2}) == "d_layers-4_d_dropout-0.2"
    assert candidate_name({"gan.init": "xavier", "gan.limit": None}) == "init-xavier_limit-null"
    assert [format_value(v) for v in (1e-05, None, True, "it's", [8, 16])] == ["1e-05", "null", "true", "'it\\'s'", "[8,16]"]


def _genlab(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the repo's mlflow.db
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "genlab.cli", "study", *args], cwd=repo, capture_output=True,
                          text=True, env=env, timeout=1800)


@pytest.mark.slow
def test_tiny_study_end_to_end_through_dvc_queue_mlflow_and_the_page(tmp_path):
    from mlflow.tracking import MlflowClient

    from genlab.study.experiments import experiments
    from genlab.study.report import collect

    repo = make_pipeline_repo(tmp_path / "repo")
    (repo / "studies.yaml").write_text(yaml.safe_dump(TINY_STUDY, sort_keys=False))
    subprocess.run(["git", "add", "studies.yaml"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "study"], cwd=repo, check=True)

    proc = _genlab(repo, "run", "tiny", "-j", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study tiny: 2 ran, 0 reused (finished on this commit), 0 failed" in proc.stdout
    exps = {e.name: e.rev for e in experiments(repo)}
    assert set(exps) == {"tiny--epochs-1", "tiny--epochs-2"}

    # the setting took effect: each experiment trained its own number of epochs
    spec = load_studies(repo / "studies.yaml").studies["tiny"]
    results, missing = collect(repo, expand("tiny", spec), spec)
    assert not missing
    by_name = {r.candidate.name: r for r in results}
    assert by_name["epochs-1"].params == {"gan.epochs": 1} and by_name["epochs-2"].params == {"gan.epochs": 2}
    assert by_name["epochs-1"].metrics["epochs"] == 1 and by_name["epochs-2"].metrics["epochs"] == 2
    assert by_name["epochs-2"].metrics["steps"] == 2 * by_name["epochs-1"].metrics["steps"] > 0
    assert [e for e, _ in by_name["epochs-1"].grids[0]] == [1]  # epoch 50 never happened: dropped
    assert [e for e, _ in by_name["epochs-2"].grids[0]] == [1, 2]
    assert all(png.startswith(b"\x89PNG") for r in results for _, png in r.grids[0])

    proc = _genlab(repo, "report", "tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = repo / "reports/studies/tiny"
    md = (page / "index.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in md.splitlines() if line.startswith("| epochs-")}
    assert set(rows) == {"epochs-1", "epochs-2"}
    assert rows["epochs-1"][1:4] == ["1", "1", "8"] and rows["epochs-2"][1:4] == ["2", "2", "16"]  # gan.epochs, epochs, steps
    assert "**Verdict:** best: epochs=2 (epochs 2 vs 1 for epochs=1, the worst of 2)" in md
    for fig in ("metric.png", "figure_0_grids.png", "figure_1_curves.png"):
        assert f"]({fig})" in md and (page / fig).read_bytes().startswith(b"\x89PNG"), fig
    html = (page / "index.html").read_text()
    assert '<img src="figure_0_grids.png"' in html and "<td>epochs-2</td>" in html

    # MLflow: every run of a candidate carries the study and candidate tags; the page links the parent run
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exp_ids, filter_string="tags.`genlab.study` = 'tiny'")
    assert {r.data.tags["genlab.candidate"] for r in runs} == {"epochs-1", "epochs-2"}
    assert {r.data.tags["genlab.stage"] for r in runs if "genlab.stage" in r.data.tags} >= {"train_gan"}
    parents = {r.data.tags["genlab.candidate"]: r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert re.search(rf"\| `{parents['epochs-2'][:12]}` \|", md)

    # a second run reuses both finished experiments: nothing queued, the same commits
    proc = _genlab(repo, "run", "tiny", "-j", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study tiny: 0 ran, 2 reused" in proc.stdout
    assert {e.name: e.rev for e in experiments(repo)} == exps


def test_verdict_ranks_by_the_goal_metric_and_correlates_loss_spread():
    from genlab.study.experiments import Experiment
    from genlab.study.report import Result, spearman, verdict

    spec = _studies(TINY_STUDY).studies["tiny"].model_copy(update={"metrics": [
        MetricSpec(label="FID", file="m.json", key="fid", goal="min", fmt=".1f"),
        MetricSpec(label="G loss std", plot="p.tsv", column="g_loss", stat="std"),
    ]})
    cands = expand("tiny", spec.model_copy(update={"grid": {"gan.lr": [1e-4, 2e-4, 1e-2]}}))
    values = {"lr-0.0001": (40.0, 0.5), "lr-0.0002": (31.2, 0.9), "lr-0.01": (48.9, 0.1)}
    results = [Result(c, Experiment(c.exp_name, "0" * 40, "1" * 40, 0), {}, dict(zip(("FID", "G loss std"), values[c.name])))
               for c in cands]
    lines = verdict(results, spec)
    assert lines[0] == "**Verdict:** best: lr=0.0002 (FID 31.2 vs 48.9 for lr=0.01, the worst of 3)"
    assert lines[1].startswith("Ranking by FID (lower is better): lr=0.0002 (31.2) > lr=0.0001 (40.0) > lr=0.01 (48.9)")
    assert lines[2] == "Spearman ρ(G loss std, FID) = -1.00 over 3 candidates: higher G loss std goes with better FID."
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0) and spearman([1, 2], [1, 2]) is None


def test_queue_workers_share_the_cpu_threads(monkeypatch):
    from genlab.study.experiments import worker_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert worker_env(2, cpus=2)["OMP_NUM_THREADS"] == "1"
    assert worker_env(2, cpus=8)["OMP_NUM_THREADS"] == "4"
    assert worker_env(3, cpus=2)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in worker_env(1, cpus=2)  # one worker: torch's default, every core
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert worker_env(2, cpus=2)["OMP_NUM_THREADS"] == "2"  # the caller's choice wins

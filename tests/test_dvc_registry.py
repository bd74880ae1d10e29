"""DVC's side of the ecosystem, with real dvc in a temp repo: the generators' sample grids are
image plots (`dvc plots diff` of two experiments puts them side by side) and the trained models
are registry artifacts."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT, dvc, make_pipeline_repo, tiny_params

GRIDS = ("reports/generate/gan_grid.png", "reports/generate/vae_grid.png")


def test_dvc_yaml_declares_artifacts_and_image_plots():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = {next(iter(o)) if isinstance(o, dict) else o for st in spec["stages"].values() for o in st.get("outs", [])}
    for name, art in spec["artifacts"].items():
        assert art["type"] == "model" and art["desc"] and art["labels"], name
        assert any(art["path"].startswith(o + "/") for o in outs), f"{name}: {art['path']} is no stage's output"
    assert {"gan-generator", "vae"} <= set(spec["artifacts"])
    assert set(GRIDS) <= {p for p in spec["plots"] if isinstance(p, str)}


@pytest.mark.slow
def test_plots_diff_shows_two_experiments_sample_grids(tmp_path):
    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(tracking={"enabled": False}, device="cpu"))
    dvc(repo, "exp", "run", "-n", "narrow", "generate")
    dvc(repo, "exp", "run", "-n", "wide", "-S", "gan.g_width=32", "generate")
    out = json.loads(dvc(repo, "plots", "diff", "narrow", "wide", "--json").stdout)
    data = out.get("data", out)
    for grid in GRIDS:
        images = [d for d in data[grid] if d.get("type") == "image"]
        assert {r for d in images for r in d["revisions"]} == {"narrow", "wide"}, (grid, images)

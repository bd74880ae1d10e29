"""check_params: every section of params.yaml is validated before any stage runs."""

from __future__ import annotations

import yaml

from conftest import ROOT, run_stage, tiny_params
from genlab.params import CommonParams
from genlab.sections import SECTIONS, validate_all


def test_repo_params_cover_every_section_and_are_valid():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(data) == set(SECTIONS) | set(CommonParams.model_fields)
    assert validate_all(ROOT / "params.yaml") == []


def test_every_stage_of_dvc_yaml_depends_on_check_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "check_params" in stages
    for name, stage in stages.items():
        if name != "check_params":
            assert "data/params.ok" in stage["deps"], name
    # check_params watches every section
    assert set(stages["check_params"]["params"]) == set(SECTIONS) | set(CommonParams.model_fields)


def test_all_problems_reported_at_once(tmp_path):
    params = tiny_params(gan={"lr": -1}, render={"interpolation": "cubic"}, bogus={"x": 1})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("check_params.py", tmp_path, check=False)
    assert proc.returncode == 2
    err = proc.stderr
    assert "error: params.yaml: gan.lr: must be > 0, got -1" in err
    assert "error: params.yaml: render.interpolation: must be one of 'linear' or 'slerp', got 'cubic'" in err
    assert "error: params.yaml: bogus: unknown section" in err
    assert not (tmp_path / "data").exists()


def test_valid_params_write_the_marker(stage_dir):
    run_stage("check_params.py", stage_dir)
    assert (stage_dir / "data/params.ok").read_text() == "params.yaml is valid\n"

"""Presets as files (issue 29): every presets/*.yaml is a valid set of params overrides, and
`genlab preset run NAME` is `dvc exp run -n NAME -S ...` on a real DVC repo."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import ROOT, make_pipeline_repo, tiny_params
from genlab.cli import main as genlab_main
from genlab.params import ParamsError
from genlab.presets import check_preset, dvc_command, flatten, load_preset, merge, preset_names

PRESETS = ROOT / "presets"


def test_the_shipped_presets_are_there():
    assert {"quick", "fashion-mnist", "mnist", "rgb"} <= set(preset_names(PRESETS))


@pytest.mark.parametrize("name", preset_names(PRESETS))
def test_every_preset_is_valid_params_overrides(name):
    # merged over params.yaml and checked by check_params' own checks (sources: another machine's)
    assert check_preset(name, ROOT / "params.yaml", PRESETS) == []
    text = (PRESETS / f"{name}.yaml").read_text()
    assert text.startswith("# "), "a preset opens with a comment saying why it exists"
    overrides = load_preset(name, PRESETS)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merged = merge(params, overrides)
    changed = {k for k, v in flatten(overrides).items() if flatten(params)[k] != v}
    assert changed == set(flatten(overrides)), f"{name} repeats params.yaml's defaults: override only what differs"
    assert merged != params


def test_a_bad_preset_is_refused_naming_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("# bad: a negative learning rate\ngan:\n  lr: -1\n")
    (tmp_path / "typo.yaml").write_text("# typo: a key params.yaml does not have\ngan:\n  epochz: 3\n")
    (tmp_path / "silent.yaml").write_text("gan:\n  epochs: 3\n")
    problems = check_preset("bad", ROOT / "params.yaml", tmp_path)
    assert len(problems) == 1 and "gan.lr" in problems[0] and "presets/bad.yaml" in problems[0]
    with pytest.raises(ParamsError, match="gan.epochz: no such key in params.yaml"):
        check_preset("typo", ROOT / "params.yaml", tmp_path)
    with pytest.raises(ParamsError, match="comment"):
        load_preset("silent", tmp_path)
    with pytest.raises(ParamsError, match=r"no such preset .*\(presets: bad, silent, typo\)"):
        load_preset("nope", tmp_path)


def test_values_survive_the_dvc_override_syntax():
    cmd = dvc_command("x", {"prepare_images": {"source": "idx:/usr/share/datasets/fashion-mnist"},
                            "char_rnn": {"threads": None, "prime": "ROMEO: ", "sweep_temperatures": [0.5, 1.0]},
                            "gan": {"amp": "off", "batchnorm": False, "lr": 3e-4}}, ["--queue"])
    assert cmd[:5] == ["dvc", "exp", "run", "-n", "x"] and cmd[-1] == "--queue"
    sets = dict(a.split("=", 1) for a in cmd[6:-1:2])
    assert sets == {"prepare_images.source": "idx:/usr/share/datasets/fashion-mnist", "char_rnn.threads": "null",
                    "char_rnn.prime": "'ROMEO: '", "char_rnn.sweep_temperatures": "[0.5,1.0]",
                    "gan.amp": "'off'", "gan.batchnorm": "false", "gan.lr": "0.0003"}


def test_preset_list_and_show(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert genlab_main(["preset", "list"]) == 0
    out = capsys.readouterr().out
    assert {line.split(":")[0] for line in out.splitlines()} == set(preset_names(PRESETS))
    assert genlab_main(["preset", "show", "quick"]) == 0
    assert "# runs: dvc exp run -n quick -S prepare_images.limit=6000" in capsys.readouterr().out


def test_quick_preset_runs_as_a_named_dvc_experiment(tmp_path, monkeypatch, capsys):
    # the tiny params are params.yaml; the quick preset goes over them and a later -S wins over the
    # preset (generate.n_samples); up to prepare_images only, to stay fast
    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(tracking={"enabled": False}, device="cpu"))
    monkeypatch.chdir(repo)
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "t@t" if "EMAIL" in var else "t")  # the experiment is a git commit
    rc = genlab_main(["preset", "run", "quick", "-S", "generate.n_samples=123", "prepare_images"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.splitlines()[0].startswith("dvc exp run -n quick -S prepare_images.limit=6000 -S classifier.epochs=1")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["prepare_images"]["limit"] == 6000 and params["classifier"]["epochs"] == 1
    assert params["gan"]["epochs"] == 1 and params["generate"]["n_samples"] == 123
    meta = json.loads((repo / "data" / "images" / "meta.json").read_text())
    assert meta  # the stage ran in the experiment
    assert not (repo / "models").exists()  # only the targeted stage and its deps ran
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout
    assert any(ref.endswith("/quick") for ref in refs.splitlines()), refs

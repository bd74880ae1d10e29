"""params.yaml is the one place a training default lives: every params class's code defaults
equal its params.yaml section, key for key, so a library call (`train_gan(GanParams())`) and
`dvc repro` train the same model."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT
from genlab.params import CommonParams
from genlab.sections import SECTIONS, config_class

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _differences(cls: type, section: dict) -> list[str]:
    """Keys whose code default differs from params.yaml, and keys only one of them has."""
    code = cls().model_dump(mode="json")
    # validated through the class, so 1e-3 vs 0.001 or [1, 2] vs (1, 2) compare as equal
    yml = cls.model_validate(section).model_dump(mode="json")
    out = [f"{k}: code {code[k]!r}, params.yaml {yml[k]!r}" for k in code if code[k] != yml[k]]
    out += [f"{k}: only in code (default {code[k]!r}); add it to params.yaml" for k in code if k not in section]
    return out


@pytest.mark.parametrize("section", SECTIONS)
def test_code_defaults_equal_params_yaml(section):
    diffs = _differences(config_class(section), PARAMS[section])
    assert not diffs, f"{section}: " + "; ".join(diffs)


def test_shared_sections_defaults_equal_params_yaml():
    shared = {k: PARAMS[k] for k in CommonParams.model_fields if k in PARAMS}
    assert not _differences(CommonParams, shared)


def test_a_differing_or_code_only_default_is_caught():
    from genlab.train.gan import GanParams

    section = dict(PARAMS["gan"])
    assert _differences(GanParams, section) == []
    section["lr"] = section["lr"] * 2
    del section["log_every"]
    diffs = _differences(GanParams, section)
    assert any(d.startswith("lr: code") for d in diffs)
    assert "log_every: only in code (default 20); add it to params.yaml" in diffs


def test_a_library_call_trains_what_dvc_repro_trains():
    """GanParams() is the params.yaml gan section, validated."""
    from genlab.train.gan import GanParams

    assert GanParams() == GanParams.model_validate(PARAMS["gan"])

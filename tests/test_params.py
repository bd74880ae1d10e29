"""Typed params: every error class names the key path in one line."""

from __future__ import annotations

from typing import Literal

import pytest
import yaml
from pydantic import Field

from genlab.params import (
    CommonParams,
    ParamsError,
    StrictModel,
    flatten,
    load_params,
    load_params_or_exit,
)


class Inner(StrictModel):
    width: int = Field(8, gt=0)


class Section(StrictModel):
    lr: float = Field(2e-4, gt=0)
    dropout: float = Field(0.0, ge=0, le=1)
    loss: Literal["bce", "lsgan"] = "bce"
    inner: Inner = Inner()


def write(tmp_path, data) -> str:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def error_for(tmp_path, data) -> str:
    with pytest.raises(ParamsError) as exc:
        load_params("gan", Section, write(tmp_path, data))
    return str(exc.value)


def test_valid_section_and_defaults(tmp_path):
    common, cfg = load_params("gan", Section, write(tmp_path, {"seed": 3, "gan": {"lr": 0.1}}))
    assert common.seed == 3 and common.device == "auto" and common.tracking.enabled
    assert cfg.lr == 0.1 and cfg.loss == "bce" and cfg.inner.width == 8


def test_out_of_range_names_key_and_value(tmp_path):
    assert error_for(tmp_path, {"gan": {"lr": -1}}) == "params.yaml: gan.lr: must be > 0, got -1"
    assert "gan.dropout: must be <= 1, got 1.5" in error_for(tmp_path, {"gan": {"dropout": 1.5}})


def test_unknown_key_lists_allowed(tmp_path):
    msg = error_for(tmp_path, {"gan": {"lrr": 0.1}})
    assert msg.startswith("params.yaml: gan.lrr: unknown key")
    assert "lr" in msg and "dropout" in msg
    nested = error_for(tmp_path, {"gan": {"inner": {"wdth": 1}}})
    assert nested.startswith("params.yaml: gan.inner.wdth: unknown key (allowed: width)")


def test_wrong_type(tmp_path):
    msg = error_for(tmp_path, {"gan": {"lr": "fast"}})
    assert msg.startswith("params.yaml: gan.lr: ") and "'fast'" in msg
    assert "gan.inner.width" in error_for(tmp_path, {"gan": {"inner": {"width": 2.5}}})


def test_unknown_choice(tmp_path):
    msg = error_for(tmp_path, {"gan": {"loss": "wasserstein"}})
    assert msg.startswith("params.yaml: gan.loss: must be one of 'bce' or 'lsgan'")
    assert "'wasserstein'" in msg


def test_shared_sections_validated(tmp_path):
    with pytest.raises(ParamsError, match=r"^params.yaml: device: must be one of"):
        load_params("gan", Section, write(tmp_path, {"device": "tpu", "gan": {}}))
    with pytest.raises(ParamsError, match=r"^params.yaml: seed: must be >= 0, got -1$"):
        load_params("gan", Section, write(tmp_path, {"seed": -1, "gan": {}}))
    with pytest.raises(ParamsError, match=r"tracking.enabled"):
        load_params("gan", Section, write(tmp_path, {"tracking": {"enabled": "maybe"}, "gan": {}}))


def test_missing_section_and_bad_file(tmp_path):
    with pytest.raises(ParamsError, match="gan: section is missing"):
        load_params("gan", Section, write(tmp_path, {"seed": 0}))
    bad = tmp_path / "params.yaml"
    bad.write_text("gan: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params("gan", Section, bad)
    with pytest.raises(ParamsError, match="must be a mapping"):
        load_params("gan", Section, write(tmp_path, {"gan": [1, 2]}))


def test_exit_is_one_line_and_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        load_params_or_exit("gan", Section, write(tmp_path, {"gan": {"lr": 0}}))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: params.yaml: gan.lr: must be > 0, got 0"


def test_repo_params_yaml_validates_every_section_as_written():
    """Every section of the repo's params.yaml has a validator, and each value survives
    validation unchanged (a key a model renamed or coerced would show here)."""
    from conftest import ROOT

    from genlab.sections import SECTIONS, config_class

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = tuple(CommonParams.model_fields)  # seed, device, tracking, distributed
    assert set(data) - set(shared) == set(SECTIONS)
    models = {"common": (CommonParams, {k: data[k] for k in shared})}
    models.update({s: (config_class(s), data[s]) for s in SECTIONS})
    for name, (cls, values) in models.items():
        dumped = flatten(cls.model_validate(values).model_dump(mode="json"))
        for key, value in flatten(values).items():
            assert key in dumped, f"{name}.{key} is not a field"
            if isinstance(dumped[key], float):
                assert dumped[key] == pytest.approx(float(value)), f"{name}.{key}"
            else:
                assert dumped[key] == value, f"{name}.{key}"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1]}) == {"a.b": 1, "a.c.d": "x", "e": [1]}


def test_validator_messages_are_shown_without_pydantic_prefix(tmp_path):
    from pydantic import field_validator

    class Checked(StrictModel):
        size: int = 28

        @field_validator("size")
        @classmethod
        def _even(cls, v: int) -> int:
            if v % 2:
                raise ValueError("Must be even")
            return v

    with pytest.raises(ParamsError) as exc:
        load_params("gan", Checked, write(tmp_path, {"gan": {"size": 27}}))
    assert str(exc.value) == "params.yaml: gan.size: must be even, got 27"

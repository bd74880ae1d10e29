"""requirements.lock pins every dependency pyproject.toml declares (make install installs the
lock with --no-deps, so a dependency missing from it fails pip check): after editing
pyproject.toml's dependencies, run `make lock`."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT

BY_TORCH = {"torch", "torchvision"}  # installed by the Makefile's $(TORCH), kept out of the lock


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_lock_pins_every_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]} - BY_TORCH
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in lines if "==" in line and not line.startswith("#")}
    assert declared - pinned == set(), "run `make lock`: requirements.lock misses these"
    assert not pinned & BY_TORCH

"""Fault suite, params fuzzing: seeded random mutations of params.yaml (wrong types, unknown
keys, out-of-range values, nested garbage, YAML syntax errors, an empty file). Each one either
validates or is refused by the check_params gate (exit 2) with one line per problem naming the
key path; never a traceback. The gate refuses everything a stage would refuse, so DVC never
reaches a stage (and never deletes its outputs) with params it cannot run (issue 17).

A seeded generator rather than hypothesis (MPL-2.0): the cases are the same on every run and
the suite adds no dependency; a failing case prints its seed, mutation and file.
"""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import tiny_params
from genlab.check_params import check_params
from genlab.params import CommonParams, ParamsError, load_params, read_params, validate_section
from genlab.sections import SECTIONS, config_class
from genlab.stage import run_stage

pytestmark = pytest.mark.faults

N_CASES = 200
GARBAGE: list[Any] = ["abc", "", -1, 0, 10**30, -1e9, 1e-300, 0.5, float("nan"), float("inf"), True, None,
                      [1, "x"], {"x": 1}, {"nested": {"deeper": [None]}}, "idx:", "1e-3", "[", "~"]
LINE = re.compile(r"^params\.yaml: (\S.*?): \S")  # 'params.yaml: <key path>: <what is wrong>...'


def leaves(d: dict, path: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out += leaves(v, path + (k,)) if isinstance(v, dict) and v else [path + (k,)]
    return out


def set_path(d: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def mutate(base: dict, rng: random.Random) -> tuple[str, str, tuple | None]:
    """One mutated params file: (text, description, the key path it touched or None)."""
    params = copy.deepcopy(base)
    kind = rng.choice(["value", "value", "value", "unknown_key", "drop_key", "section_garbage", "syntax", "truncate",
                       "whole_file"])
    if kind == "value":
        path = rng.choice(leaves(params))
        value = rng.choice(GARBAGE)
        set_path(params, path, value)
        return yaml.safe_dump(params), f"{'.'.join(map(str, path))} = {value!r}", path
    if kind == "unknown_key":
        path = rng.choice(leaves(params))[:-1] + (f"typo_{rng.randrange(100)}",)
        set_path(params, path, rng.choice(GARBAGE))
        return yaml.safe_dump(params), f"unknown key {'.'.join(path)}", path
    if kind == "drop_key":
        path = rng.choice(leaves(params))
        parent = params
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
        return yaml.safe_dump(params), f"drop {'.'.join(path)}", None  # defaults may fill it
    if kind == "section_garbage":
        section = rng.choice(sorted(params))
        params[section] = rng.choice(["text", 3, [1, 2], [{"a": 1}]])
        return yaml.safe_dump(params), f"section {section} = {params[section]!r}", (section,)
    text = yaml.safe_dump(params)
    if kind == "syntax":
        pos = rng.randrange(len(text))
        junk = rng.choice([": :", "\t", "[", "{", "- x\n  y: [", "\"", "&a *b", "key: value: other"])
        return text[:pos] + junk + text[pos:], f"syntax {junk!r} at {pos}", None
    if kind == "truncate":
        pos = rng.randrange(len(text))
        return text[:pos], f"truncated at {pos}", None
    choice = rng.choice(["", "# only a comment\n", "- a\n- b\n", "42\n", "just text\n", "\x00\x01binary"])
    return choice, f"whole file {choice!r}", None


def stage_verdicts(path: Path) -> dict[str, str | None]:
    """What each stage's own params check (genlab.params.load_params) says (None: it would run).
    The file is parsed once, then each section checked as load_params checks it."""
    try:
        data = read_params(path)
    except ParamsError as exc:
        return {section: str(exc) for section in SECTIONS}
    out = {}
    for section in SECTIONS:
        try:
            validate_section({k: data[k] for k in CommonParams.model_fields if k in data}, "", CommonParams)
            if section not in data:
                raise ParamsError(f"params.yaml: {section}: section is missing")
            validate_section(data[section], section, config_class(section))
            out[section] = None
        except ParamsError as exc:
            out[section] = str(exc)
    return out


def test_stage_verdicts_agree_with_load_params(tmp_path):
    """The shortcut above is what the stages run (so the fuzz loop can afford 200 cases)."""
    path = tmp_path / "params.yaml"
    params = tiny_params()
    params["gan"]["lr"], params["vae"]["typo"] = -1, 1
    path.write_text(yaml.safe_dump(params))
    for section, verdict in stage_verdicts(path).items():
        try:
            load_params(section, config_class(section), path)
            assert verdict is None
        except ParamsError as exc:
            assert verdict == str(exc)


def test_fuzzed_params_validate_or_fail_in_one_line_per_problem(tmp_path, capsys, monkeypatch):
    base = tiny_params()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(base))
    assert check_params(path) == [], "the tiny params must be valid to start from"
    rng = random.Random(17)
    counts = {"valid": 0, "refused": 0}
    for case in range(N_CASES):
        text, what, touched = mutate(base, rng)
        path.write_text(text)
        label = f"case {case} ({what})"
        try:
            problems = check_params(path, base=tmp_path)
        except ParamsError as exc:  # a file that is not YAML or not a mapping: one line
            problems = str(exc).splitlines()
            assert len(problems) == 1 and problems[0].startswith(f"{path}: "), (label, problems)
            assert all(stage_verdicts(path).values()), f"{label}: a stage would run a file the gate cannot read"
            counts["refused"] += 1
            continue
        verdicts = stage_verdicts(path)
        if not problems:
            assert not any(verdicts.values()), f"{label}: the gate passed what a stage refuses: {verdicts}"
            counts["valid"] += 1
            continue
        counts["refused"] += 1
        for line in problems:
            assert LINE.match(line), (label, line)
        if touched is not None:  # the problem names the key path that was mutated (or the section it lives in)
            named = [LINE.match(line).group(1) for line in problems]
            assert any(n == ".".join(map(str, touched))[: len(n)] or ".".join(map(str, touched)).startswith(n)
                       for n in named), (label, problems)
        for section, verdict in verdicts.items():  # every stage refusal is a gate refusal
            if verdict:
                assert set(verdict.splitlines()) <= set(problems), (label, section, verdict, problems)
    # the gate itself, as DVC runs it: exit 2, one line per problem, nothing written
    monkeypatch.chdir(tmp_path)
    path.write_text("gan:\n  lr: [1\n")
    from genlab.check_params import check_params as gate

    def main() -> int:
        problems = gate("params.yaml")
        if problems:
            raise ParamsError("\n".join(problems))
        return 0

    capsys.readouterr()
    assert run_stage(main, "check_params") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: check_params: params.yaml: not valid YAML: line 3, column 1"), err
    assert counts["valid"] > 10 and counts["refused"] > 120, counts  # both outcomes well exercised
    print(f"fuzzed params: {N_CASES} cases, {counts['valid']} valid, {counts['refused']} refused")


# --- limits the gate checks (issue 25 finding 3) ------------------------------------------------

def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda p: p["gan"].update(lr=float("inf")), "params.yaml: gan.lr: input should be a finite number, got inf"),
    (lambda p: p["vae"].update(lr=float("nan")), "params.yaml: vae.lr: input should be a finite number, got nan"),
    (lambda p: p["prepare_images"].update(n_train=100_000_000),
     "params.yaml: prepare_images.n_train: must be <= 1000000, got 100000000"),
    (lambda p: p.update(device="cpu", distributed={"nproc": 64}),
     f"params.yaml: distributed.nproc: 64 processes on CPU, but this machine has {_cpus()} CPUs (device: cpu)"),
    (lambda p: p.update(distributed={"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "node0:29400"}),
     "params.yaml: distributed: node_rank 2 must be below nnodes 2 (nodes count from 0)"),
    (lambda p: p.update(distributed={"nnodes": 2}),
     "params.yaml: distributed: nnodes 2 needs rdzv_endpoint: host:port of node 0, the same on every node"),
    (lambda p: p.update(distributed={"nnodes": 2, "rdzv_endpoint": "node0"}),
     "params.yaml: distributed.rdzv_endpoint: must be host:port with a port in 1..65535, e.g. node0.example.org:29400, "
     "got 'node0'"),
], ids=["inf", "nan", "n_train", "nproc", "node_rank", "no_endpoint", "endpoint"])
def test_limits_are_one_line_from_the_gate(tmp_path, edit, expected):
    params = tiny_params()
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert check_params(path, base=tmp_path) == [expected]


def test_a_duplicate_key_is_one_line_naming_the_key_and_both_lines(tmp_path):
    """PyYAML keeps the last value; DVC refuses the file: the gate names the key."""
    text = yaml.safe_dump(tiny_params(), sort_keys=False)
    lines = text.splitlines()
    gan = lines.index("gan:")
    lines.insert(gan + 1, "  lr: 0.5")
    first = next(i for i in range(gan + 2, len(lines)) if lines[i].startswith("  lr:"))
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as err:
        check_params(path, base=tmp_path)
    assert str(err.value) == f"{path}: gan.lr: duplicate key (lines {gan + 2} and {first + 1}); keep one"


def test_an_empty_params_file_is_the_gates_line_in_dvc_repro(tmp_path):
    """DVC read the stages' params keys first and stopped with 'Parameters ... are missing'."""
    from conftest import dvc, make_pipeline_repo

    repo = make_pipeline_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text("")
    proc = dvc(repo, "repro", check=False)
    assert proc.returncode != 0
    gate = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("error: check_params:")]
    assert gate == ["error: check_params: params.yaml: is empty; expected a mapping of sections (seed, device, "
                    "tracking, and one per stage)"], proc.stdout + proc.stderr
    assert "are missing" not in proc.stderr and not (repo / "data/images").exists()

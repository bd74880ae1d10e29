"""The `check_params` stage's logic: every section of params.yaml, and the local data sources
it names, checked before any stage runs.

DVC deletes a stage's outputs before running its command, so a problem caught only inside a
stage would cost that stage's previous outputs (`prepare_images.source: idx:/nonexistent`
used to delete ``data/images`` and ``metrics/data.json`` before failing); caught here, it costs
nothing. The section -> config class table lives in :mod:`genlab.sections`.
"""

from __future__ import annotations

import os
from pathlib import Path

from genlab.data.source_checks import check_image_source, check_text_source
from genlab.params import CommonParams, ParamsError, read_params, validate_section
from genlab.sections import SECTIONS, config_class

# section -> checker of its validated config's `source`: None when usable, else a one-line problem
SOURCE_CHECKS = {
    "prepare_images": lambda cfg, base: check_image_source(cfg.source, base),
    "prepare_text": lambda cfg, base: check_text_source(cfg.source, base, cfg.encoding),
}


def nproc_problem(common: CommonParams) -> str | None:
    """`distributed.nproc` beyond what this machine runs: CPUs on CPU, GPUs on CUDA (None: fine).
    torch is imported only when it is asked for more than one process."""
    nproc = common.distributed.nproc
    if nproc <= 1:
        return None
    device = common.device
    if device != "cpu":
        import torch

        if device == "cuda" or torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            if nproc > gpus:
                return f"{nproc} processes on CUDA, but this machine has {gpus} GPU{'s' * (gpus != 1)}"
            return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if nproc > cpus:
        return f"{nproc} processes on CPU, but this machine has {cpus} CPU{'s' * (cpus != 1)} (device: {device})"
    return None


def check_params(path: str | Path = "params.yaml", base: str | Path | None = None, sources: bool = True) -> list[str]:
    """Every problem in the params file at `path`, one line each (empty: all is well).

    Local sources (``idx:``, ``folder:``, ``path:``) must exist and hold what they should;
    relative paths resolve against `base` (default: the working directory, as in the stages).
    ``sources=False`` checks the values only (a preset may name a folder of another machine).
    A file that is not YAML or not a mapping raises :class:`ParamsError` (one line).
    """
    data = read_params(path)
    source = Path(path).name
    problems = []
    for key in sorted(set(data) - set(SECTIONS) - set(CommonParams.model_fields)):
        problems.append(f"{source}: {key}: unknown section (allowed: {', '.join([*CommonParams.model_fields, *SECTIONS])})")
    checks = [("", CommonParams, {k: data[k] for k in CommonParams.model_fields if k in data})]
    checks += [(s, config_class(s), data.get(s)) for s in SECTIONS]
    for section, model, raw in checks:
        if section and section not in data:
            problems.append(f"{source}: {section}: section is missing")
            continue
        try:
            cfg = validate_section(raw, section, model, source)
        except ParamsError as exc:
            problems.extend(str(exc).splitlines())
            continue
        if not section and sources:  # the machine's own limits; a preset may be for another machine
            problem = nproc_problem(cfg)
            if problem:
                problems.append(f"{source}: distributed.nproc: {problem}")
        if sources and section in SOURCE_CHECKS:
            problem = SOURCE_CHECKS[section](cfg, base)
            if problem:
                problems.append(f"{source}: {section}.source: {cfg.source}: {problem}")
    return problems

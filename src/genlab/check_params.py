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

from typing import Any

from genlab.data.source_checks import check_image_source, check_text_source, source_has_labels
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
    valid: dict[str, Any] = {}
    for section, model, raw in checks:
        if section and section not in data:
            problems.append(f"{source}: {section}: section is missing")
            continue
        try:
            cfg = validate_section(raw, section, model, source)
        except ParamsError as exc:
            problems.extend(str(exc).splitlines())
            continue
        valid[section] = cfg
        if not section and sources:  # the machine's own limits; a preset may be for another machine
            problem = nproc_problem(cfg)
            if problem:
                problems.append(f"{source}: distributed.nproc: {problem}")
        if sources and section in SOURCE_CHECKS:
            problem = SOURCE_CHECKS[section](cfg, base)
            if problem:
                problems.append(f"{source}: {section}.source: {cfg.source}: {problem}")
    if "prepare_images" in valid:
        problems += [f"{source}: {line}" for line in cross_section_problems(valid, base)]
    return problems


def known_train_images(images: Any) -> int | None:
    """The most training images `prepare_images` can yield when params alone tell (the
    rendered sources, or any source under ``limit``); None for a folder or download without one."""
    if images.source in ("synthetic-digits", "synthetic-rgb"):
        return min(images.n_train, images.limit or images.n_train)
    return images.limit


def cross_section_problems(valid: dict[str, Any], base: str | Path | None = None) -> list[str]:
    """What one section says that another cannot honour, one line each naming both keys:
    the image size and channels against ``gan.arch`` / ``vae.arch``, a batch larger than the
    training set (when params tell its size), ``conditional: true`` on a source without labels."""
    images = valid["prepare_images"]
    size, channels = images.image_size, images.channels
    data = f"prepare_images.image_size={size}, prepare_images.channels={channels}"
    problems = []
    # 2 classes stand in for a labelled set's count (unused unless `conditional`)
    for name, build in (("gan", lambda c: c.model_config_for_data(channels, size, 2)),
                        ("vae", lambda c: c.model_config_for_data((channels, size, size), 2))):
        if name not in valid:
            continue
        try:
            build(valid[name])
        except ParamsError as exc:
            why = str(exc).split(": ", 2)[-1]
            problems.append(f"{data} vs {name}.arch={valid[name].arch}: {why}")
    n = known_train_images(images)
    for name in ("gan", "vae"):  # both drop the last partial batch: a batch larger than the set trains nothing
        cfg = valid.get(name)
        if cfg is None or n is None:
            continue
        n_sec = min(n, cfg.limit) if getattr(cfg, "limit", None) else n
        if cfg.batch_size > n_sec:
            what = f"{name}.limit={cfg.limit}" if n_sec < n else (
                f"prepare_images.limit={images.limit}" if images.limit else f"prepare_images.n_train={images.n_train}")
            problems.append(f"{name}.batch_size={cfg.batch_size} is larger than the {n_sec} training images "
                            f"that {what} leaves: lower {name}.batch_size to at most {n_sec}")
    labelled = source_has_labels(images.source, base)
    for name in ("gan", "vae"):
        if labelled is False and getattr(valid.get(name), "conditional", False):
            problems.append(f"{name}.conditional=true needs labels, but prepare_images.source={images.source} has "
                            f"none (a flat folder, CelebA or one LSUN category): set {name}.conditional=false")
    return problems

"""Every section of params.yaml and the config class that validates it.

`stages/check_params.py` validates them all before any stage runs: DVC deletes a stage's
outputs before running its command, so a bad value caught only inside that stage would cost
its previous outputs; caught here, it costs nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import BaseModel

from genlab.params import CommonParams, ParamsError, read_params, validate_section

# section -> "module:ConfigClass"
SECTIONS: dict[str, str] = {
    "prepare_images": "genlab.data.images:PrepareImagesParams",
    "prepare_text": "genlab.data.text:PrepareTextParams",
    "classifier": "genlab.train.classifier:ClassifierParams",
    "char_rnn": "genlab.train.char_rnn:CharRNNParams",
    "char_rnn_numpy": "genlab.char_rnn_numpy.train:CharRNNNumpyParams",
    "gan": "genlab.train.gan:GanParams",
    "vae": "genlab.train.vae:VaeParams",
    "generate": "genlab.generate:GenerateParams",
    "evaluate": "genlab.judge:EvaluateParams",
    "render": "genlab.render.figures:RenderParams",
    "report": "genlab.render.report:ReportParams",
}


def config_class(section: str) -> type[BaseModel]:
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)


def validate_all(path: str | Path = "params.yaml") -> list[str]:
    """Every problem in `path`, one line each (empty: all sections valid)."""
    data = read_params(path)
    source = Path(path).name
    problems = []
    unknown = sorted(set(data) - set(SECTIONS) - set(CommonParams.model_fields))
    for key in unknown:
        problems.append(f"{source}: {key}: unknown section (allowed: {', '.join([*CommonParams.model_fields, *SECTIONS])})")
    checks = [("", CommonParams, {k: data[k] for k in CommonParams.model_fields if k in data})]
    checks += [(s, config_class(s), data.get(s)) for s in SECTIONS]
    for section, model, raw in checks:
        if section and section not in data:
            problems.append(f"{source}: {section}: section is missing")
            continue
        try:
            validate_section(raw, section, model, source)
        except ParamsError as exc:
            problems.extend(str(exc).splitlines())
    return problems

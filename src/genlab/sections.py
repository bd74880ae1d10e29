"""Every section of params.yaml and the config class that validates it (the table
:mod:`genlab.check_params` walks before any stage runs)."""

from __future__ import annotations

import importlib

from pydantic import BaseModel

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
    "evaluate": "genlab.evaluate.judge:EvaluateParams",
    "render": "genlab.render.figures:RenderParams",
    "interpret": "genlab.interpret.analysis:InterpretParams",
    "report": "genlab.render.report:ReportParams",
}


def config_class(section: str) -> type[BaseModel]:
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)

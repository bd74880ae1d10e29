"""MLflow pyfunc models over genlab checkpoints: servable, and nothing is unpickled on load.

Each model is logged with MLflow's "models from code": the model's code is
``genlab/serve/mlflow_model.py`` (copied into the model as plain text; it imports genlab, so
genlab must be installed where the model is loaded) and its only artifact is the
self-describing checkpoint the stage wrote, opened with ``torch.load(weights_only=True)`` by
genlab's own loaders. Loading runs no pickle at all, so it works with
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``, and a checkpoint carrying a pickled object is
refused. (Loading does run the model's code file, as for any pyfunc model; `genlab serve
--model-uri` reads only the checkpoint.) Bad input raises an ``MlflowException`` with a one-line
message, which `mlflow models serve` answers with a 400.

What ``predict`` takes and returns (one input row = one request; see the signatures below):

* **generator** (``gan``, ``vae`` checkpoints). Input columns ``seed`` (int, required),
  ``count`` (int, 1-256, default 16), ``label`` (int class, conditional models only; absent:
  balanced classes), ``seed2`` and ``steps`` (a traversal of ``steps + 2`` images from the first
  image of seed's grid to the first of seed2's, the path `render` draws), ``interpolation``
  (``linear`` | ``slerp``). Seeds are integers in [0, 2**53] (exact in JSON and JavaScript).
  MLflow cannot hold a missing value in an integer column, so the rows of one request give
  the same columns; ``label: -1`` and ``seed2: -1`` mean "not given". Output: one row per image, columns ``request`` (input row),
  ``index`` (position in the grid or along the path), ``label`` (-1 when unconditional) and
  ``image``: a base64 PNG, lossless, so it decodes to the exact uint8 (H, W[, C]) pixels.
* **classifier**: input ``image`` (base64 PNG, the classifier's size and channels); output
  ``label``, ``class_name``, ``confidence`` (max softmax).
* **char_rnn** (torch char-RNN): input ``prime`` (default: the training prime), ``length``
  (default 200, at most 10,000), ``temperature`` (default 0.8), ``seed`` (default 0); output
  ``text`` (the generated characters, without the prime).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from genlab.serve.generator import GENERATOR_KINDS, MAX_SEED, BadRequest, GeneratorService, check_int, decode_png, encode_png

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
CLASSIFIER_KINDS = ("classifier",)
TEXT_KINDS = ("char_rnn",)
MAX_TEXT_LENGTH = 10_000
# what the model's code imports; pinned to the versions installed when it is logged (pinned_requirements)
PIP_PACKAGES = ("genlab", "torch", "numpy", "pandas", "pillow")
# tag of a logged model: the sha256 of its checkpoint file, so a later stage (evaluate) finds
# the LoggedModel of the checkpoint it judged, whichever run logged it
CHECKPOINT_TAG = "genlab.checkpoint_sha256"


def pinned_requirements() -> list[str]:
    """``name==version`` of each of :data:`PIP_PACKAGES` as installed (the bare name if it is not)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in PIP_PACKAGES:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def checkpoint_kind(path: str | Path) -> str:
    """The ``kind`` a genlab checkpoint declares (read with weights_only=True)."""
    from genlab.checkpoint import load_checkpoint

    return str(load_checkpoint(path)["kind"])


def family(kind: str) -> str:
    """``generator`` | ``classifier`` | ``text`` for a checkpoint kind; ValueError otherwise."""
    if kind in GENERATOR_KINDS:
        return "generator"
    if kind in CLASSIFIER_KINDS:
        return "classifier"
    if kind in TEXT_KINDS:
        return "text"
    raise ValueError(f"no servable model for checkpoint kind {kind!r} "
                     f"(servable: {', '.join(GENERATOR_KINDS + CLASSIFIER_KINDS + TEXT_KINDS)})")


def signature(fam: str) -> Any:
    """The MLflow signature of a model family (optional columns may be left out of a request)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    def col(t: str, name: str, required: bool = True) -> ColSpec:
        return ColSpec(t, name, required=required)

    if fam == "generator":
        # MLflow holds no missing value in a long column (a row that leaves one out turns it
        # into float64 NaN, which it refuses), so -1 also means "not given" for label and seed2
        inputs = Schema([col("long", "seed"), col("long", "count", False), col("long", "label", False),
                         col("long", "seed2", False), col("long", "steps", False),
                         col("string", "interpolation", False)])
        outputs = Schema([col("long", "request"), col("long", "index"), col("long", "label"), col("string", "image")])
    elif fam == "classifier":
        inputs = Schema([col("string", "image")])
        outputs = Schema([col("long", "label"), col("string", "class_name"), col("double", "confidence")])
    elif fam == "text":
        inputs = Schema([col("string", "prime", False), col("long", "length", False),
                         col("double", "temperature", False), col("long", "seed", False)])
        outputs = Schema([col("string", "text")])
    else:
        raise ValueError(f"unknown model family {fam!r}")
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_checkpoint_model(checkpoint: str | Path, name: str, registered_model_name: str | None = None) -> Any:
    """Log `checkpoint` as a pyfunc model called `name` in the active MLflow run; returns ModelInfo
    (``model_info.model_uri`` is ``models:/<model_id>``). `registered_model_name`: also register
    it as a new version of that registered model."""
    from genlab.checkpoint import load_checkpoint
    from genlab.runtime import sha256_file

    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    kind = str(ckpt["kind"])
    fam = family(kind)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(MODEL_CODE),
        artifacts={"checkpoint": str(checkpoint)},
        signature=signature(fam),
        input_example=input_example(fam, ckpt),
        pip_requirements=pinned_requirements(),
        metadata={"genlab_kind": kind, "genlab_family": fam},
        tags={CHECKPOINT_TAG: sha256_file(checkpoint), "genlab.kind": kind},
        registered_model_name=registered_model_name,
    )


def input_example(fam: str, ckpt: dict[str, Any]) -> pd.DataFrame:
    """A small valid request (MLflow stores it as the model's serving example and checks it)."""
    if fam == "generator":
        return pd.DataFrame([{"seed": 0, "count": 4}])
    if fam == "classifier":
        cfg = ckpt["config"]
        blank = np.zeros((int(cfg["in_channels"]), int(cfg["image_size"]), int(cfg["image_size"])), np.uint8)
        return pd.DataFrame([{"image": encode_png(blank)}])
    return pd.DataFrame([{"length": 20, "temperature": 0.8, "seed": 0}])


# ----------------------------------------------------------------------------- reading rows


def _value(row: pd.Series, name: str) -> Any:
    """A cell, or None when the column is absent or the cell is missing (NaN/None)."""
    if name not in row.index:
        return None
    v = row[name]
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return v.item() if isinstance(v, np.generic) else v


def _frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict):
        return pd.DataFrame([model_input])
    if isinstance(model_input, list):
        return pd.DataFrame(model_input)
    raise BadRequest(f"expected a table (DataFrame, dict or list of dicts), got {type(model_input).__name__}")


# ----------------------------------------------------------------------------- backends


class GeneratorBackend:
    def __init__(self, service: GeneratorService):
        self.service = service

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        for i, (_, row) in enumerate(df.iterrows()):
            seed, count = _value(row, "seed"), _value(row, "count")
            count = 16 if count is None else count
            label, seed2 = _value(row, "label"), _value(row, "seed2")
            label = None if label == -1 else label  # -1: not given (see the module doc)
            seed2 = None if seed2 == -1 else seed2
            if seed2 is None:
                images, labels = self.service.sample(seed, count, label)
            else:
                steps = _value(row, "steps")
                images, labels = self.service.traverse(seed, seed2, 30 if steps is None else steps, count, label,
                                                       _value(row, "interpolation") or "linear")
            for j, image in enumerate(images):
                rows.append({"request": i, "index": j, "label": -1 if labels is None else int(labels[j]),
                             "image": encode_png(image)})
        return pd.DataFrame(rows, columns=["request", "index", "label", "image"]).astype(
            {"request": "int64", "index": "int64", "label": "int64"})


class ClassifierBackend:
    def __init__(self, path: str | Path):
        from genlab.models.classifier import load as load_classifier

        self.model = load_classifier(path, "cpu")

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        import torch

        if "image" not in df.columns:
            raise BadRequest("the classifier takes a column 'image' of base64 PNG images")
        images = [decode_png(v) for v in df["image"]]
        want = (self.model.in_channels, self.model.image_size, self.model.image_size)
        for k, im in enumerate(images):
            if im.shape != want:
                raise BadRequest(f"image {k} has shape {im.shape} (C, H, W); this classifier takes {want}")
        x = torch.from_numpy(np.stack(images)).float() / 255.0 if images else torch.zeros((0, *want))
        with torch.no_grad():
            probs = torch.softmax(self.model(x).float(), dim=1)
        conf, label = probs.max(dim=1)
        names = self.model.class_names
        return pd.DataFrame({"label": label.numpy().astype(np.int64),
                             "class_name": [names[int(j)] for j in label],
                             "confidence": conf.numpy().astype(np.float64)})


def load_char_rnn_model(path: str | Path) -> tuple[Any, list[str], str]:
    """(model, vocabulary characters, training prime) of a torch char-RNN checkpoint."""
    from genlab.models.char_rnn import load

    model = load(path, "cpu")
    return model, model.vocab_chars, model.prime


class TextBackend:
    def __init__(self, path: str | Path):
        from genlab.data.text import Vocab

        self.model, chars, self.prime = load_char_rnn_model(path)
        self.vocab = Vocab(chars)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        from genlab.sampling import check_temperature, generate_text

        texts = []
        for _, row in df.iterrows():
            prime = _value(row, "prime")
            prime = self.prime if prime is None else str(prime)
            length = check_int("length", 200 if _value(row, "length") is None else _value(row, "length"), 0, MAX_TEXT_LENGTH)
            temperature = _value(row, "temperature")
            try:
                temperature = check_temperature(0.8 if temperature is None else temperature)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            seed = check_int("seed", 0 if _value(row, "seed") is None else _value(row, "seed"), 0, MAX_SEED)
            try:
                texts.append(generate_text(self.model.step, None, self.vocab, prime, length, temperature,
                                           np.random.default_rng(seed)))
            except ValueError as exc:  # a prime character outside the vocabulary
                raise BadRequest(str(exc)) from None
        return pd.DataFrame({"text": texts})


def load_backend(path: str | Path) -> GeneratorBackend | ClassifierBackend | TextBackend:
    """The backend for a checkpoint, by the kind the file declares."""
    kind = checkpoint_kind(path)
    fam = family(kind)
    if fam == "generator":
        return GeneratorBackend(GeneratorService.from_checkpoint(path, kind))
    if fam == "classifier":
        return ClassifierBackend(path)
    return TextBackend(path)


class GenlabModel(mlflow.pyfunc.PythonModel):
    """A pyfunc over one genlab checkpoint (the artifact ``checkpoint``); see the module doc."""

    backend: Any = None

    def load_context(self, context: Any) -> None:
        self.backend = load_backend(context.artifacts["checkpoint"])

    @property
    def service(self) -> GeneratorService | None:
        """The generator behind this model (None for a classifier or char-RNN), for Python callers:
        ``mlflow.pyfunc.load_model(uri).unwrap_python_model().service.sample(seed, count)``."""
        return getattr(self.backend, "service", None)

    # the explicit signature validates input; the hint only tells MLflow predict takes a table
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self.backend.predict(_frame(model_input))
        except BadRequest as exc:
            # `mlflow models serve` answers an MlflowException with its status (400 here) and
            # message; any other exception becomes a 400 that only says "unexpected error"
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None

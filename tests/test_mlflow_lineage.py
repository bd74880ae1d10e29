"""MLflow 3 lineage in a real sqlite store: a training run's dataset inputs (digest = the
prepared data's sha256, source, split), generators as LoggedModels that carry the evaluate
metrics of their samples (so search_logged_models ranks them by FID), models:/ URIs,
registration under tracking.register_as, and pinned pip requirements."""

from __future__ import annotations

import json
from importlib.metadata import version

import mlflow
import numpy as np
import pytest
import torch

from genlab.cli.serve import load_uri
from genlab.models import gan
from genlab.params import CommonParams
from genlab.runtime import sha256_file
from genlab.tracking import log_stage


def _generator(path, width: int):
    torch.manual_seed(width)
    gan.save(path, gan.build(gan.Config(z_dim=8, g_width=width, d_width=8)))
    return path


def _data_dir(tmp_path):
    data = tmp_path / "data" / "images"
    data.mkdir(parents=True)
    (data / "meta.json").write_text(json.dumps({"source": "synthetic-digits", "sha256": {"train_x.npy": "ab"}}))
    return data


def test_runs_log_their_dataset_and_generators_rank_by_fid(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("lineage", artifact_location=(tmp_path / "artifacts").as_uri())
    common = CommonParams.model_validate({"tracking": {"experiment": "lineage", "register_as": "lab"}})
    data = _data_dir(tmp_path)
    images = np.zeros((12, 1, 28, 28), np.uint8)
    labels = np.arange(12) % 10
    ckpts = {w: _generator(tmp_path / f"g{w}" / "checkpoint.pt", w) for w in (8, 16)}
    for w, ckpt in ckpts.items():
        log_stage("train_gan", common, {"g_width": w}, models={"generator": ckpt},
                  datasets={"train": (images, labels), "test": images[:4]}, data_dir=data)

    # each training run: its data set as inputs, by split, with the prepared data's digest
    runs = client.search_runs([exp_id], "tags.`genlab.stage` = 'train_gan'")
    assert len(runs) == 2
    for run in runs:
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "test"}
        assert inputs["train"].name == "synthetic-digits/train" and inputs["test"].name == "synthetic-digits/test"
        assert inputs["train"].digest == inputs["test"].digest == sha256_file(data / "meta.json")[:32]
        assert str(data.resolve()) in inputs["train"].source
        assert json.loads(inputs["train"].profile)["features_shape"] == [12, 1, 28, 28]
        # the model's URI is models:/<model_id>, and it loads from there
        assert run.data.tags["genlab.model.generator"].startswith("models:/m-")

    # evaluate logs its judgement of each checkpoint's samples to that checkpoint's LoggedModel
    log_stage("evaluate", common, {}, model_metrics={ckpts[8]: {"fid": 40.0, "kid_mean": 3.0},
                                                     ckpts[16]: {"fid": 12.5, "kid_mean": 1.0, "none": None}})
    ranked = mlflow.search_logged_models(experiment_ids=[exp_id], order_by=[{"field_name": "metrics.fid"}],
                                         output_format="list")
    assert [m.tags["genlab.checkpoint_sha256"] for m in ranked] == [sha256_file(ckpts[16]), sha256_file(ckpts[8])]
    assert [{m.key: m.value for m in model.metrics}["fid"] for model in ranked] == [12.5, 40.0]
    best = mlflow.pyfunc.load_model(f"models:/{ranked[0].model_id}")
    assert len(best.predict({"seed": 0, "count": 2})) == 2
    service = load_uri(f"models:/{ranked[0].model_id}")  # what genlab serve --model-uri does
    assert service.name == "gan" and service.source == f"models:/{ranked[0].model_id}"

    # register_as: each logged generator is a version of lab-generator
    assert {str(v.version) for v in client.search_model_versions("name = 'lab-generator'")} == {"1", "2"}
    # pinned pip requirements
    reqs = mlflow.pyfunc.get_model_dependencies(f"models:/{ranked[0].model_id}")
    pinned = open(reqs).read().splitlines()
    assert f"torch=={version('torch')}" in pinned and f"numpy=={version('numpy')}" in pinned


@pytest.mark.parametrize("register_as", [""])
def test_register_as_must_be_a_name(register_as):
    from genlab.params import ParamsError, validate_section
    from genlab.params import TrackingParams

    with pytest.raises(ParamsError, match="tracking.register_as"):
        validate_section({"register_as": register_as}, "tracking", TrackingParams)

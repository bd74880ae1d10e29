"""A genlab generator as an MLflow model: logged by the tracking code into a real MLflow store,
loaded from a fresh process with pickle forbidden, served by a real `mlflow models serve`,
and a tampered checkpoint refused."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from serve_helpers import free_port, http_json, make_checkpoints, output, start_mlflow_serve, stop, tampered_checkpoint, wait_http

from genlab.serve.generator import GeneratorService, decode_png

pytestmark = pytest.mark.slow
NO_PICKLE = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny GAN checkpoint logged by `log_stage` as train_gan does, in a temp sqlite store
    with its artifacts in the temp folder; `mlflow models serve` on it starts right away so that
    its start-up (~15 s on 2 cores) overlaps the other tests of this module."""
    from mlflow.tracking import MlflowClient

    from genlab.params import CommonParams
    from genlab.tracking import log_stage

    tmp = tmp_path_factory.mktemp("serve-mlflow")
    ckpt = make_checkpoints(tmp / "models")["gan"]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("serve-test", artifact_location=(tmp / "artifacts").as_uri())
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(handler)
    common = CommonParams.model_validate({"tracking": {"experiment": "serve-test", "log_models": True}})
    try:
        with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            log_stage("train_gan", common, {"k": 1}, models={"generator": ckpt})
    finally:
        mlflow_logger.removeHandler(handler)
    [run] = [r for r in client.search_runs([client.get_experiment_by_name("serve-test").experiment_id])
             if r.info.run_name == "train_gan"]
    model_uri = f"runs:/{run.info.run_id}/generator"
    env = {"MLFLOW_TRACKING_URI": uri, **NO_PICKLE}
    port = free_port()
    server = start_mlflow_serve(model_uri, port, tmp / "mlflow-serve.log", env)
    try:
        yield SimpleNamespace(tmp=tmp, ckpt=ckpt, uri=uri, model_uri=model_uri, env=env, server=server,
                              url=f"http://127.0.0.1:{port}", client=client, run=run,
                              messages=[r.getMessage() for r in records] + [str(w.message) for w in caught])
    finally:
        stop(server)


def model_dir(logged) -> Path:
    """The logged model's folder in the local artifact store."""
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(logged.model_uri, tracking_uri=logged.uri))


def pixels(images_b64) -> np.ndarray:
    return np.stack([decode_png(b) for b in images_b64])


def test_logged_generator_is_a_pyfunc_model_with_no_pickle(logged):
    # the warning MLflow prints when a model is pickled (mlflow.pytorch: "Saving pytorch model by
    # Pickle or CloudPickle format ... can execute arbitrary code") is gone from the stage's log
    assert logged.messages, "no MLflow log line was captured at all: the capture is broken"
    assert not [m for m in logged.messages if "pickle" in m.lower()], logged.messages
    root = model_dir(logged)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert list(mlmodel["flavors"]) == ["python_function"]
    # models from code: the loader runs genlab's code file, no cloudpickled python_model
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in pyfunc
    assert (root / Path(pyfunc["model_code_path"]).name).is_file()
    assert not list(root.rglob("*.pkl")) and not list(root.rglob("*.pickle"))
    assert (root / pyfunc["artifacts"]["checkpoint"]["path"]).read_bytes() == logged.ckpt.read_bytes()
    assert mlmodel["metadata"] == {"genlab_kind": "gan", "genlab_family": "generator"}
    inputs = {c["name"]: (c["type"], c["required"]) for c in json.loads(mlmodel["signature"]["inputs"])}
    assert inputs["seed"] == ("long", True) and inputs["count"] == ("long", False)
    assert {c["name"] for c in json.loads(mlmodel["signature"]["outputs"])} == {"request", "index", "label", "image"}


FRESH = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
# the rows of one request give the same columns: seed2 -1 means "no traversal" (see genlab.serve.pyfunc)
out = model.predict(pd.DataFrame([{"seed": 5, "count": 3, "seed2": -1, "steps": 0}, {"seed": 5, "count": 3, "seed2": 6, "steps": 2}]))
print(json.dumps(out.to_dict(orient="list")))
"""


def test_pyfunc_model_predicts_from_a_fresh_process_without_pickle(logged):
    proc = subprocess.run([sys.executable, "-c", FRESH, logged.model_uri], capture_output=True, text=True,
                          env={**os.environ, **logged.env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["request"] == [0, 0, 0, 1, 1, 1, 1] and out["index"] == [0, 1, 2, 0, 1, 2, 3]
    images = pixels(out["image"])
    service = GeneratorService.from_checkpoint(logged.ckpt)
    grid5, _ = service.sample(5, 3)
    grid6, _ = service.sample(6, 3)
    assert images.dtype == np.uint8 and images.shape == (7, *service.image_shape)
    # exactly the pixels of the checkpoint loaded here, i.e. of `genlab sample --seed 5 --n 3`
    assert np.array_equal(images[:3], grid5)
    # the traversal runs from the first image of seed 5's 3-image grid to that of seed 6 (a grid's
    # first latent depends on its size: torch draws small and large normal tensors differently)
    assert np.array_equal(images[3], grid5[0]) and np.array_equal(images[6], grid6[0])
    assert not np.array_equal(images[4], images[3]) and not np.array_equal(images[4], images[6])


def test_tampered_checkpoint_is_refused_without_running_its_code(logged, tmp_path):
    import mlflow.pyfunc
    import torch
    from mlflow.exceptions import MlflowException

    from genlab.checkpoint import CheckpointError
    from genlab.serve.pyfunc import load_backend

    marker = tmp_path / "code-ran"
    bad = tampered_checkpoint(logged.ckpt, tmp_path / "bad.pt", marker)
    # the payload is live: plain pickle loading runs it
    torch.load(bad, weights_only=False)
    assert marker.is_dir()
    marker.rmdir()
    with pytest.raises(CheckpointError, match="corrupted or not a genlab checkpoint"):
        load_backend(bad)
    assert not marker.exists()
    # the same file swapped into a logged MLflow model: loading the model fails, nothing runs
    copy = shutil.copytree(model_dir(logged), tmp_path / "model")
    shutil.copy(bad, copy / "artifacts" / "checkpoint.pt")
    with pytest.raises((CheckpointError, MlflowException), match="corrupted or not a genlab checkpoint"):
        mlflow.pyfunc.load_model(str(copy))
    assert not marker.exists()


def test_genlab_serve_model_uri_reads_the_checkpoint_and_runs_no_model_code(logged, tmp_path, monkeypatch):
    from genlab.cli.serve import load_services

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged.uri)

    # a copy of the logged model whose code file was swapped for code that leaves a mark
    marker = tmp_path / "code-ran"
    copy = shutil.copytree(model_dir(logged), tmp_path / "model")
    (copy / "mlflow_model.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    # what `genlab serve --model-uri <uri>` loads (the server itself: tests/test_serve_web.py)
    services, source = load_services(tmp_path / "no-models", [logged.model_uri, str(copy)])
    assert list(services) == ["generator", "model"] and source == f"{logged.model_uri}, {copy}"
    want = GeneratorService.from_checkpoint(logged.ckpt).sample(7, 4)[0]
    for service in services.values():
        assert np.array_equal(service.sample(7, 4)[0], want)
    assert not marker.exists()
    with pytest.raises(RuntimeError, match="cannot load MLflow model runs:/0123/generator"):
        load_services(tmp_path / "no-models", ["runs:/0123/generator"])


def test_bad_request_in_process_is_a_one_line_mlflow_error(logged):
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(str(model_dir(logged)))
    with pytest.raises(MlflowException, match=r"^count must be between 1 and 256, got 1000$"):
        model.predict(pd.DataFrame([{"seed": 1, "count": 1000}]))


def test_mlflow_models_serve_answers_invocations(logged):
    wait_http(f"{logged.url}/ping", logged.server, timeout=90)

    def invoke(*records):
        return http_json(f"{logged.url}/invocations", {"dataframe_records": list(records)})

    status, body = invoke({"seed": 7, "count": 4})
    assert status == 200, body
    rows = body["predictions"]
    first = pixels([r["image"] for r in rows])
    assert [r["index"] for r in rows] == [0, 1, 2, 3] and first.shape == (4, 1, 28, 28) and first.dtype == np.uint8
    again = pixels([r["image"] for r in invoke({"seed": 7, "count": 4})[1]["predictions"]])
    other = pixels([r["image"] for r in invoke({"seed": 8, "count": 4})[1]["predictions"]])
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.array_equal(first, GeneratorService.from_checkpoint(logged.ckpt).sample(7, 4)[0])
    # bad input: a 400 whose message says what is wrong, and the server stays up
    status, body = invoke({"seed": 7, "count": 1000})
    assert status == 400 and "count must be between 1 and 256, got 1000" in body["message"], body
    status, body = invoke({"seed": "abc"})
    assert status == 400 and "seed" in body["message"], body
    status, body = invoke({"seed": 1, "label": 3})
    assert status == 400 and "unconditional" in body["message"], body
    assert http_json(f"{logged.url}/ping")[0] == 200
    assert logged.server.poll() is None, output(logged.server)

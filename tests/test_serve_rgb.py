"""`genlab serve` and the MLflow pyfunc model over a 64 px RGB generator (gan.arch dcgan64,
3 channels, unconditional): the API returns RGB 64 x 64 PNGs that differ by seed, and a real
headless Chromium shows them at their own size with no class picker."""

from __future__ import annotations

import base64
import io
import warnings
from types import SimpleNamespace
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image
from serve_helpers import free_port, http_json, output, start_genlab_serve, stop
from test_serve_web import CHROMIUM, CHROMIUM_ARGS

from genlab.serve.generator import GeneratorService, decode_png

pytestmark = pytest.mark.slow


def make_rgb_checkpoint(path):
    """A tiny untrained dcgan64 G and D for 64 px RGB images, saved as train_gan saves them."""
    import torch

    from genlab.models import gan

    torch.manual_seed(0)
    g, d = gan.build(gan.Config(arch="dcgan64", channels=3, image_size=64, z_dim=8, ngf=8, ndf=8))
    with torch.no_grad():  # an untrained G in eval mode draws near-uniform grey; steeper layers draw colours
        for m in g.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.mul_(10)
    gan.save(path, (g, d))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-rgb")
    ckpt = make_rgb_checkpoint(tmp / "models" / "gan" / "checkpoint.pt")
    port = free_port()
    proc = start_genlab_serve(tmp / "models", port, tmp / "serve.log")
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", proc=proc, ckpt=ckpt,
                              gan=GeneratorService.from_checkpoint(ckpt))
    finally:
        stop(proc)


def sample(server, **params) -> list[str]:
    status, body = http_json(f"{server.url}/api/sample?{urlencode({'model': 'gan', **params})}")
    assert status == 200, body
    return body["images"]


def png_mode_and_size(b64: str) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return img.mode, img.size


def test_api_returns_rgb_64px_pngs_that_differ_by_seed(server):
    status, body = http_json(f"{server.url}/api/models")
    assert status == 200
    [info] = body["models"]
    assert info["image_shape"] == [3, 64, 64] and info["conditional"] is False
    a, b = sample(server, seed=1, count=4), sample(server, seed=2, count=4)
    assert {png_mode_and_size(x) for x in a + b} == {("RGB", (64, 64))}
    pa, pb = np.stack([decode_png(x) for x in a]), np.stack([decode_png(x) for x in b])
    assert pa.shape == (4, 3, 64, 64) and not np.array_equal(pa, pb)
    assert not np.array_equal(pa[:, 0], pa[:, 1])  # colour, not grey written three times
    assert np.array_equal(pa, server.gan.sample(1, 4)[0])  # the checkpoint's own pixels
    status, body = http_json(f"{server.url}/api/traverse?{urlencode({'model': 'gan', 'seed': 1, 'seed2': 2, 'steps': 3})}")
    assert status == 200 and {png_mode_and_size(f) for f in body["frames"]} == {("RGB", (64, 64))}


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
def test_page_shows_rgb_images_at_their_size_without_a_class_picker(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(server.url + "/")
            grid = page.locator("#grid img")
            expect(grid).to_have_count(64)  # seed 0 on load
            expect(page.locator("#model option")).to_have_text(["gan (gan, 3\u00d764\u00d764)"])
            expect(page.locator("#label-box")).to_be_hidden()  # unconditional: no class picker
            srcs = grid.evaluate_all("imgs => imgs.map(i => i.src.replace('data:image/png;base64,', ''))")
            assert srcs == sample(server, seed=0, count=64)
            expect(grid.first).to_have_js_property("complete", True)
            # decoded as 64 x 64 by the browser and laid out at that size (not squeezed into 56 px)
            sizes = grid.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight, "
                                      "i.getBoundingClientRect().width, i.getBoundingClientRect().height])")
            assert {tuple(s) for s in sizes} == {(64, 64, 64, 64)}, sizes[:3]
            frame = page.locator("#frame")
            expect(frame).to_have_js_property("naturalWidth", 64)
            assert frame.evaluate("f => f.clientWidth") == 256  # 4x, whole pixels (inside its border)
            # the browser paints the sample's own colour pixels, 1:1
            shot = np.asarray(Image.open(io.BytesIO(grid.first.screenshot())).convert("RGB")).astype(int)
            want = decode_png(srcs[0]).transpose(1, 2, 0).astype(int)  # (3, 64, 64) -> (64, 64, 3)
            assert shot.shape == want.shape == (64, 64, 3) and np.abs(shot - want).mean() < 2
            assert np.abs(want[..., 0] - want[..., 1]).mean() > 10  # and they are colours, not greys
            page.fill("#seed", "5")
            page.click("#draw")
            expect(page.locator("#status")).to_contain_text("seed 5 ")
            after = grid.evaluate_all("imgs => imgs.map(i => i.src.replace('data:image/png;base64,', ''))")
            assert after == sample(server, seed=5, count=64) and after != srcs
            page.screenshot(path=str(tmp_path / "serve-rgb.png"), full_page=True)
        finally:
            browser.close()
    assert server.proc.poll() is None, output(server.proc)


def test_mlflow_pyfunc_answers_rgb(tmp_path, monkeypatch):
    """The same checkpoint logged as train_gan logs it, loaded back as a pyfunc model: RGB rows."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from genlab.params import CommonParams
    from genlab.tracking import log_stage

    ckpt = make_rgb_checkpoint(tmp_path / "models" / "gan" / "checkpoint.pt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("serve-rgb", artifact_location=(tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    common = CommonParams.model_validate({"tracking": {"experiment": "serve-rgb", "log_models": True}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log_stage("train_gan", common, {"k": 1}, models={"generator": ckpt})
    [run] = [r for r in client.search_runs([exp]) if r.info.run_name == "train_gan"]
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/generator")
    out = model.predict(pd.DataFrame([{"seed": 3, "count": 2}]))
    assert {png_mode_and_size(x) for x in out["image"]} == {("RGB", (64, 64))}
    pixels = np.stack([decode_png(x) for x in out["image"]])
    assert np.array_equal(pixels, GeneratorService.from_checkpoint(ckpt).sample(3, 2)[0])

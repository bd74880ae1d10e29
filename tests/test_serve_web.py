"""`genlab serve`: the real server on 127.0.0.1 over tiny real checkpoints, its JSON API, and its
page driven by a real headless Chromium (Debian's /usr/bin/chromium through Playwright)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import numpy as np
import pytest
from serve_helpers import free_port, http_json, make_checkpoints, output, start_genlab_serve, stop

from genlab.serve.generator import GeneratorService, decode_png

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (.ci/run installs it); Playwright's own download is never used
# no GPU, no background or component-update traffic: the page must work with nothing but the server
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`genlab serve` over a tiny unconditional GAN and a class-conditional VAE."""
    tmp = tmp_path_factory.mktemp("serve-web")
    ckpts = make_checkpoints(tmp / "models")
    port = free_port()
    proc = start_genlab_serve(tmp / "models", port, tmp / "serve.log")
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", proc=proc, tmp=tmp,
                              gan=GeneratorService.from_checkpoint(ckpts["gan"]),
                              vae=GeneratorService.from_checkpoint(ckpts["vae"]))
    finally:
        stop(proc)


def api(server, path: str, **params):
    return http_json(f"{server.url}{path}?{urlencode(params)}")


def pixels(images_b64) -> np.ndarray:
    return np.stack([decode_png(b) for b in images_b64])


def test_models_lists_both_generators(server):
    status, body = http_json(f"{server.url}/api/models")
    assert status == 200
    info = {m["name"]: m for m in body["models"]}
    assert set(info) == {"gan", "vae"}
    assert info["gan"]["conditional"] is False and info["vae"]["conditional"] is True
    assert info["vae"]["classes"] == [str(i) for i in range(10)]
    assert info["gan"]["image_shape"] == [1, 28, 28]


def test_sample_is_a_pure_function_of_the_seed(server):
    status, body = api(server, "/api/sample", model="gan", seed=3, count=8)
    assert status == 200, body
    first = pixels(body["images"])
    again = pixels(api(server, "/api/sample", model="gan", seed=3, count=8)[1]["images"])
    other = pixels(api(server, "/api/sample", model="gan", seed=4, count=8)[1]["images"])
    assert first.shape == (8, 1, 28, 28) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    # the same pixels as the checkpoint decoded in this process (the `genlab sample` draw)
    assert np.array_equal(first, server.gan.sample(3, 8)[0])


def test_class_picker_and_traversal(server):
    status, body = api(server, "/api/sample", model="vae", seed=1, count=4, label=7)
    assert status == 200 and body["labels"] == [7, 7, 7, 7]
    assert np.array_equal(pixels(body["images"]), server.vae.sample(1, 4, 7)[0])
    status, body = api(server, "/api/traverse", model="vae", seed=1, seed2=2, steps=5, count=16)
    assert status == 200, body
    frames = pixels(body["frames"])
    # steps + 2 frames from the first image of seed 1's 16-grid to the first of seed 2's
    assert frames.shape == (7, 1, 28, 28)
    assert np.array_equal(frames[0], server.vae.sample(1, 16)[0][0])
    assert np.array_equal(frames[-1], server.vae.sample(2, 16)[0][0])
    assert len({f.tobytes() for f in frames}) > 2


@pytest.mark.parametrize("path, params, status, message", [
    ("/api/sample", {"seed": "abc"}, 422, "seed: Input should be a valid integer"),
    ("/api/sample", {"seed": "1.5"}, 422, "seed: Input should be a valid integer"),
    ("/api/sample", {}, 422, "seed: Field required"),
    ("/api/sample", {"seed": -1}, 400, "seed must be between 0 and"),
    ("/api/sample", {"seed": 1, "count": 100000}, 400, "count must be between 1 and 256, got 100000"),
    ("/api/sample", {"seed": 1, "model": "gan", "label": 3}, 400, "model 'gan' is unconditional"),
    ("/api/sample", {"seed": 1, "model": "vae", "label": 12}, 400, "unknown class '12': model 'vae' has classes 0-9"),
    ("/api/sample", {"seed": 1, "model": "vae", "label": "cat"}, 400, "unknown class 'cat'"),
    ("/api/sample", {"seed": 1, "model": "nope"}, 404, "unknown model 'nope'; serving gan, vae"),
    ("/api/traverse", {"seed": 1, "seed2": 2, "steps": 100000}, 400, "steps must be between 0 and 500"),
    ("/api/traverse", {"seed": 1, "seed2": 2, "interpolation": "cubic"}, 400, "interpolation must be one of linear, slerp"),
])
def test_bad_input_is_a_4xx_with_a_one_line_message(server, path, params, status, message):
    got, body = api(server, path, **params)
    assert got == status, body
    assert message in body["error"] and "\n" not in body["error"], body
    assert http_json(f"{server.url}/healthz")[0] == 200 and server.proc.poll() is None


def test_serve_without_a_trained_model_says_how_to_get_one(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "serve", "--models", str(tmp_path / "models")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"genlab serve: error: no trained generator in {tmp_path / 'models'}/ (looked for {tmp_path / 'models'}/gan/checkpoint.pt "
        f"and {tmp_path / 'models'}/vae/checkpoint.pt): train one with `dvc repro train_gan` or pass --model-uri"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
def test_page_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 720})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url + "/")
            grid = page.locator("#grid img")
            expect(grid).to_have_count(64)  # the page draws seed 0 on load
            before = grid.evaluate_all("imgs => imgs.map(i => i.src)")
            assert before[0].removeprefix("data:image/png;base64,") == api(server, "/api/sample", model="gan", seed=0, count=64)[1]["images"][0]

            # "New samples" draws fresh seeds: other images, shown with the seed that made them
            page.click("#sample")
            expect(page.locator("#status")).not_to_contain_text("seed 0 ")
            expect(grid).to_have_count(64)
            after = grid.evaluate_all("imgs => imgs.map(i => i.src)")
            assert after != before
            seed = page.input_value("#seed")
            assert after[0].removeprefix("data:image/png;base64,") == api(server, "/api/sample", model="gan", seed=seed, count=64)[1]["images"][0]

            # the slider walks from seed's first image to seed2's: its end is seed2's first image
            slider, frame = page.locator("#slider"), page.locator("#frame")
            seed2 = page.input_value("#seed2")
            walk = api(server, "/api/traverse", model="gan", seed=seed, seed2=seed2, steps=30, count=64)[1]["frames"]
            expect(frame).to_have_attribute("src", "data:image/png;base64," + walk[0])  # this walk has arrived
            expect(slider).to_have_attribute("max", "31")
            slider.fill("31")
            expect(frame).to_have_attribute("src", "data:image/png;base64," + walk[-1])
            assert walk[-1] != walk[0]
            slider.fill("15")
            expect(page.locator("#pos")).to_contain_text("step 15 of 31")

            # a conditional model shows the class picker; picking a class draws only that class
            page.select_option("#model", "vae")
            expect(page.locator("#label-box")).to_be_visible()
            page.select_option("#label", "3")
            expect(grid.first).to_have_attribute("alt", "sample 0 (class 3)")
            expect(grid.nth(63)).to_have_attribute("alt", "sample 63 (class 3)")

            # bad input is shown as the server's message, not a crash
            page.fill("#seed", "-5")
            page.click("#draw")
            expect(page.locator("#error")).to_contain_text("seed must be between 0 and")
            page.fill("#seed", "4")
            page.click("#draw")
            expect(page.locator("#error")).to_be_hidden()
            page.screenshot(path=str(tmp_path / "genlab-serve.png"), full_page=True)
            if os.environ.get("GENLAB_SCREENSHOT"):  # how the README's screenshot is made
                shutil.copy(tmp_path / "genlab-serve.png", os.environ["GENLAB_SCREENSHOT"])
        finally:
            browser.close()
    assert (tmp_path / "genlab-serve.png").stat().st_size > 10_000
    # same origin only: nothing but the server and inline data: images
    assert requests and all(u.startswith(server.url + "/") or u.startswith("data:") for u in requests), requests
    assert server.proc.poll() is None, output(server.proc)

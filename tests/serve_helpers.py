"""Tiny checkpoints in genlab's real format for the serving tests, and a server launcher.

The models are built by each model module's `build` and written by its `save` (the same
calls the training stages end with), untrained: serving cares about the file format, shapes
and seeds, not about image quality. Building all four takes well under a second.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHARS = list(" .,TEacdehilmnorstuw")  # the char-RNN's vocabulary (sorted ids, as Vocab sorts them)


def make_checkpoints(models_dir: Path) -> dict[str, Path]:
    """models_dir/{gan,vae,classifier,char_rnn}/checkpoint.pt; the VAE is class-conditional."""
    import torch

    from genlab.models import char_rnn, classifier, gan, vae

    torch.manual_seed(0)
    paths = {name: models_dir / name / "checkpoint.pt" for name in ("gan", "vae", "classifier", "char_rnn")}
    gan.save(paths["gan"], gan.build(gan.Config(z_dim=8, g_width=8, d_width=8)))
    vae.save(paths["vae"], vae.build(vae.Config(arch="mlp", z_dim=2, hidden=16, num_classes=10)))
    classifier.save(paths["classifier"], classifier.build(classifier.Config(channels=[4, 8], hidden=16)))
    chars = sorted(set(CHARS))
    rnn = char_rnn.build(char_rnn.Config(vocab_size=len(chars), layers=1, hidden=16, embed_dim=8))
    char_rnn.save(paths["char_rnn"], rnn, vocab={"chars": chars}, prime="The ")
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server with its output in `log` (a pipe nobody reads would fill and stall it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def output(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail with the server's output if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{output(proc)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise AssertionError(f"server did not answer {url} within {timeout} s:\n{output(proc)}")


def start_genlab_serve(models_dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """`genlab serve` on 127.0.0.1:`port` as a subprocess of this interpreter, once it answers."""
    proc = _launch([sys.executable, "-m", "genlab.cli", "serve", "--models", str(models_dir), "--port", str(port), *extra],
                   {"GENLAB_PROGRESS": "0"}, log)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def serve_answers(models_dir: Path, image_shape: tuple[int, int, int], log: Path,
                  differ: frozenset[str] | None = None) -> dict[str, Any]:
    """Start `genlab serve` over a pipeline's models/ (as a user would after `dvc repro`), ask
    it for two seeds' samples, check their PNGs have `image_shape` and differ by seed, stop it.
    `differ` names the models whose samples must differ by seed (default: all; a GAN trained for
    a few steps may have collapsed to one image). Returns /api/models' answer."""
    import base64
    import io

    from PIL import Image

    port = free_port()
    proc = start_genlab_serve(models_dir, port, log)
    try:
        status, body = http_json(f"http://127.0.0.1:{port}/api/models")
        assert status == 200 and body["models"], body
        c, h, w = image_shape
        for m in body["models"]:
            assert m["image_shape"] == [c, h, w], m
            images = []
            for seed in (1, 2):
                status, got = http_json(f"http://127.0.0.1:{port}/api/sample?model={m['name']}&seed={seed}&count=4")
                assert status == 200, got
                images.append(got["images"])
            for b64 in images[0] + images[1]:
                with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
                    assert img.size == (w, h) and img.mode == ("RGB" if c == 3 else "L"), (img.size, img.mode)
            if differ is None or m["name"] in differ:
                assert images[0] != images[1], m["name"]
        return body
    finally:
        stop(proc)


def start_mlflow_serve(model_uri: str, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`mlflow models serve --env-manager local` on 127.0.0.1:`port`; returns at once (then wait_http /ping)."""
    exe = Path(sys.executable).with_name("mlflow")
    # uvicorn is started by name, so the venv's bin goes first on PATH
    return _launch([str(exe), "models", "serve", "-m", model_uri, "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(port)],
                   {"PATH": f"{exe.parent}:{os.environ['PATH']}", **env}, log)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server started here (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_json(url: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON) of a GET, or of a JSON POST when `body` is given; 4xx/5xx do not raise."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, _json_or_text(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json_or_text(exc.read())


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


class _RunsCodeOnLoad:
    """Unpickling this calls os.mkdir(marker): a stand-in for any code a crafted pickle runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def tampered_checkpoint(good: Path, out: Path, marker: Path) -> Path:
    """`good`'s checkpoint with a pickle payload added: loading it with pickle creates `marker`."""
    import torch

    ckpt = torch.load(good, weights_only=True)
    ckpt["payload"] = _RunsCodeOnLoad(marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return out

"""`genlab serve`: a web page and JSON API over the trained generators.

    genlab serve                                   # models/gan and models/vae, http://127.0.0.1:8000
    genlab serve --model-uri models:/<model id> --model-uri models:/genlab-vae/1
    genlab serve --model-uri runs:/<run id>/generator     # runs logged before MLflow 3's LoggedModels

Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from genlab.errors import first_line

HELP = "serve a web page and JSON API to sample the trained generators: genlab serve --port 8000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="models", help="folder holding gan/checkpoint.pt and vae/checkpoint.pt (default models)")
    p.add_argument("--model-uri", action="append", default=[], metavar="URI",
                   help="serve an MLflow model logged by genlab instead (models:/<model id>, models:/<name>/<version>, or runs:/<run id>/generator); repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])


def load_services(models_dir: str | Path, model_uris: list[str], device: str = "cpu") -> tuple[dict, str]:
    """(name -> GeneratorService, a description of the source); a clear error when there is none."""
    from genlab.runtime import resolve_device
    from genlab.serve.generator import find_generators

    dev = resolve_device(device)
    if model_uris:
        services = {}
        for uri in model_uris:
            svc = load_uri(uri, dev)
            svc.name = _unique(svc.name, services)
            services[svc.name] = svc
        return services, ", ".join(model_uris)
    services = find_generators(models_dir, dev)
    if not services:
        raise FileNotFoundError(
            f"no trained generator in {models_dir}/ (looked for {models_dir}/gan/checkpoint.pt and "
            f"{models_dir}/vae/checkpoint.pt): train one with `dvc repro train_gan` or pass --model-uri")
    return services, f"{models_dir}/"


def load_uri(uri: str, device: object = "cpu"):
    """The generator behind a genlab MLflow model URI, loaded from its checkpoint alone.

    Only data is read: the MLmodel file and the checkpoint artifact (``weights_only=True``).
    The model's code file is not run, so a model from elsewhere cannot run code here.
    """
    import mlflow.artifacts
    from mlflow.models import Model

    from genlab.serve.generator import GeneratorService
    from genlab.tracking import tracking_uri

    try:
        local = Path(mlflow.artifacts.download_artifacts(uri, tracking_uri=tracking_uri()))
        meta = Model.load(str(local / "MLmodel"))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a bad URI
        raise RuntimeError(f"cannot load MLflow model {uri}: {first_line(exc, typed=True)}") from None
    checkpoint = (((meta.flavors.get("python_function") or {}).get("artifacts") or {}).get("checkpoint") or {}).get("path")
    if (meta.metadata or {}).get("genlab_family") != "generator" or not checkpoint:
        raise ValueError(f"{uri} is not a genlab generator model (a GAN or VAE logged by train_gan/train_vae)")
    service = GeneratorService.from_checkpoint(local / checkpoint, device=device)
    service.source = uri
    service.name = _name_from_uri(uri) or service.name
    return service


def _name_from_uri(uri: str) -> str:
    parts = [p for p in uri.split(":", 1)[-1].split("/") if p]
    if uri.startswith("models:/") and len(parts) == 1 and parts[0].startswith("m-"):
        return ""  # models:/<model id>: the checkpoint's own name (gan, vae) says more than an id
    if uri.startswith("models:/") and len(parts) >= 2 and (parts[-1].isdigit() or parts[-1].startswith("@")):
        return parts[-2]
    return parts[-1] if parts else ""


def _unique(name: str, taken: dict) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (as uvicorn binds it), or an OSError naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    # decoding is one short batch per request: a progress bar each time would flood the terminal
    os.environ.setdefault("GENLAB_PROGRESS", "0")

    from genlab.serve.app import create_app

    services, source = load_services(args.models, args.model_uri, args.device)
    app = create_app(services, source)
    sock = listening_socket(args.host, args.port)  # before "serving ...": a busy port is one error line
    names = ", ".join(f"{n} ({s.kind})" for n, s in services.items())
    print(f"genlab serve: http://{args.host}:{args.port}/ serving {names} from {source}; Ctrl-C stops",
          file=sys.stderr, flush=True)
    # uvicorn handles Ctrl-C itself: it stops accepting, finishes open requests and returns
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    with sock:
        server.run(sockets=[sock])
    print("genlab serve: stopped", file=sys.stderr, flush=True)
    return 0

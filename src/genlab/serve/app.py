"""The `genlab serve` web app: one page and a small JSON API over trained generators.

Routes (all same-origin; the page loads nothing from the network):

* ``GET /`` the page: a sample grid, a seed field, a class picker for conditional models and
  a slider along the traversal between two seeds.
* ``GET /api/models`` the served generators: kind, image shape, classes, limits.
* ``GET /api/sample?model=gan&seed=0&count=64[&label=3]`` ``{"images": [base64 PNG, ...],
  "labels": [...], ...}``: exactly the images of `genlab sample --seed 0 --n 64`.
* ``GET /api/traverse?model=gan&seed=0&seed2=1&steps=30&count=64[&label=3]``
  ``{"frames": [...]}``: ``steps + 2`` images from the first image of seed's grid to seed2's.
* ``GET /healthz`` ``{"status": "ok"}``.

Bad input is a 4xx with ``{"error": "<one line>"}``: 422 for a value of the wrong type
(``seed=abc``), 400 for a value out of range (``count=100000``, an unknown class), 404 for an
unknown model. An unexpected failure is a 500 with a message; the server keeps running.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.serve.generator import BadRequest, GeneratorService, encode_png
from genlab.serve.page import PAGE


def create_app(services: dict[str, GeneratorService], source: str = "") -> FastAPI:
    """The app serving `services` (name -> generator); `source` says where they came from."""
    app = FastAPI(title="genlab serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer is a nested list; one line naming the parameter reads better
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}, got {err.get('input')!r}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # an unknown route (404) or method (405, with its Allow header): the same shape as every error
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    def service(name: str | None) -> GeneratorService:
        if not services:
            raise _NoModel()
        if name is None or name == "":
            return next(iter(services.values()))
        if name not in services:
            raise _UnknownModel(f"unknown model {name!r}; serving {', '.join(services)}")
        return services[name]

    @app.exception_handler(_UnknownModel)
    async def _unknown(request: Request, exc: _UnknownModel) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(_NoModel)
    async def _none(request: Request, exc: _NoModel) -> JSONResponse:
        return JSONResponse({"error": NO_MODEL}, status_code=503)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(services)}

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"models": [s.info() for s in services.values()], "source": source,
                "error": None if services else NO_MODEL}

    # plain `def` endpoints run in FastAPI's thread pool: a decode never blocks the event loop
    @app.get("/api/sample")
    def sample(seed: int, count: int = 16, model: str | None = None, label: str | None = None) -> dict[str, Any]:
        svc = service(model)
        images, labels = svc.sample(seed, count, label)
        return {"model": svc.name, "seed": seed, "count": count, "shape": list(images.shape[1:]),
                "labels": None if labels is None else labels.tolist(),
                "images": [encode_png(im) for im in images]}

    @app.get("/api/traverse")
    def traverse(seed: int, seed2: int, steps: int = 30, count: int = 1, model: str | None = None,
                 label: str | None = None, interpolation: str = "linear") -> dict[str, Any]:
        svc = service(model)
        frames, labels = svc.traverse(seed, seed2, steps, count, label, interpolation)
        return {"model": svc.name, "seed": seed, "seed2": seed2, "steps": steps, "shape": list(frames.shape[1:]),
                "labels": None if labels is None else labels.tolist(),
                "frames": [encode_png(im) for im in frames]}

    return app


NO_MODEL = ("no trained generator to serve: train one with `dvc repro train_gan` (or train_vae), "
            "or pass --model-uri models:/<model id> (a run's genlab.model.generator tag)")


class _UnknownModel(LookupError):
    pass


class _NoModel(LookupError):
    pass

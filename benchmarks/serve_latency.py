"""Latency of a served generator, measured from a second process, and a soak with bad requests.

Start a server first, then run this against it:

    genlab serve --port 8000 &                                   # models/gan, models/vae
    python benchmarks/serve_latency.py http://127.0.0.1:8000

    mlflow models serve -m runs:/<run id>/generator --env-manager local -p 5000 &
    python benchmarks/serve_latency.py http://127.0.0.1:5000 --api mlflow

Phase 1 sends `--requests` sequential requests of `--count` images (one seed each, after
`--warmup` unmeasured ones) and reports the p50 / p95 / max round trip in ms: the client's
view (HTTP, decode on the server, PNG encoding, JSON) of one request at a time. Phase 2 sends
`--soak` requests of which every `--bad-every`-th is bad (a non-integer seed, a count over the
limit, an unknown class or model, too many steps); good ones must answer 200 and bad ones a 4xx
with a message, and the server must still answer afterwards. Exit status 1 if any does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


def call(url: str, api: str, params: dict[str, Any], timeout: float = 120.0) -> tuple[int, dict[str, Any], int]:
    """(HTTP status, JSON body, number of images) of one request."""
    if api == "genlab":
        req = urllib.request.Request(f"{url}/api/sample?{urlencode(params)}")
    else:
        body = json.dumps({"dataframe_records": [params]}).encode()
        req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    data = json.loads(raw)
    n = len(data.get("images") or data.get("predictions") or []) if status == 200 else 0
    return status, data, n


def bad_requests(api: str, model: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(what is wrong, params) for the soak: each must be answered with a 4xx and a message."""
    extra = {"model": model} if model and api == "genlab" else {}
    bad = [
        ("non-integer seed", {"seed": "abc", "count": 4, **extra}),
        ("count over the limit", {"seed": 1, "count": 100000, **extra}),
        ("negative seed", {"seed": -3, "count": 4, **extra}),
        ("unknown class", {"seed": 1, "count": 4, "label": 999, **extra}),
    ]
    if api == "genlab":
        bad += [("unknown model", {"seed": 1, "model": "no-such-model"})]
    else:
        bad += [("too many steps", {"seed": 1, "count": 1, "seed2": 2, "steps": 100000})]
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="base URL of the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--api", choices=["genlab", "mlflow"], default="genlab",
                   help="genlab: GET /api/sample (genlab serve); mlflow: POST /invocations (mlflow models serve)")
    p.add_argument("--model", default=None, help="genlab serve's model name (default: the first it serves)")
    p.add_argument("--count", type=int, default=64, help="images per request (default 64)")
    p.add_argument("--requests", type=int, default=50, help="measured requests (default 50)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--soak", type=int, default=200, help="requests in the soak phase (default 200; 0 skips it)")
    p.add_argument("--bad-every", type=int, default=4, help="every N-th soak request is bad (default 4)")
    args = p.parse_args(argv)
    url = args.url.rstrip("/")
    extra = {"model": args.model} if args.model and args.api == "genlab" else {}

    times = []
    for i in range(args.warmup + args.requests):
        t0 = time.perf_counter()
        status, body, n = call(url, args.api, {"seed": 1000 + i, "count": args.count, **extra})
        dt = (time.perf_counter() - t0) * 1000
        if status != 200 or n != args.count:
            print(f"request {i}: status {status}, {n} images: {str(body)[:200]}", file=sys.stderr)
            return 1
        if i >= args.warmup:
            times.append(dt)
    q = statistics.quantiles(times, n=100, method="inclusive")
    print(f"{args.api} {url}: {args.requests} requests of {args.count} images, one at a time: "
          f"p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, max {max(times):.1f} ms")

    failures, answered = [], {"ok": 0, "4xx": 0}
    bad = bad_requests(args.api, args.model)
    for i in range(args.soak):
        if args.bad_every and i % args.bad_every == args.bad_every - 1:
            what, params = bad[(i // args.bad_every) % len(bad)]
            status, body, _ = call(url, args.api, params)
            message = body.get("error") or body.get("message") or ""
            if 400 <= status < 500 and message:
                answered["4xx"] += 1
            else:
                failures.append(f"request {i} ({what}): status {status}, {str(body)[:200]}")
        else:
            status, body, n = call(url, args.api, {"seed": i, "count": 16, **extra})
            if status == 200 and n == 16:
                answered["ok"] += 1
            else:
                failures.append(f"request {i}: status {status}, {n} images: {str(body)[:200]}")
    if args.soak:
        alive, _, _ = call(url, args.api, {"seed": 0, "count": 1, **extra})
        print(f"soak: {args.soak} requests, {answered['ok']} good answered 200, {answered['4xx']} bad answered 4xx "
              f"with a message, {len(failures)} failures; server {'up' if alive == 200 else 'DOWN'} afterwards")
        for f in failures[:10]:
            print("  " + f, file=sys.stderr)
        if failures or alive != 200:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

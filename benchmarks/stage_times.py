"""Where `make run`'s time goes: wall and CPU seconds of the install and of every stage.

Run it in a fresh clone (so every stage runs), from that clone's root:

    git clone /path/to/genlab /tmp/a && cd /tmp/a && python3 /path/to/benchmarks/stage_times.py

It runs `make install` and then each stage of dvc.yaml in pipeline order with
`dvc repro --single-item STAGE` (what `make run`'s `dvc repro` does, one stage per call), and
prints one row per step: wall seconds and CPU seconds (user + system of every process the step
started). `--out FILE.tsv` also writes the rows; `--env K=V` sets an environment variable for
every step (e.g. `--env GENLAB_FP32=1`). Compare two commits side by side on one idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def stage_order(root: Path) -> list[str]:
    """dvc.yaml's stages in an order that respects their dependencies (outs before deps)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    outs = {name: [o if isinstance(o, str) else next(iter(o)) for o in spec.get("outs", [])]
            for name, spec in stages.items()}
    order: list[str] = []
    pending = list(stages)
    while pending:
        for name in pending:
            deps = [d if isinstance(d, str) else next(iter(d)) for d in stages[name].get("deps", [])]
            upstream = {other for other in pending if other != name
                        for d in deps for o in outs[other] if d == o or d.startswith(o.rstrip("/") + "/")}
            if not upstream:
                order.append(name)
                pending.remove(name)
                break
        else:
            raise SystemExit("dvc.yaml: a dependency cycle")
    return order


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--env", action="append", default=[], help="K=V for every step")
    ap.add_argument("--no-install", action="store_true", help="skip `make install` (already installed)")
    args = ap.parse_args()
    root = Path.cwd()
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    env["PATH"] = f"{root / '.venv/bin'}:{env['PATH']}"
    rows = []
    if not args.no_install:
        rows.append(("install", *timed(["make", "install"], env)))
    for stage in stage_order(root):
        rows.append((stage, *timed(["dvc", "repro", "--single-item", stage], env)))
    lines = [f"# {cpu_model()}, {os.cpu_count()} cores, env {' '.join(args.env) or '(default)'}",
             "step\twall_s\tcpu_s"]
    lines += [f"{name}\t{wall:.1f}\t{cpu:.1f}" for name, wall, cpu in rows]
    lines.append(f"total\t{sum(r[1] for r in rows):.1f}\t{sum(r[2] for r in rows):.1f}")
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""`genlab clean`: remove what can be rebuilt (:mod:`genlab.clean`); `--all` also what cannot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = ("remove resume state and the DVC outputs `dvc checkout` restores; keeps mlflow.db, dvc.lock, "
        "metrics and plots unless --all: genlab clean [--all [--force]]")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", dest="everything",
                   help="also remove every declared output, dvc.lock and the MLflow store (mlflow.db, mlruns/): "
                        "asks first, as `dvc gc` does")
    p.add_argument("-f", "--force", action="store_true", help="with --all: do not ask (needed without a terminal)")
    p.add_argument("-n", "--dry-run", action="store_true", help="say what would be removed, remove nothing")


def confirmed(paths: list[str]) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"genlab clean --all removes {', '.join(paths)}, including results that exist nowhere else. "
                   "Are you sure you want to proceed? [y/n] ")
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    from genlab.clean import apply_plan, plan_clean

    root = Path.cwd()
    plan = plan_clean(root, everything=args.everything)
    if args.dry_run:
        for path in plan.remove:
            print(f"would remove {path}")
        for path, why in plan.keep:
            print(f"keep {path}: {why}")
        return 0
    if args.everything and plan.remove and not args.force and not confirmed(plan.remove):
        print(f"genlab clean: error: --all would remove {', '.join(plan.remove)}, including results that exist "
              "nowhere else; nothing removed (answer y in a terminal, or add --force)", file=sys.stderr)
        return 2
    apply_plan(root, plan)
    for path in plan.remove:
        print(f"removed {path}")
    if plan.keep:
        print(f"kept {', '.join(p for p, _ in plan.keep)} (nowhere else to restore them from; "
              "`genlab clean -n` says why, `genlab clean --all` removes them)")
    return 0

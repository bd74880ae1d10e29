"""`genlab preset list | show NAME | check [NAME] | run NAME [dvc exp run options]`: the presets of
``presets/`` as named DVC experiments."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

HELP = "run a preset of presets/ as a named DVC experiment: genlab preset run quick [--queue] [-S key=value ...]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None, help="the presets folder (default: presets/ at the repo root)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the presets and why each exists", description="the presets and why each exists")
    p = sub.add_parser("show", help="a preset's file and the dvc command it runs",
                       description="a preset's file and the dvc command it runs")
    p.add_argument("name")
    p = sub.add_parser("check", help="validate presets against the params schema (all when no NAME)",
                       description="merge each preset over params.yaml and run check_params' checks on the result")
    p.add_argument("name", nargs="?")
    p.add_argument("--sources", action="store_true", help="also check that local data sources exist here")
    p = sub.add_parser(
        "run", help="dvc exp run -n NAME -S key=value ... (options after NAME go to dvc exp run)",
        description="Validate the preset, print the dvc command and run it. Everything after NAME is passed to "
                    "`dvc exp run` after the preset's own -S options, so `--queue`, `--temp`, a stage name "
                    "or another `-S key=value` (which wins over the preset's) work as in DVC.")
    p.add_argument("name")
    p.add_argument("dvc_args", nargs=argparse.REMAINDER, help="options and targets for dvc exp run")


def _dvc_exe() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else "dvc"


def run(args: argparse.Namespace) -> int:
    from genlab.params import ParamsError
    from genlab.presets import check_preset, dvc_command, load_preset, preset_names, preset_path, preset_summary
    from genlab.study.experiments import dvc_env, find_root

    root = find_root(Path.cwd())
    directory = Path(args.dir) if args.dir else root / "presets"
    params = root / "params.yaml"
    if args.action == "list":
        for name in preset_names(directory):
            print(f"{name}: {preset_summary(name, directory)}")
        return 0
    if args.action == "show":
        print(preset_path(args.name, directory).read_text(encoding="utf-8").rstrip())
        print(f"\n# runs: {shlex.join(dvc_command(args.name, load_preset(args.name, directory)))}")
        return 0
    if args.action == "check":
        names = [args.name] if args.name else preset_names(directory)
        failed = 0
        for name in names:
            problems = check_preset(name, params, directory, sources=args.sources)
            print(f"{name}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
            for line in problems:
                print(f"  {line}")
            failed += bool(problems)
        return 1 if failed else 0
    problems = check_preset(args.name, params, directory)
    if problems:
        raise ParamsError("\n".join(problems))
    cmd = dvc_command(args.name, load_preset(args.name, directory), args.dvc_args)
    print(shlex.join(cmd), flush=True)
    return subprocess.run([_dvc_exe(), *cmd[1:]], cwd=root, env=dvc_env()).returncode

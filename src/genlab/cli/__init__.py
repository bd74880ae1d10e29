"""The `genlab` command: use trained models and judge images without writing code.

Each sub-command ``NAME`` lives in its own module ``genlab.cli.NAME`` exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches. A command module
parses options and calls library code; the library never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from genlab.errors import first_line

# name -> module implementing it
COMMANDS: dict[str, str] = {name: f"genlab.cli.{name}" for name in
                             ("evaluate", "text", "sample", "traverse", "serve", "study", "photos", "clean", "preset")}


def build_parser() -> argparse.ArgumentParser:
    from genlab import __version__

    parser = argparse.ArgumentParser(prog="genlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("genlab"):
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def one_line_error(exc: BaseException) -> str:
    """An error as one line; a pydantic ValidationError names the options (``--points: ...``)."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        parts = []
        for err in errors():
            name = "--" + str(err["loc"][-1]).replace("_", "-") if err.get("loc") else "input"
            msg = err["msg"][:1].lower() + err["msg"][1:]
            parts.append(f"{name}: {msg}" + (f", got {err['input']!r}" if "input" in err else ""))
        return "; ".join(parts)
    return first_line(exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:  # atomic writes have removed their temporary files on the way out
        print(f"genlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `genlab evaluate x.npy | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, as a shell tool killed by the closed pipe
    except (ValueError, RuntimeError, OSError) as exc:  # OSError: an --out under a file, unwritable, disk full
        print(f"genlab {args.command}: error: {with_restore_hint(exc, one_line_error(exc))}", file=sys.stderr)
        return 2


def with_restore_hint(exc: BaseException, line: str) -> str:
    """A damaged checkpoint or images file a pipeline stage wrote gets the commands that restore
    it, as the stages say it (``; restore it with `dvc checkout models/gan` or ...``)."""
    from genlab.stage import _is_damaged_input, restore_hint

    if not _is_damaged_input(exc) or "dvc " in line:
        return line
    hint = restore_hint(line, current="")
    return f"{line}; {hint}" if hint else line

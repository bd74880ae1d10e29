"""Stage check_params: validate every section of params.yaml before any stage runs.

DVC removes a stage's outputs before running it; validating everything first means a typo
in params.yaml fails the pipeline in a second with nothing lost. Its output never changes,
so it triggers no downstream stage.
"""

import sys

from genlab.runtime import write_text
from genlab.sections import validate_all


def main() -> None:
    problems = validate_all("params.yaml")
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        raise SystemExit(2)
    write_text("data/params.ok", "params.yaml is valid\n")


if __name__ == "__main__":
    main()

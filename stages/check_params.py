"""Stage check_params: validate every section of params.yaml, and the local data sources it
names, before any stage runs (library: genlab.check_params).

DVC removes a stage's outputs before running it; checking everything first means a typo or a
missing source folder fails the pipeline in a second with nothing lost. Its output never
changes, so it triggers no downstream stage.
"""

from genlab.check_params import check_params
from genlab.params import ParamsError
from genlab.runtime import write_text
from genlab.stage import run_stage


def main() -> int:
    problems = check_params("params.yaml")
    if problems:
        raise ParamsError("\n".join(problems))
    write_text("data/params.ok", "params.yaml is valid\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

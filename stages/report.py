"""Stage report: reports/index.md (+ .html) with every figure and metric of the run; logged to
the pipeline's parent MLflow run."""

from pathlib import Path

from genlab.params import load_params_or_exit
from genlab.render.report import ReportParams, build_report, markdown_to_html
from genlab.runtime import write_text
from genlab.tracking import log_stage


def main() -> None:
    common, cfg = load_params_or_exit("report", ReportParams)
    md = build_report(Path("reports"), Path("metrics"), cfg.title)
    write_text("reports/index.md", md)
    write_text("reports/index.html", markdown_to_html(md, cfg.title))
    log_stage("report", common, cfg, artifacts=["reports/index.md"],
              parent_artifacts=["reports"])


if __name__ == "__main__":
    main()

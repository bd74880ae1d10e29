"""Stage report: reports/index.md (+ .html) with every figure and metric of the run; logged to
the pipeline's parent MLflow run (library: genlab.render.report)."""

from pathlib import Path

from genlab.render.report import ReportParams, build_report, markdown_to_html
from genlab.runtime import write_text
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import log_stage


def main() -> int:
    common, cfg = load_stage_params("report", ReportParams)
    md = build_report(Path("reports"), Path("metrics"), cfg.title)
    write_text("reports/index.md", md)
    write_text("reports/index.html", markdown_to_html(md, cfg.title))
    log_stage("report", common, cfg, artifacts=["reports/index.md"], parent_artifacts=["reports"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

"""Stage evaluate: judge each generator's samples (and real held-out images) with the classifier
(library: genlab.evaluate.judge)."""

from pathlib import Path

from genlab.evaluate.judge import EvaluateParams, judge_generators
from genlab.generate import GENERATORS
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

REPORTS = Path("reports/evaluate")


def main() -> int:
    common, cfg = load_stage_params("evaluate", EvaluateParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    metrics, hists = judge_generators(
        cfg, seed=common.seed, device=device,
        samples={name: Path("data/generated") / f"{name}.npy" for name in GENERATORS},
        classifier=Path("models/classifier/checkpoint.pt"), data_dir=Path("data/images"), report_dir=REPORTS,
    )
    write_json("metrics/evaluate.json", metrics)
    write_json(REPORTS / "class_histograms.json", hists)
    flat = {f"evaluate/{row}/{k}": v for row, block in metrics.items() for k, v in block.items()}
    log_stage("evaluate", common, cfg, metrics=flat, tags={"device": device.type,
              "data_sha256": data_fingerprint("data/images/meta.json")},
              artifacts=sorted(REPORTS.glob("*")))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

"""Stage evaluate: judge each generator's samples (and real held-out images) with the classifier."""

from pathlib import Path

from genlab.generate import GENERATORS
from genlab.judge import EvaluateParams, judge_generators
from genlab.params import load_params_or_exit
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.tracking import data_fingerprint, log_stage


def main() -> None:
    common, cfg = load_params_or_exit("evaluate", EvaluateParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    report_dir = Path("reports/evaluate")
    metrics, hists = judge_generators(
        cfg, seed=common.seed, device=device,
        samples={name: Path("data/generated") / f"{name}.npy" for name in GENERATORS},
        classifier=Path("models/classifier/checkpoint.pt"), data_dir=Path("data/images"), report_dir=report_dir,
    )
    write_json("metrics/evaluate.json", metrics)
    write_json(report_dir / "class_histograms.json", hists)
    flat = {f"evaluate/{row}/{k}": v for row, block in metrics.items() for k, v in block.items()}
    log_stage("evaluate", common, cfg, metrics=flat, tags={"device": device.type,
              "data_sha256": data_fingerprint("data/images/meta.json")},
              artifacts=sorted(report_dir.glob("*")))


if __name__ == "__main__":
    main()

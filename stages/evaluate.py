"""Stage evaluate: judge each generator's samples (and real held-out images) with the classifier
when there is one, and always with the label-free judges (library: genlab.evaluate.judge)."""

from pathlib import Path

from genlab.evaluate.judge import EvaluateParams, judge_generators, judge_rows_label_free
from genlab.generate import GENERATORS, default_checkpoint
from genlab.runtime import log, resolve_device, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

REPORTS = Path("reports/evaluate")
CLASSIFIER = Path("models/classifier/checkpoint.pt")


def main() -> int:
    common, cfg = load_stage_params("evaluate", EvaluateParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    samples = {name: Path("data/generated") / f"{name}.npy" for name in GENERATORS}
    metrics, hists = {}, {}
    if CLASSIFIER.exists():
        metrics, hists = judge_generators(cfg, seed=common.seed, device=device, samples=samples,
                                          classifier=CLASSIFIER, data_dir=Path("data/images"), report_dir=REPORTS)
        classifier_note = f"ran: {CLASSIFIER} on every row (confidence, class histogram, classifier FID/KID)"
    else:
        classifier_note = f"skipped: no {CLASSIFIER} (the set has no usable labels; see models/classifier/)"
        log(f"evaluate: classifier scores {classifier_note}")
    free, judges = judge_rows_label_free(cfg, seed=common.seed, device=device, samples=samples,
                                         data_dir=Path("data/images"))
    for row, block in free.items():
        metrics.setdefault(row, {}).update(block)
    write_json("metrics/evaluate.json", metrics)
    write_json(REPORTS / "class_histograms.json", hists)
    write_json(REPORTS / "judges.json", {"classifier": classifier_note, **judges})
    flat = {f"evaluate/{row}/{k}": v for row, block in metrics.items() for k, v in block.items()}
    log_stage("evaluate", common, cfg, metrics=flat, tags={"device": device.type,
              "data_sha256": data_fingerprint("data/images/meta.json")},
              artifacts=sorted(REPORTS.glob("*")),
              model_metrics={default_checkpoint(name): metrics[name] for name in GENERATORS if name in metrics})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

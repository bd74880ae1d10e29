"""Stage prepare_images: an image source -> data/images (uint8 N,C,H,W + labels + meta.json)
(library: genlab.data.images.prepare_images)."""

from genlab.data.arrays import has_labels
from genlab.data.images import PrepareImagesParams, data_metrics, prepare_images
from genlab.runtime import log, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

OUT = "data/images"
REPORTS = "reports/data"
METRICS = "metrics/data.json"


def main() -> int:
    common, cfg = load_stage_params("prepare_images", PrepareImagesParams)
    seed_everything(common.seed)
    # SourceUnavailable (RuntimeError) and ImageSourceError (ValueError): one line, exit 1
    meta = prepare_images(cfg, OUT, seed=common.seed, reports_dir=REPORTS)
    metrics = data_metrics(meta)
    write_json(METRICS, metrics)
    labels = (f"class balance {metrics['data/class_balance_train']:.3f}" if has_labels(meta)
              else "no labels (stages that need them say so and skip)")
    log(f"prepare_images: {cfg.source} train {meta['shape']['train']} test {meta['shape']['test']} "
        f"val {meta['shape']['val']}, mean pixel {metrics['data/mean_pixel_train']:.1f}, {labels}")
    log_stage(
        "prepare_images", common, cfg,
        metrics=metrics,
        artifacts=[f"{OUT}/meta.json", f"{REPORTS}/samples.png"],
        tags={"data_sha256": data_fingerprint(f"{OUT}/meta.json")},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

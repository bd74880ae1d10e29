"""Stage prepare_images: an image source -> data/images (uint8 N,C,H,W + labels + meta.json)."""

from genlab.data.download import SourceUnavailable
from genlab.data.images import ImageSourceError, PrepareImagesParams, data_metrics, prepare_images
from genlab.params import load_params_or_exit
from genlab.runtime import log, seed_everything, write_json
from genlab.tracking import data_fingerprint, log_stage

OUT = "data/images"
REPORTS = "reports/data"
METRICS = "metrics/data.json"

if __name__ == "__main__":
    common, cfg = load_params_or_exit("prepare_images", PrepareImagesParams)
    seed_everything(common.seed)
    try:
        meta = prepare_images(cfg, OUT, seed=common.seed, reports_dir=REPORTS)
    except (SourceUnavailable, ImageSourceError) as exc:
        raise SystemExit(f"error: prepare_images: {exc}") from None
    metrics = data_metrics(meta)
    write_json(METRICS, metrics)
    log(f"prepare_images: {cfg.source} train {meta['shape']['train']} test {meta['shape']['test']}, "
        f"mean pixel {metrics['data/mean_pixel_train']:.1f}, class balance {metrics['data/class_balance_train']:.3f}")
    log_stage(
        "prepare_images", common, cfg,
        metrics=metrics,
        artifacts=[f"{OUT}/meta.json", f"{REPORTS}/samples.png"],
        tags={"data_sha256": data_fingerprint(f"{OUT}/meta.json")},
    )

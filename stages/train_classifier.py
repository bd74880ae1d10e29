"""Stage train_classifier: a CNN on data/images, the judge and feature extractor of `evaluate`."""

from genlab.checkpoint import rng_state
from genlab.data.arrays import load_meta, load_split
from genlab.evaluate.figures import plot_confusion
from genlab.models.classifier import save_classifier
from genlab.params import load_params_or_exit
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_tsv
from genlab.tracking import data_fingerprint, log_stage
from genlab.train.classifier import ClassifierParams, train_classifier

DATA = "data/images"
CHECKPOINT = "models/classifier/checkpoint.pt"
METRICS = "metrics/classifier.json"
PLOTS = "plots/classifier"
CONFUSION = "reports/classifier/confusion.png"

if __name__ == "__main__":
    common, cfg = load_params_or_exit("classifier", ClassifierParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    x_train, y_train = load_split(DATA, "train")
    x_test, y_test = load_split(DATA, "test")
    class_names = load_meta(DATA).get("class_names")
    try:
        result = train_classifier(cfg, x_train, y_train, x_test, y_test, class_names=class_names,
                                  device=device, seed=common.seed)
    except ValueError as exc:  # e.g. too many pooling blocks for the image size
        raise SystemExit(f"error: train_classifier: {exc}") from None

    save_classifier(CHECKPOINT, result.model, optimizer=result.optimizer_state, epoch=cfg.epochs,
                    step=result.steps, rng=rng_state(), history=result.history, metrics=result.metrics)
    write_json(METRICS, result.metrics)
    write_tsv(f"{PLOTS}/loss.tsv", [{k: r[k] for k in ("epoch", "train_loss", "test_loss")} for r in result.history])
    write_tsv(f"{PLOTS}/accuracy.tsv", [{k: r[k] for k in ("epoch", "train_acc", "test_acc")} for r in result.history])
    plot_confusion(result.confusion, result.model.class_names, CONFUSION,
                   title=f"Confusion matrix, test accuracy {result.metrics['classifier/test_acc']:.4f}")
    log(f"train_classifier: test acc {result.metrics['classifier/test_acc']:.4f} in {result.seconds:.1f} s "
        f"({result.timing['images_per_s']:.0f} img/s on {device.type})")

    log_stage(
        "train_classifier", common, cfg,
        metrics=result.metrics,
        history={"curves": [{"step": r["epoch"], **{k: v for k, v in r.items() if k != "epoch"}}
                            for r in result.history]},
        artifacts=[CONFUSION, f"{PLOTS}/loss.tsv", f"{PLOTS}/accuracy.tsv"],
        models={"classifier": result.model},
        tags={"device": device.type, "data_sha256": data_fingerprint(f"{DATA}/meta.json"),
              "train_seconds": f"{result.seconds:.1f}", "images_per_s": f"{result.timing['images_per_s']:.0f}"},
    )

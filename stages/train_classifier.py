"""Stage train_classifier: a CNN on data/images, the judge and feature extractor of `evaluate`
(library: genlab.train.classifier)."""

from pathlib import Path

from genlab.data.arrays import has_labels, load_meta, load_split
from genlab.evaluate.figures import plot_confusion
from genlab.models import classifier as classifier_model
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_text, write_tsv
from genlab.distributed import is_main_process
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage
from genlab.train.classifier import ClassifierParams, train_classifier

DATA = Path("data/images")
CHECKPOINT = Path("models/classifier/checkpoint.pt")
RESUME = Path(".genlab/resume/train_classifier.pt")  # outside DVC's outputs: never hashed, survives a killed run
METRICS = "metrics/classifier.json"
PLOTS = "plots/classifier"
CONFUSION = "reports/classifier/confusion.png"
SKIPPED = Path("models/classifier/skipped.json")
NOTE = "reports/classifier/skipped.md"


def skip(reason: str) -> int:
    """A set without labels: no judge classifier. The same DVC outputs, saying so (CONTRACTS item 2):
    skipped.json and no checkpoint.pt (evaluate tests for it), header-only curves, a note."""
    log(f"train_classifier: skipped: {reason}")
    write_json(SKIPPED, {"skipped": True, "reason": reason})
    write_json(METRICS, {"classifier/skipped": 1})
    write_text(f"{PLOTS}/loss.tsv", "epoch\ttrain_loss\ttest_loss\n")
    write_text(f"{PLOTS}/accuracy.tsv", "epoch\ttrain_acc\ttest_acc\n")
    write_text(NOTE, f"# Judge classifier: skipped\n\n{reason}\n")
    return 0


def main() -> int:
    common, cfg = load_stage_params("classifier", ClassifierParams)
    meta = load_meta(DATA)
    if not has_labels(meta):
        return skip(f"{meta.get('source')} has no labels to train it on ({meta.get('num_classes')} class, "
                    f"has_labels={str(meta.get('has_labels', True)).lower()}); evaluate uses its label-free judges")
    seed_everything(common.seed)
    device = resolve_device(common.device)
    x_train, y_train = load_split(DATA, "train")
    x_test, y_test = load_split(DATA, "test")
    class_names = meta.get("class_names")
    result = train_classifier(cfg, x_train, y_train, x_test, y_test, class_names=class_names, device=device,
                              seed=common.seed, resume_path=RESUME, data_fingerprint=data_fingerprint(DATA / "meta.json"))
    if not is_main_process():
        return 0  # under DDP, rank 0 writes the outputs
    classifier_model.save(CHECKPOINT, result.model, epoch=cfg.epochs, step=result.steps, history=result.history,
                          metrics=result.metrics)
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
        history={"curves": [{"step": r["epoch"], **{k: v for k, v in r.items() if k not in ("epoch", "step")}}
                            for r in result.history]},
        artifacts=[CONFUSION, f"{PLOTS}/loss.tsv", f"{PLOTS}/accuracy.tsv"],
        models={"classifier": CHECKPOINT},
        datasets={"train": (x_train, y_train), "test": (x_test, y_test)}, data_dir=DATA,
        tags={"device": device.type, "data_sha256": data_fingerprint(DATA / "meta.json"),
              "resumed_from_step": result.resumed_from_step, "train_seconds": f"{result.seconds:.1f}"},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main, distributed=True))  # distributed.nproc > 1: torchrun

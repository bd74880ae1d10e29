"""The `evaluate` stage's library: judge every generator's samples, and a real held-out split,
with the classifier (the metrics themselves: :mod:`genlab.evaluate.metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from genlab.evaluate.label_free import LabelFreeParams
from genlab.params import StrictModel


class EvaluateParams(StrictModel):
    batch_size: int = Field(500, ge=1)
    # how many real training images form the "real" reference row (judged like a generator)
    n_real: int = Field(10000, ge=100)
    kid_subset_size: int = Field(1000, ge=10)
    # the judges that need no labels (genlab.evaluate.label_free)
    label_free: LabelFreeParams = Field(default_factory=LabelFreeParams)


SCALARS = ("confidence_mean", "frac_confident", "kl_uniform", "fid", "kid_mean", "kid_std", "inception_score")


def judge_generators(cfg: EvaluateParams, *, seed: int, device: Any, samples: dict[str, Path],
                     classifier: Path, data_dir: Path, report_dir: Path) -> tuple[dict, dict]:
    """Evaluate each samples file and a real row against the real test split.

    Returns (metrics: {row: {key: float}}, histograms: {row: [counts]}); writes the
    histogram and 30-labelled-samples figures of each row to `report_dir`.
    """
    from genlab.data.arrays import load_images, load_meta, load_split
    from genlab.evaluate.metrics import classifier_outputs, evaluate_images
    from genlab.evaluate.figures import plot_class_histogram, plot_labelled_samples
    from genlab.models.classifier import load as load_classifier

    test_images, _ = load_split(data_dir, "test")
    train_images, _ = load_split(data_dir, "train")
    class_names = load_meta(data_dir).get("class_names")
    rng = np.random.default_rng(seed)
    real = train_images[rng.permutation(len(train_images))[: cfg.n_real]]
    rows = {"real": real, **{name: load_images(path) for name, path in samples.items()}}
    metrics, hists = {}, {}
    if not Path(classifier).exists():  # train_classifier skipped it: a set without labels (CONTRACTS item 2)
        from genlab.runtime import log

        log(f"evaluate: no classifier-based scores: {classifier} is absent (train_classifier skipped: the set has "
            f"no labels)")
        return {name: {"n_images": float(len(images))} for name, images in rows.items()}, hists
    classifier = load_classifier(classifier, device)  # load once, judge every row
    # one classifier pass over the test split and one over each row, shared by metrics and figures
    ref_feats = classifier_outputs(test_images, classifier, device=device, batch_size=cfg.batch_size)[0]
    for name, images in rows.items():
        feats, probs = classifier_outputs(images, classifier, device=device, batch_size=cfg.batch_size)
        res = evaluate_images(images, classifier, test_images, device=device, batch_size=cfg.batch_size,
                              kid_subset_size=min(cfg.kid_subset_size, len(images), len(test_images)), seed=seed,
                              outputs=(feats, probs), reference_features=ref_feats)
        metrics[name] = {k: float(res[k]) for k in SCALARS}
        hists[name] = [int(c) for c in res["class_hist"]]
        names = class_names or [str(i) for i in range(len(hists[name]))]
        plot_class_histogram(hists[name], names, report_dir / f"{name}_histogram.png",
                             title=f"{name}: classes of {len(images)} images")
        preds, conf = probs.argmax(1), probs.max(1)
        plot_labelled_samples(images, preds, conf, report_dir / f"{name}_samples.png", n=30, seed=seed,
                              title=f"{name}: 30 random samples, predicted label (confidence)")
    return metrics, hists


def judge_rows_label_free(cfg: EvaluateParams, *, seed: int, device: Any, samples: dict[str, Path],
                          data_dir: Path) -> tuple[dict, dict]:
    """The label-free judges (:mod:`genlab.evaluate.label_free`) on each samples file and a `real` row.

    The test split is cut in two halves: the first is the held-out reference of every row, the
    second is the `real` row, so that row is judged on images no judge or reference was fitted
    on. Returns (metrics {row: {key: float}}, judges {judge: one line of how, or why skipped}).
    """
    from genlab.data.arrays import load_images, load_split
    from genlab.evaluate.label_free import inception_plan, judge_label_free
    from genlab.runtime import log

    train_images, _ = load_split(data_dir, "train")
    test_images, _ = load_split(data_dir, "test")
    half = len(test_images) // 2
    reference, real_row = test_images[:half], test_images[half:]
    lf = cfg.label_free
    need = max(4, lf.pr_k + 1)  # the two-sample test's two halves; k + 1 neighbours for the k-NN manifolds
    if half < need:
        why = (f"skipped: {len(test_images)} test images, the label-free judges need at least {2 * need} "
               "(a larger folder or a larger prepare_images.test_fraction)")
        log(f"evaluate: label-free judges {why}")
        return {}, {judge: why for judge in ("two-sample test", "precision / recall", "memorisation", "Inception FID/KID")}
    rows = {"real": real_row, **{name: load_images(path) for name, path in samples.items()}}
    metrics = {name: judge_label_free(images, train_images, reference, seed=seed, device=device, cfg=lf)
               for name, images in rows.items()}
    weights, inception_line = inception_plan(lf, device)
    judges = {
        "two-sample test": f"c2st_acc: held-out accuracy of a small CNN telling {min(lf.c2st_n, half)} real test "
                           f"images from as many samples, {lf.c2st_epochs} epochs (0.5 = indistinguishable)",
        "precision / recall": f"k-NN manifolds (k={lf.pr_k}) of {lf.pr_n} images per side in a fixed random "
                              "conv net's features",
        "memorisation": f"{lf.mem_n} samples' nearest training image (downsampled pixels) against held-out real "
                        "images': share closer than their 5th percentile, and the ratio of medians",
        "Inception FID/KID": inception_line if weights is None else f"ran: {inception_line}",
    }
    return metrics, judges

"""`genlab evaluate IMAGES.npy`: judge any set of images with the trained classifier."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "judge a set of images (uint8 N,C,H,W .npy/.npz) with the trained classifier; prints JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", type=Path, help="uint8 (N, C, H, W) .npy, or .npz with an 'images' entry")
    p.add_argument("--classifier", type=Path, default=Path("models/classifier/checkpoint.pt"),
                   help="classifier checkpoint (default: %(default)s)")
    p.add_argument("--reference", type=Path, default=Path("data/images/test_images.npy"),
                   help="real images for FID/KID (default: %(default)s)")
    p.add_argument("--labels", type=Path, default=None,
                   help="optional int (N,) .npy of intended classes (conditional generators): adds accuracy")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="also write class_histogram.png, samples.png and evaluation.json here")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="seed of KID subsets and of the sample figure")


def run(args: argparse.Namespace) -> int:
    # Errors (bad images: ImageArrayError, a ValueError; bad checkpoint: CheckpointError, a
    # RuntimeError) propagate to genlab.cli.main, which prints one line and exits 2.
    import numpy as np

    from genlab.data.arrays import load_images
    from genlab.evaluate.metrics import check_for_classifier, evaluate_images, predict
    from genlab.models.classifier import load as load_classifier
    from genlab.runtime import resolve_device, write_json

    for name in ("batch_size", "kid_subset_size", "kid_subsets"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    device = resolve_device(args.device)
    clf = load_classifier(args.classifier, device=device)
    images = check_for_classifier(load_images(args.images), clf, str(args.images))
    reference = check_for_classifier(load_images(args.reference), clf, str(args.reference))
    labels = None
    if args.labels is not None:
        try:
            labels = np.load(args.labels, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.labels}: not a readable .npy file: {exc}") from None
    result = evaluate_images(images, clf, reference, device=device, batch_size=args.batch_size,
                             kid_subset_size=args.kid_subset_size, kid_subsets=args.kid_subsets,
                             seed=args.seed, labels=labels)
    result = {"images": str(args.images), "classifier": str(args.classifier), "reference": str(args.reference),
              **result}
    if args.out_dir is not None:
        from genlab.evaluate.figures import plot_class_histogram, plot_labelled_samples

        preds, conf = predict(images, clf, device=device, batch_size=args.batch_size)
        plot_class_histogram(result["class_hist"], clf.class_names, args.out_dir / "class_histogram.png",
                             title=f"Predicted classes of {len(images)} images ({args.images.name})")
        plot_labelled_samples(images, preds, conf, args.out_dir / "samples.png", seed=args.seed,
                              class_names=clf.class_names, title=f"{args.images.name}: predicted class, confidence")
        write_json(args.out_dir / "evaluation.json", result)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

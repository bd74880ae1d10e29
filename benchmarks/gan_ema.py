"""The GAN judged after every epoch: G as trained vs the EMA generator that the stage saves.

Trains the DCGAN of ``params.yaml`` (``-S key=value`` overrides its ``gan`` section) on the
prepared images and, after each epoch, draws the ``generate`` stage's samples (same count,
same seed) from both generators and scores them with the pipeline's classifier against the
real test set. Needs ``data/images`` and ``models/classifier`` (run ``dvc repro train_classifier``
first). Training follows exactly the path of the ``train_gan`` stage: the judging does not
touch the training RNG.

    python benchmarks/gan_ema.py                           # defaults: 7 epochs, ema 0.999
    python benchmarks/gan_ema.py -S epochs=3 -S ema=0.998 --out ema.tsv
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import yaml

from genlab.data.arrays import load_split
from genlab.evaluate.metrics import evaluate_images
from genlab.generate import GenerateParams, generate_samples
from genlab.runtime import resolve_device, seed_everything, write_tsv
from genlab.train.gan import GanParams, train_gan

KEYS = ("frac_confident", "kl_uniform", "fid", "confidence_mean", "inception_score")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override gan.KEY")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data", default="data/images")
    p.add_argument("--classifier", default="models/classifier/checkpoint.pt")
    p.add_argument("--out", default=None, help="write the table as TSV here")
    args = p.parse_args()

    params = yaml.safe_load(Path(args.params).read_text())
    section = dict(params["gan"])
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"-S {item}: expected KEY=VALUE")
        section[key.removeprefix("gan.")] = yaml.safe_load(value)
    cfg = GanParams.model_validate(section)
    gen_cfg = GenerateParams.model_validate(params.get("generate", {}))
    seed = int(params.get("seed", 0))
    device = resolve_device(params.get("device", "auto"))
    seed_everything(seed)
    images, labels = load_split(args.data, "train")
    test, _ = load_split(args.data, "test")
    rows: list[dict] = []

    def judge(gen) -> dict[str, float]:
        samples, _ = generate_samples(gen, gen_cfg.n_samples, seed=seed, batch_size=gen_cfg.batch_size,
                                      device=device, desc="judge")
        r = evaluate_images(samples, args.classifier, test, device=device, kid_subsets=5)
        return {k: round(float(r[k]), 4) for k in KEYS}

    def on_epoch_end(epoch: int, sampled, trained) -> None:
        for name, g in (("trained", copy.deepcopy(trained).eval()), ("sampled", sampled)):
            if name == "sampled" and not cfg.ema:
                continue
            rows.append({"epoch": epoch, "generator": name, **judge(g)})
            print("\t".join(str(v) for v in rows[-1].values()), flush=True)

    print(f"gan: {cfg.epochs} epochs, ema {cfg.ema}, {min(cfg.limit or len(images), len(images))} images, {device}; judged on "
          f"{gen_cfg.n_samples} samples\n" + "\t".join(("epoch", "generator", *KEYS)), flush=True)
    t0 = time.perf_counter()
    res = train_gan(cfg, images, labels, seed=seed, device=device, on_epoch_end=on_epoch_end)
    print(f"{time.perf_counter() - t0:.0f} s, {res.metrics['gan/img_per_s']:.0f} img/s while training", file=sys.stderr)
    if args.out:
        write_tsv(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

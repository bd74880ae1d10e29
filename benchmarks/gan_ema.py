"""The GAN judged after every epoch: G as trained vs the EMA generator that the stage saves.

Trains the DCGAN of ``params.yaml`` (``-S key=value`` overrides its ``gan`` section) on the
prepared images and, after each epoch, draws the ``generate`` stage's samples (same count,
same seed) from both generators and scores them with the pipeline's classifier against the
real test set. Needs ``data/images`` and ``models/classifier`` (run ``dvc repro train_classifier``
first). Training follows exactly the path of the ``train_gan`` stage: the judging does not
touch the training RNG.

    python benchmarks/gan_ema.py                           # defaults: 7 epochs, ema 0.999
    python benchmarks/gan_ema.py -S epochs=3 -S ema=0.998 --out ema.tsv
    python benchmarks/gan_ema.py --extra 0.999:mean --extra 0.9995:mean --from-epoch 4   # more averages, one run

``--extra DECAY:WARMUP`` keeps further averages of G's weights beside the stage's, updated after
every step of the same run (training is untouched): warm-up ``tf`` is the stage's
min(decay, (1 + n) / (10 + n)); ``mean`` is min(decay, n / (n + 1)), the plain mean of all
weights so far until the average spans 1 / (1 - decay) steps.
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
import genlab.train.gan as gan_train
from genlab.train.gan import GanParams, recalibrate_batchnorm, train_gan

KEYS = ("frac_confident", "kl_uniform", "fid", "confidence_mean", "inception_score")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override gan.KEY")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data", default="data/images")
    p.add_argument("--classifier", default="models/classifier/checkpoint.pt")
    p.add_argument("--out", default=None, help="write the table as TSV here")
    p.add_argument("--extra", action="append", default=[], metavar="DECAY:WARMUP",
                   help="another average of G's weights to judge (warm-up tf | mean)")
    p.add_argument("--from-epoch", type=int, default=1, help="judge from this epoch on")
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
    extras: dict[str, "torch.nn.Module"] = {}
    if args.extra:
        import torch
        from torch.optim.swa_utils import AveragedModel

        def avg_fn(decay: float, warmup: str):
            @torch.no_grad()
            def update(averaged, current, n_averaged):
                n = int(n_averaged)
                d = min(decay, (1 + n) / (10 + n) if warmup == "tf" else n / (n + 1))
                torch._foreach_lerp_(averaged, current, 1.0 - d)
            return update

        step = gan_train.GanStep.step

        def step_and_average(self, idx):
            out = step(self, idx)
            for spec in args.extra:
                if spec not in extras:
                    decay, _, warmup = spec.partition(":")
                    extras[spec] = AveragedModel(self.gen, multi_avg_fn=avg_fn(float(decay), warmup or "tf"))
                extras[spec].update_parameters(self.gen)
            return out

        gan_train.GanStep.step = step_and_average

    def judge(gen) -> dict[str, float]:
        samples, _ = generate_samples(gen, gen_cfg.n_samples, seed=seed, batch_size=gen_cfg.batch_size,
                                      device=device, desc="judge")
        r = evaluate_images(samples, args.classifier, test, device=device, kid_subsets=5)
        return {k: round(float(r[k]), 4) for k in KEYS}

    def on_epoch_end(epoch: int, sampled, trained) -> None:
        if epoch < args.from_epoch:
            return
        more = [(f"ema {spec}", recalibrate_batchnorm(copy.deepcopy(m.module), seed=seed * 1_000_003 + epoch))
                for spec, m in extras.items()]
        for name, g in (("trained", copy.deepcopy(trained).eval()), ("sampled", sampled), *more):
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

"""GAN quality against images seen: candidates x data sets x precisions, judged after every epoch.

For each data source the script prepares the images (as the ``prepare_images`` stage does) and
trains a judge with the ``classifier`` section of params.yaml (cached under ``--cache``), then
trains every candidate (params.yaml's ``gan`` section with the candidate's overrides) and, after
each epoch, scores ``generate``'s samples of the saved generator (10,000 by default, same seed)
with the judge: frac_confident, KL(class histogram || uniform), classifier-FID. The real test
images are scored too (their frac_confident is the ceiling). Writes ``quality.tsv`` (one row per
candidate, source, precision and epoch) and ``quality.png`` (FID and frac_confident against
images seen, a panel per source and precision).

    python benchmarks/gan_quality.py --epochs 3                          # all candidates, fp32
    python benchmarks/gan_quality.py --source idx:/usr/share/datasets/fashion-mnist --amp off --amp bf16
    python benchmarks/gan_quality.py --candidate today --candidate d32 -j 4 --device cuda
    python benchmarks/gan_quality.py --list                               # the candidates

Each (candidate, source, precision) trains in its own process; ``-j N`` runs N at once (on a GPU
several small runs share it well; on a 2-core CPU keep -j 1). ``--plot-only`` redraws from
``quality.tsv``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

# Overrides of params.yaml's gan section. "today" pins the defaults this benchmark was written
# against (issue 12), so the comparison keeps its baseline when params.yaml changes.
TODAY = {"arch": "mnist28", "loss": "nonsaturating", "batch_size": 64, "lr": 2e-4, "lr_d": None, "lr_g": None,
         "beta1": 0.5, "beta2": 0.999, "d_width": None, "d_layers": 3, "g_width": 64, "g_layers": 3,
         "ema": 0.999, "z_dim": 100}
CANDIDATES: dict[str, dict] = {
    "today": {},
    "d32": {"d_width": 32},
    "ttur": {"lr_d": 4e-4, "lr_g": 1e-4},
    "lr4e-4": {"lr": 4e-4},
    "d32_lr4e-4": {"d_width": 32, "lr": 4e-4},
    "d32_ttur": {"d_width": 32, "lr_d": 4e-4, "lr_g": 2e-4},
    "b128_lr4e-4": {"batch_size": 128, "lr": 4e-4},
    "d32_b32": {"d_width": 32, "batch_size": 32},
    "ema0.9995": {"ema": 0.9995},
    "lsgan": {"loss": "lsgan"},
    "g128": {"g_width": 128},
    "d32_g128": {"d_width": 32, "g_width": 128},
    "beta0": {"beta1": 0.0, "beta2": 0.99},
    # round 2: a 32-64-128 D (half the CPU time of 64-128-256) with higher learning rates
    "lr6e-4": {"lr": 6e-4},
    "d32_lr6e-4": {"d_width": 32, "lr": 6e-4},
    "d32_lr8e-4": {"d_width": 32, "lr": 8e-4},
    "d32_lr1e-3": {"d_width": 32, "lr": 1e-3},
    "d32_g6e-4_d3e-4": {"d_width": 32, "lr_g": 6e-4, "lr_d": 3e-4},
    "d32_lr6e-4_ema0.9995": {"d_width": 32, "lr": 6e-4, "ema": 0.9995},
    "d32_lr6e-4_g96": {"d_width": 32, "lr": 6e-4, "g_width": 96},
    # round 3: the lr decayed linearly to 0 over the last half
    "d32_lr6e-4_decay": {"d_width": 32, "lr": 6e-4, "schedule": "linear"},
    "d32_lr8e-4_decay": {"d_width": 32, "lr": 8e-4, "schedule": "linear"},
    "d32_lr6e-4_g96_decay": {"d_width": 32, "lr": 6e-4, "g_width": 96, "schedule": "linear"},
    "d32_lr6e-4_decay_ema0.9995": {"d_width": 32, "lr": 6e-4, "schedule": "linear", "ema": 0.9995},
    "d32_lr6e-4_decay.75": {"d_width": 32, "lr": 6e-4, "schedule": "linear", "decay_fraction": 0.75},
    "d32_lr6e-4_lsgan_decay": {"d_width": 32, "lr": 6e-4, "loss": "lsgan", "schedule": "linear"},
    "d32_lr6e-4_smooth0.1_decay": {"d_width": 32, "lr": 6e-4, "label_smoothing": 0.1, "schedule": "linear"},
    # round 4 (CPU): a fourth D layer (128 -> 256 on D's 3x3 map: ~5% more D work), the seed
    # report's and the gan_discriminator study's best (FID 24.7 vs 32.4 after 100k images)
    "d32_lr6e-4_d4": {"d_width": 32, "lr": 6e-4, "d_layers": 4},
    "d32_lr6e-4_d4_ema0.9995": {"d_width": 32, "lr": 6e-4, "d_layers": 4, "ema": 0.9995},
    # round 5 (CPU): D's 4th layer fully connected (the same function as the 4x4 conv, ~15% faster steps), then
    # a deeper G (a 64-channel 3x3 ConvT at 7x7), batch 32, a wider D
    "d4fc": {"d_width": 32, "lr": 6e-4, "d_layers": 4},
    "d4fc_g4": {"d_width": 32, "lr": 6e-4, "d_layers": 4, "g_layers": 4},
    "d4fc_b32": {"d_width": 32, "lr": 6e-4, "d_layers": 4, "batch_size": 32},
    "d4fc_d48": {"d_width": 48, "lr": 6e-4, "d_layers": 4},
    "d4fc_g5": {"d_width": 32, "lr": 6e-4, "d_layers": 4, "g_layers": 5},
    "d32_lr6e-4_g96_g4": {"d_width": 32, "lr": 6e-4, "g_width": 96, "g_layers": 4},  # the fashion-mnist preset + G's layer
    # round 6 (issue 27: CPU seconds to a quality bar): d4fc_g4 with fewer, larger steps; d4fc_g4_b128 is the
    # default since (with 5 epochs)
    "d4fc_g4_b128": {"d_width": 32, "d_layers": 4, "g_layers": 4, "batch_size": 128, "lr": 8.5e-4},
    "d4fc_g4_b128_lr1.2e-3": {"d_width": 32, "d_layers": 4, "g_layers": 4, "batch_size": 128, "lr": 1.2e-3},
    "d4fc_g4_b96": {"d_width": 32, "d_layers": 4, "g_layers": 4, "batch_size": 96, "lr": 7.5e-4},
    "d4fc_g4_b256": {"d_width": 32, "d_layers": 4, "g_layers": 4, "batch_size": 256, "lr": 1.2e-3},
}
HIGHLIGHT = ("today", "d4fc_g4", "d4fc_g4_b128")  # the defaults before and after issue 12, after issue 27: thick lines
KEYS = ("frac_confident", "kl_uniform", "fid", "confidence_mean", "inception_score")
# quality bars per source (issue 27): (name, max classifier-FID, min frac_confident); the CPU seconds a candidate
# needs to first reach each, judged after every epoch, are its time to quality
BARS = {"synthetic-digits": [("fid<=10,conf>=0.92", 10.0, 0.92), ("fid<=6.5,conf>=0.94", 6.5, 0.94)],
        "fashion-mnist": [("fid<=10,conf>=0.60", 10.0, 0.60), ("fid<=8,conf>=0.63", 8.0, 0.63)]}


def time_to_quality(rows: list[dict]) -> list[dict]:
    """Per (candidate, source, precision) and bar: the first epoch that meets the bar, with its
    images seen and training CPU seconds (blank when no epoch does)."""
    out = []
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        runs.setdefault((r["candidate"], r["source"], r["amp"]), []).append(r)
    for (name, src, amp), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        rs.sort(key=lambda r: int(r["epoch"]))
        for bar, fid, conf in BARS.get(src, []):
            hit = next((r for r in rs if float(r["fid"]) <= fid and float(r["frac_confident"]) >= conf), None)
            out.append({"candidate": name, "source": src, "amp": amp, "bar": bar,
                         "epoch": hit["epoch"] if hit else "", "images": hit["images"] if hit else "",
                         "cpu_s": hit.get("cpu_s", "") if hit else "", "train_s": hit["train_s"] if hit else "",
                         "epochs_run": rs[-1]["epoch"]})
    return out


def add_candidates(candidates: dict[str, dict], specs: list[str]) -> None:
    """``--set NAME:KEY=VALUE[,KEY=VALUE]`` -> candidates[NAME] (values parsed as YAML)."""
    for spec in specs:
        name, _, kvs = spec.partition(":")
        candidates[name] = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in kvs.split(","))}


def run_workers(runs: list[tuple[list[str], str]], jobs: int) -> int:
    """Run each (command, label) in its own process, `jobs` at a time; prints each as it ends.
    Returns how many failed."""
    env = {**os.environ, "GENLAB_PROGRESS": "0"}
    pending: list[tuple[subprocess.Popen, str]] = []
    failed = 0
    for i, (cmd, label) in enumerate(runs):
        pending.append((subprocess.Popen(cmd, env=env), label))
        while len(pending) >= jobs or (i == len(runs) - 1 and pending):
            for proc, name in list(pending):
                if proc.poll() is not None:
                    pending.remove((proc, name))
                    failed += proc.returncode != 0
                    print(f"[{name}] {'done' if proc.returncode == 0 else f'FAILED ({proc.returncode})'}", flush=True)
            time.sleep(0.5)
    return failed


def slug(source: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", source.lower().split("/")[-1] if ":" in source else source.lower()).strip("-")


def prepare(source: str, cache: Path, params: dict, device: str) -> tuple[Path, Path]:
    """data folder and judge checkpoint for `source` (prepared once, then read from the cache)."""
    import numpy as np  # noqa: F401  (imported here: the worker processes need no prepare code)

    from genlab.data.arrays import load_meta, load_split
    from genlab.data.images import PrepareImagesParams, prepare_images
    from genlab.models import classifier as classifier_model
    from genlab.runtime import resolve_device, seed_everything
    from genlab.train.classifier import ClassifierParams, train_classifier

    root = cache / slug(source)
    data, judge = root / "data", root / "classifier.pt"
    seed = int(params.get("seed", 0))
    if not (data / "meta.json").exists():
        cfg = PrepareImagesParams.model_validate({**params["prepare_images"], "source": source})
        seed_everything(seed)
        prepare_images(cfg, data, seed)
    if not judge.exists():
        cfg = ClassifierParams.model_validate(params["classifier"])
        seed_everything(seed)
        x, y = load_split(data, "train")
        xt, yt = load_split(data, "test")
        res = train_classifier(cfg, x, y, xt, yt, class_names=load_meta(data).get("class_names"),
                               device=resolve_device(device), seed=seed)
        classifier_model.save(judge, res.model, epoch=cfg.epochs, step=res.steps, metrics=res.metrics)
        print(f"{source}: judge test accuracy {res.metrics['classifier/test_acc']:.4f}", flush=True)
    return data, judge


def judge_real(data: Path, judge: Path, device: str) -> dict:
    from genlab.data.arrays import load_split
    from genlab.evaluate.metrics import evaluate_images

    test, _ = load_split(data, "test")
    half = len(test) // 2  # one half against the other: the FID floor of this judge
    r = evaluate_images(test[:half], judge, test[half:], device=device, kid_subsets=5)
    return {k: round(float(r[k]), 4) for k in KEYS}


def run_one(name: str, source: str, amp: str, epochs: int, data: Path, judge: Path, params: dict, device: str,
            out: Path) -> None:
    """Train one candidate and write its rows to `out` (a TSV); runs in its own process."""
    import copy

    from genlab.data.arrays import load_split
    from genlab.evaluate.metrics import evaluate_images
    from genlab.generate import GenerateParams, generate_samples
    from genlab.runtime import resolve_device, seed_everything
    from genlab.train.gan import GanParams, train_gan

    section = {**params["gan"], **TODAY, **CANDIDATES[name], "epochs": epochs, "amp": amp,
               "sample_every": 10**6, "n_samples": 16}
    cfg = GanParams.model_validate(section)
    gen_cfg = GenerateParams.model_validate(params.get("generate", {}))
    seed = int(params.get("seed", 0))
    dev = resolve_device(device)
    seed_everything(seed)
    images, labels = load_split(data, "train")
    test, _ = load_split(data, "test")
    rows: list[dict] = []
    t0, c0 = time.perf_counter(), time.process_time()
    spent = [0.0, 0.0]  # wall and CPU seconds spent judging, not training

    def on_epoch_end(epoch: int, sampled, trained) -> None:
        t, c = time.perf_counter(), time.process_time()
        samples, _ = generate_samples(sampled, gen_cfg.n_samples, seed=seed, batch_size=gen_cfg.batch_size,
                                      device=dev, desc="judge")
        r = evaluate_images(samples, judge, test, device=dev, kid_subsets=5)
        spent[0] += time.perf_counter() - t
        spent[1] += time.process_time() - c
        rows.append({"candidate": name, "source": slug(source), "amp": amp, "epoch": epoch,
                     "images": epoch * (len(images[: cfg.limit]) // cfg.batch_size) * cfg.batch_size,  # gan.limit: what it trains on
                     **{k: round(float(r[k]), 4) for k in KEYS},
                     "train_s": round(time.perf_counter() - t0 - spent[0], 1),
                     # CPU seconds of every thread of this process (training only): the cost on a busy or slow machine
                     "cpu_s": round(time.process_time() - c0 - spent[1], 1)})

    res = train_gan(cfg, images, labels, seed=seed, device=dev, on_epoch_end=on_epoch_end)
    for r in rows:
        r["img_per_s"] = res.metrics["gan/img_per_s"]
    write_rows(out, rows)


def write_rows(path: Path, rows: list[dict]) -> None:
    cols = list(rows[0])
    path.write_text("\t".join(cols) + "\n" + "".join("\t".join(str(r[c]) for c in cols) + "\n" for r in rows))


def read_rows(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    return [dict(zip(cols, line.split("\t"))) for line in lines[1:] if line]


def plot(rows: list[dict], real: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["source"], r["amp"]) for r in rows})
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 7.5), squeeze=False)
    names = list(dict.fromkeys(r["candidate"] for r in rows))
    colors = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    for j, (src, amp) in enumerate(panels):
        for n in names:
            rs = sorted((r for r in rows if (r["source"], r["amp"], r["candidate"]) == (src, amp, n)),
                        key=lambda r: int(r["images"]))
            if not rs:
                continue
            x = [int(r["images"]) / 1000 for r in rs]
            style = dict(color=colors[n], marker="o", ms=3, lw=2.4 if n in HIGHLIGHT else 1.1, label=n)
            axes[0, j].plot(x, [float(r["fid"]) for r in rs], **style)
            axes[1, j].plot(x, [float(r["frac_confident"]) for r in rs], **style)
        if src in real:
            axes[0, j].axhline(real[src]["fid"], color="k", ls=":", lw=1, label="real test (half vs half)")
            axes[1, j].axhline(real[src]["frac_confident"], color="k", ls=":", lw=1, label="real test")
        axes[0, j].set(title=f"{src}, {'bf16' if amp == 'bf16' else 'fp32'}", ylabel="classifier-FID (lower is better)",
                       yscale="log")
        axes[1, j].set(xlabel="thousand images seen", ylabel="frac_confident (higher is better)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    for j in range(len(panels)):  # each panel names its own candidates (they differ between panels)
        axes[0, j].legend(fontsize=7, loc="upper right")
    fig.suptitle("GAN quality against images seen (judged after each epoch on 10,000 samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", action="append", help="image source(s) (default: synthetic-digits)")
    p.add_argument("--candidate", action="append", help=f"candidate(s) (default: all): {', '.join(CANDIDATES)}")
    p.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="define an extra candidate NAME from gan overrides")
    p.add_argument("--amp", action="append", choices=["off", "bf16"], help="precision(s) (default: off = fp32)")
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--limit", type=int, default=None, help="prepare only N train images (quick checks)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--device", default="auto")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("--cache", default=".genlab/bench", help="prepared data and judges")
    p.add_argument("--out", default="reports/benchmarks/gan_quality")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--worker", nargs=4, metavar=("NAME", "SOURCE", "AMP", "TSV"), help=argparse.SUPPRESS)
    args = p.parse_args()

    add_candidates(CANDIDATES, args.set)
    if args.list:
        for n, o in CANDIDATES.items():
            print(f"{n:14s} {o or '(the defaults of issue 12: ' + json.dumps(TODAY) + ')'}")
        return 0
    params = yaml.safe_load(Path(args.params).read_text())
    if args.limit:
        params["prepare_images"]["limit"] = args.limit
    sources = args.source or ["synthetic-digits"]
    amps = args.amp or ["off"]
    names = args.candidate or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {unknown}; --list shows them")
    from genlab.runtime import resolve_device

    args.device = str(resolve_device(args.device))
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)

    if args.worker:
        name, source, amp, tsv = args.worker
        data, judge = prepare(source, cache, params, args.device)
        run_one(name, source, amp, args.epochs, data, judge, params, args.device, Path(tsv))
        return 0

    real_path = out / "real.json"
    real = json.loads(real_path.read_text()) if real_path.exists() else {}
    if not args.plot_only:
        for source in sources:
            data, judge = prepare(source, cache, params, args.device)
            real[slug(source)] = judge_real(data, judge, args.device)
            print(f"{source}: real test images {real[slug(source)]}", flush=True)
        real_path.write_text(json.dumps(real, indent=1))
        parts = out / "runs"
        parts.mkdir(exist_ok=True)
        runs = []
        for name, source, amp in itertools.product(names, sources, amps):
            tsv = parts / f"{name}__{slug(source)}__{amp}.tsv"
            cmd = [sys.executable, __file__, "--worker", name, source, amp, str(tsv), "--epochs", str(args.epochs),
                   "--params", args.params, "--device", args.device, "--cache", args.cache, "--out", args.out,
                   *(["--limit", str(args.limit)] if args.limit else []),
                   *sum((["--set", s] for s in args.set), [])]
            runs.append((cmd, tsv.name))
        run_workers(runs, args.jobs)
    rows = [r for f in sorted((out / "runs").glob("*.tsv")) for r in read_rows(f)]
    if not rows:
        print("no finished runs", file=sys.stderr)
        return 1
    write_rows(out / "quality.tsv", rows)
    plot(rows, real, out / "quality.png")
    last = {}
    for r in rows:
        last[(r["candidate"], r["source"], r["amp"])] = r
    print("\ncandidate\tsource\tamp\tepochs\timages\tfid\tfrac_confident\tkl_uniform\timg/s")
    for (n, s, a), r in sorted(last.items(), key=lambda kv: (kv[0][1], kv[0][2], float(kv[1]["fid"]))):
        print(f"{n}\t{s}\t{a}\t{r['epoch']}\t{r['images']}\t{r['fid']}\t{r['frac_confident']}\t{r['kl_uniform']}\t"
              f"{r['img_per_s']}")
    ttq = time_to_quality(rows)
    if ttq:
        write_rows(out / "time_to_quality.tsv", ttq)
        print("\ntime to quality (first epoch meeting the bar; CPU seconds of training, judging excluded)")
        print("candidate\tsource\tamp\tbar\tepoch\timages\tcpu_s\twall_s")
        for r in ttq:
            print(f"{r['candidate']}\t{r['source']}\t{r['amp']}\t{r['bar']}\t{r['epoch'] or '-'}\t{r['images'] or '-'}\t"
                  f"{r['cpu_s'] or '-'}\t{r['train_s'] or '-'}")
    print(f"\nwrote {out / 'quality.tsv'} and {out / 'quality.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

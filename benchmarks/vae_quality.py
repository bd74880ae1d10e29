"""VAE sample quality: candidates x training seeds x precisions, judged on generate's samples.

The VAE's prior samples are what ``generate`` and ``evaluate`` use, so each candidate (params.yaml's
``vae`` section with the candidate's overrides) is trained on a source and its 10,000 samples (the
``generate`` seed) are scored by the same judge as benchmarks/gan_quality.py (prepared and cached
by it): frac_confident, KL(class histogram || uniform), classifier-FID, plus the test -ELBO.
The class KL of one run moves by ~0.003 with the training seed, hence ``--seeds``. Writes
``quality.tsv`` (a row per candidate, source, precision and seed).

    python benchmarks/vae_quality.py --seeds 3 -j 2
    python benchmarks/vae_quality.py --candidate base --candidate z8 --amp off --amp bf16 --device cuda -j 16
    python benchmarks/vae_quality.py --list
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from gan_quality import add_candidates, judge_real, prepare, read_rows, run_workers, slug, write_rows  # noqa: E402

CANDIDATES: dict[str, dict] = {
    "base": {},  # params.yaml as it is
    "z8": {"z_dim": 8},
    "z32": {"z_dim": 32},
    "beta1.5": {"beta": 1.5},
    "beta0.7": {"beta": 0.7},
    "h400": {"hidden": 400},
    "e16": {"epochs": 16},
    "z8_e16": {"z_dim": 8, "epochs": 16},
    "conv": {"arch": "conv"},
}
KEYS = ("frac_confident", "kl_uniform", "fid", "confidence_mean")


def run_one(name: str, source: str, amp: str, seed: int, data: Path, judge: Path, params: dict, device: str,
            out: Path) -> None:
    from genlab.data.arrays import load_split
    from genlab.evaluate.metrics import evaluate_images
    from genlab.generate import GenerateParams, generate_samples
    from genlab.runtime import resolve_device, seed_everything
    from genlab.train.vae import VaeData, VaeParams, train_vae

    cfg = VaeParams.model_validate({**params["vae"], **CANDIDATES[name], "amp": amp, "recon_every": 10**6})
    gen_cfg = GenerateParams.model_validate(params.get("generate", {}))
    dev = resolve_device(device)
    seed_everything(seed)
    x, y = load_split(data, "train")
    xt, yt = load_split(data, "test")
    t0 = time.perf_counter()
    run = train_vae(cfg, VaeData(x, y, xt, yt, int(y.max()) + 1), seed=seed, device=dev)
    train_s = time.perf_counter() - t0
    samples, _ = generate_samples(run.model.eval(), gen_cfg.n_samples, seed=int(params.get("seed", 0)),
                                  batch_size=gen_cfg.batch_size, device=dev, desc="judge")
    r = evaluate_images(samples, judge, xt, device=dev, kid_subsets=5)
    write_rows(out, [{"candidate": name, "source": slug(source), "amp": amp, "seed": seed, "epochs": cfg.epochs,
                      **{k: round(float(r[k]), 4) for k in KEYS},
                      "test_loss": round(float(run.metrics["vae/test_loss"]), 2), "train_s": round(train_s, 1)}])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", action="append", help="image source(s) (default: synthetic-digits)")
    p.add_argument("--candidate", action="append", help=f"candidate(s) (default: all): {', '.join(CANDIDATES)}")
    p.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="add a candidate")
    p.add_argument("--amp", action="append", choices=["off", "bf16"], help="precision(s) (default: off = fp32)")
    p.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--device", default="auto")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("--cache", default=".genlab/bench", help="prepared data and judges (shared with gan_quality)")
    p.add_argument("--out", default="reports/benchmarks/vae_quality")
    p.add_argument("--list", action="store_true")
    p.add_argument("--worker", nargs=5, metavar=("NAME", "SOURCE", "AMP", "SEED", "TSV"), help=argparse.SUPPRESS)
    args = p.parse_args()
    add_candidates(CANDIDATES, args.set)
    if args.list:
        for n, o in CANDIDATES.items():
            print(f"{n:12s} {o}")
        return 0
    from genlab.runtime import resolve_device

    args.device = str(resolve_device(args.device))
    params = yaml.safe_load(open(args.params))
    cache, out = Path(args.cache), Path(args.out)
    sources = args.source or ["synthetic-digits"]
    if args.worker:
        name, source, amp, seed, tsv = args.worker
        data, judge = prepare(source, cache, params, args.device)
        run_one(name, source, amp, int(seed), data, judge, params, args.device, Path(tsv))
        return 0
    names = args.candidate or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}; --list shows them")
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        data, judge = prepare(source, cache, params, args.device)
        print(f"{source}: real test images {judge_real(data, judge, args.device)}", flush=True)
    parts = out / "parts"
    parts.mkdir(exist_ok=True)
    runs = []
    for name, source, amp, seed in itertools.product(names, sources, args.amp or ["off"], range(args.seeds)):
        tsv = parts / f"{name}__{slug(source)}__{amp}__{seed}.tsv"
        cmd = [sys.executable, __file__, "--worker", name, source, amp, str(seed), str(tsv),
               "--params", args.params, "--device", args.device, "--cache", args.cache,
               *sum((["--set", s] for s in args.set), [])]
        runs.append((cmd, tsv.name))
    failed = run_workers(runs, args.jobs)
    rows = [r for f in sorted(parts.glob("*.tsv")) for r in read_rows(f)]
    write_rows(out / "quality.tsv", rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["candidate"], r["source"], r["amp"]), []).append(r)
    print("candidate source amp seeds | KL mean (max) | frac_confident mean (min) | FID mean | -ELBO | train_s")
    for (c, s, a), rs in sorted(groups.items(), key=lambda kv: statistics.mean(float(r["kl_uniform"]) for r in kv[1])):
        kl = [float(r["kl_uniform"]) for r in rs]
        fc = [float(r["frac_confident"]) for r in rs]
        print(f"{c} {s} {a} {len(rs)} | {statistics.mean(kl):.4f} ({max(kl):.4f}) | {statistics.mean(fc):.4f} "
              f"({min(fc):.4f}) | {statistics.mean(float(r['fid']) for r in rs):.2f} | "
              f"{statistics.mean(float(r['test_loss']) for r in rs):.2f} | "
              f"{statistics.mean(float(r['train_s']) for r in rs):.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

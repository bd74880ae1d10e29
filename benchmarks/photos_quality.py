"""Quality against CPU seconds on the offline photo folder: the candidates for the `photos` preset,
today's dcgan64 defaults and the PyTorch examples' DCGAN, each trained for the same CPU budget.

The folder: ``genlab.data.photo_folder`` crops of scikit-image's sample photographs, 500 at 64 px,
read through the pipeline's ``folder:`` source (450 train / 50 test, one class); real images the
generators never saw, for the judges: 1000 further crops with another seed (same photographs,
other crops). Each run is a subprocess with one thread; its budget is CPU seconds (user + sys of
the process, ``resource.getrusage``), counted from the first training step, so that other load
on a shared machine slows the wall clock but not the budget. A genlab run stops at the first
grid / recalibration point past the budget (every ``sample_every_images``, or every epoch for
the defaults) and keeps the generator of that point; the reference loop checks after each step.
Every run's 1000 samples are judged by ``genlab.evaluate.label_free.judge_label_free`` at 64 px
(32 px samples upsampled bicubically first, so a small generator pays for its blur).

The reference is the loop of the PyTorch examples' DCGAN (``dcgan/main.py``), as
``benchmarks/gan_throughput.py`` mirrors it: 64 px nets with ngf = ndf = 64, Adam lr 2e-4,
beta1 0.5, batch 64, BCE, fp32, a PIL + DataLoader data path, samples drawn as the example
draws them (G in train mode).

    python benchmarks/photos_quality.py all --budget 240 --jobs 2      # everything, then judge, table and plot
    python benchmarks/photos_quality.py run p32-w32-da --budget 240   # one candidate
    python benchmarks/photos_quality.py judge                         # judge every run in the out folder
    python benchmarks/photos_quality.py plot                          # docs/photos_quality.png + the table
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".genlab/photos_quality"  # samples, run records, grids (git-ignored); the table goes to docs/photos.md
FOLDER = ROOT / ".genlab/photo_folder"  # the offline photo folder (data: never committed)
HELDOUT_SEED, N_HELDOUT, N_SAMPLES = 1, 1000, 1000
DA = "color,translation,cutout"

# name -> (image size, gan overrides | "reference"); all 3 channels
CANDIDATES: dict[str, tuple[int, dict | str]] = {
    "pytorch-dcgan": (64, "reference"),
    "dcgan64-defaults": (64, {"arch": "dcgan64"}),
    "p32-w32-da": (32, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": DA, "lr": 2e-4, "batch_size": 32}),
    "p32-w32-noda": (32, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": "", "lr": 2e-4, "batch_size": 32}),
    "p32-w32-da-lr6e-4": (32, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": DA, "lr": 6e-4,
                               "batch_size": 32}),
    "p32-w32-da-lr1e-3": (32, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": DA, "lr": 1e-3,
                               "batch_size": 32}),
    "p32-w32-da-lr6e-4-b64": (32, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": DA, "lr": 6e-4,
                                   "batch_size": 64}),
    "p32-w64-da-b64": (32, {"arch": "dcgan64", "ngf": 64, "ndf": 64, "diffaugment": DA, "lr": 2e-4, "batch_size": 64}),
    "p64-w32-da": (64, {"arch": "dcgan64", "ngf": 32, "ndf": 32, "diffaugment": DA, "lr": 2e-4, "batch_size": 32}),
}
SAMPLE_EVERY_IMAGES = 2000  # candidates: grids, recalibration and the budget check every this many images


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ensure_folder() -> None:
    from genlab.data.photo_folder import make_photo_folder

    if not FOLDER.is_dir() or len(list(FOLDER.glob("*.png"))) < 500:
        make_photo_folder(FOLDER, n=500, size=64, seed=0)


def load_data(size: int):
    """(train uint8 (N, 3, size, size), held-out uint8 (1000, 3, 64, 64)) through the pipeline's folder source."""
    import numpy as np

    from genlab.data.images import PrepareImagesParams, load_source
    from genlab.data.photo_folder import photo_crops

    ensure_folder()
    s = load_source(PrepareImagesParams(source=f"folder:{FOLDER}", image_size=size, channels=3), seed=0)
    heldout = np.ascontiguousarray(photo_crops(N_HELDOUT, 64, seed=HELDOUT_SEED).transpose(0, 3, 1, 2))
    return s.train[0], heldout


class BudgetSpent(Exception):
    pass


def run_genlab(size: int, overrides: dict, budget: float, images, seed: int = 0):
    import copy

    import torch
    import yaml

    from genlab.train.gan import GanParams, train_gan

    from genlab.models.gan import APPLIES

    section = yaml.safe_load((ROOT / "params.yaml").read_text())["gan"]
    section = {k: v for k, v in section.items() if APPLIES.get(k) != ("mnist28",)}  # keys dcgan64 does not take
    section.update(overrides)
    section.update(images=10**8, log_every=10**6, checkpoint_every=10**9)
    if overrides != {"arch": "dcgan64"}:  # the defaults keep their per-epoch work
        section["sample_every_images"] = SAMPLE_EVERY_IMAGES
    cfg = GanParams.model_validate(section)
    state = {"gen": None, "images": 0}
    batch = min(cfg.batch_size, len(images))
    t0 = cpu_seconds()

    def hook(epoch: int, sampled, trained) -> None:
        state["gen"], state["epoch"] = copy.deepcopy(sampled), epoch
        state["cpu"] = cpu_seconds() - t0
        if state["cpu"] >= budget:
            raise BudgetSpent

    torch.manual_seed(seed)
    try:
        train_gan(cfg, images, None, seed=seed, device="cpu", on_epoch_end=hook)
    except BudgetSpent:
        pass
    spe = len(images) // batch
    gen = state["gen"].eval()
    z = torch.randn(N_SAMPLES, gen.z_dim, generator=torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():
        x = torch.cat([gen(z[i: i + 250]).float() for i in range(0, N_SAMPLES, 250)])
    return x, {"cpu_s": state["cpu"], "images_seen": state["epoch"] * spe * batch, "steps": state["epoch"] * spe,
               "gan": {k: section[k] for k in ("arch", "ngf", "ndf", "lr", "batch_size", "diffaugment", "ema", "amp")}}


def run_reference(budget: float, images, seed: int = 0):
    """The PyTorch examples' DCGAN loop (gan_throughput.reference_loop's), stopped by CPU seconds."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gan_throughput import PilDataset

    from genlab.models.gan import build as gan_build
    from genlab.train.gan import GanParams

    cfg = GanParams(arch="dcgan64", lr=2e-4, beta1=0.5, batch_size=64, ngf=64, ndf=64)
    torch.manual_seed(seed)
    net_g, net_d = gan_build(cfg.model_config_for_data(3, 64, None))
    crit = nn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    b = cfg.batch_size
    labels = torch.zeros(len(images), dtype=torch.long).numpy()
    loader = DataLoader(PilDataset(images, labels), batch_size=b, shuffle=True, drop_last=True)
    t0, steps = cpu_seconds(), 0
    while cpu_seconds() - t0 < budget:
        for real, _ in loader:
            net_d.zero_grad()
            err_real = crit(net_d(real), torch.full((b,), 1.0))
            err_real.backward()
            fake = net_g(torch.randn(b, cfg.z_dim))
            err_fake = crit(net_d(fake.detach()), torch.full((b,), 0.0))
            err_fake.backward()
            opt_d.step()
            net_g.zero_grad()
            err_g = crit(net_d(fake), torch.full((b,), 1.0))
            err_g.backward()
            opt_g.step()
            _ = (err_real.item(), err_fake.item(), err_g.item())
            steps += 1
            if cpu_seconds() - t0 >= budget:
                break
    cpu = cpu_seconds() - t0
    z = torch.randn(N_SAMPLES, cfg.z_dim, generator=torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():  # as the example draws its samples: G in train mode, batches of 64
        x = torch.cat([net_g(z[i: i + 64]) for i in range(0, N_SAMPLES, 64)])
    return x, {"cpu_s": cpu, "images_seen": steps * b, "steps": steps,
               "gan": {"arch": "dcgan64", "ngf": 64, "ndf": 64, "lr": 2e-4, "batch_size": 64, "diffaugment": "",
                       "ema": 0.0, "amp": "off (fp32)"}}


def cmd_run(args) -> int:
    import numpy as np
    import torch

    from genlab.data.arrays import to_uint8

    torch.set_num_threads(args.threads)
    size, spec = CANDIDATES[args.name]
    images, _ = load_data(size)
    wall0 = time.perf_counter()
    if spec == "reference":
        x, info = run_reference(args.budget, images)
    else:
        x, info = run_genlab(size, spec, args.budget, images)
    wall = time.perf_counter() - wall0
    if x.shape[-1] != 64:  # judged at the folder's 64 px
        x = torch.nn.functional.interpolate(x.float(), size=(64, 64), mode="bicubic", align_corners=False)
    samples = to_uint8(x.float().clamp(-1, 1).numpy())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{args.name}.npy", samples)
    info.update(name=args.name, size=size, budget_cpu_s=args.budget, wall_s=round(wall, 1), threads=args.threads,
                n_train=len(images))
    (out / f"{args.name}.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


def cmd_judge(args) -> int:
    import numpy as np
    import torch

    from genlab.evaluate.label_free import LabelFreeParams, judge_label_free

    torch.set_num_threads(args.threads)
    train64, heldout = load_data(64)
    cfg = LabelFreeParams(c2st_n=1000, pr_n=1000, mem_n=500)
    out = Path(args.out)
    for f in sorted(out.glob("*.npy")):
        info_path = f.with_suffix(".json")
        info = json.loads(info_path.read_text())
        if "judge" in info and not args.again:
            continue
        t0 = cpu_seconds()
        info["judge"] = judge_label_free(np.load(f), train64, heldout, seed=0, device="cpu", cfg=cfg)
        info["judge_cpu_s"] = round(cpu_seconds() - t0, 1)
        info_path.write_text(json.dumps(info, indent=1))
        print(f.stem, info["judge"])
    if args.real or not (out / "real.json").exists():  # the reference row: held-out real against real
        from genlab.data.photo_folder import photo_crops

        other = np.ascontiguousarray(photo_crops(N_SAMPLES, 64, seed=HELDOUT_SEED + 1).transpose(0, 3, 1, 2))
        j = judge_label_free(other, train64, heldout, seed=0, device="cpu", cfg=cfg)
        (out / "real.json").write_text(json.dumps({"name": "real (other crops)", "judge": j}, indent=1))
    return 0


def cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from genlab.grids import make_grid, save_image

    out = Path(args.out)
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "real"]
    rows = [r for r in rows if "judge" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        j = r["judge"]
        for ax, key in zip(axes, ("c2st_acc", "recall")):
            ax.scatter(r["images_seen"], j[key], s=40)
            ax.annotate(r["name"], (r["images_seen"], j[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    real = json.loads((out / "real.json").read_text())["judge"] if (out / "real.json").exists() else None
    for ax, key, label in zip(axes, ("c2st_acc", "recall"), ("two-sample accuracy (0.5 best)", "recall (1 best)")):
        if real:
            ax.axhline(real[key], color="grey", ls="--", lw=0.8, label="real held-out crops")
            ax.legend(fontsize=7)
        ax.set_xlabel("images seen within the budget (log)")
        ax.set_xscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    budget = max(r["budget_cpu_s"] for r in rows) if rows else 0
    fig.suptitle(f"photo folder (450 train crops of skimage.data photos): quality after {budget:.0f} CPU seconds each")
    fig.tight_layout()
    fig.savefig(ROOT / "docs/photos_quality.png", dpi=110)
    print("| run | px | CPU s | wall s | images seen | two-sample acc | precision | recall | memorisation |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["judge"]["c2st_acc"]):
        j = r["judge"]
        print(f"| {r['name']} | {r['size']} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['images_seen']} | "
              f"{j['c2st_acc']:.3f} | {j['precision']:.3f} | {j['recall']:.3f} | {j['memorisation']:.3f} |")
    if real:
        print(f"| real (other crops) | 64 | - | - | - | {real['c2st_acc']:.3f} | {real['precision']:.3f} | "
              f"{real['recall']:.3f} | {real['memorisation']:.3f} |")
    for r in rows:  # a grid of each run's first 64 samples
        save_image(make_grid(np.load(out / f"{r['name']}.npy")[:64], pad_value=0), out / f"{r['name']}.png")
    return 0


def cmd_all(args) -> int:
    names = args.names or list(CANDIDATES)
    ensure_folder()  # once, before the runs that read it start
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    pending = list(names)
    procs: list[subprocess.Popen] = []
    while pending or procs:
        while pending and len(procs) < args.jobs:
            name = pending.pop(0)
            procs.append(subprocess.Popen([sys.executable, __file__, "run", name, "--budget", str(args.budget),
                                           "--out", args.out, "--threads", str(args.threads)], env=env))
        time.sleep(2)
        procs = [p for p in procs if p.poll() is None]
    cmd_judge(args)
    return cmd_plot(args)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "judge", "plot", "all"):
        s = sub.add_parser(name)
        s.add_argument("--out", default=str(OUT))
        s.add_argument("--threads", type=int, default=1)
        if name == "run":
            s.add_argument("name", choices=list(CANDIDATES))
        if name in ("run", "all"):
            s.add_argument("--budget", type=float, default=240.0, help="training CPU seconds per run")
        if name == "all":
            s.add_argument("--jobs", type=int, default=1, help="runs at a time")
            s.add_argument("names", nargs="*", help="default: every candidate")
        if name in ("judge", "all"):
            s.add_argument("--again", action="store_true", help="judge runs that were judged already")
            s.add_argument("--real", action="store_true", help="judge the real reference row again")
    args = p.parse_args()
    return {"run": cmd_run, "judge": cmd_judge, "plot": cmd_plot, "all": cmd_all}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())

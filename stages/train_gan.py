"""Stage train_gan: a DCGAN on data/images -> models/gan/, metrics/gan.json, plots/gan/, reports/gan/."""

from __future__ import annotations

import sys
from pathlib import Path

from genlab.data.arrays import load_split
from genlab.params import ParamsError, load_params_or_exit
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_tsv
from genlab.tracking import data_fingerprint, log_stage
from genlab.render.grids import save_gif
from genlab.train.gan import GanParams, save_generator_checkpoint, train_gan

DATA = Path("data/images")
MODEL_DIR = Path("models/gan")
RESUME = Path("models/gan_resume/state.pt")  # a `persist: true` out: survives a killed run
REPORTS = Path("reports/gan")


def main() -> int:
    common, cfg = load_params_or_exit("gan", GanParams)
    seed_everything(common.seed)
    images, labels = load_split(DATA, "train")
    device = resolve_device(common.device)
    try:
        result = train_gan(cfg, images, labels, seed=common.seed, device=device,
                           resume_path=RESUME, grid_dir=REPORTS)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_generator_checkpoint(result, MODEL_DIR / "checkpoint.pt")
    write_tsv("plots/gan/losses.tsv", result.history)
    write_json("metrics/gan.json", result.metrics)
    save_gif([g for _, g in result.grids], REPORTS / "progress.gif", fps=2, scale=2)
    log(f"gan: {result.metrics['gan/img_per_s']:.0f} img/s, final d_loss "
        f"{result.metrics['gan/d_loss_real'] + result.metrics['gan/d_loss_fake']:.3f}, g_loss {result.metrics['gan/g_loss']:.3f}")
    log_stage("train_gan", common, cfg, metrics=result.metrics, history={"losses": result.history},
              artifacts=[REPORTS], models={"generator": result.generator},
              tags={"arch": cfg.arch, "loss": cfg.loss, "resumed_from_step": result.resumed_from_step,
                    "device": device.type, "data_sha256": data_fingerprint(f"{DATA}/meta.json")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage train_vae: train the VAE of params.yaml `vae` on data/images.

Outputs: models/vae/checkpoint.pt (self-describing; `genlab.models.vae.load_vae`),
models/vae_resume/resume.pt (persistent, resumed when its config matches), metrics/vae.json,
plots/vae/loss.tsv, reports/vae/ (reconstructions, samples, manifold, latent scatter, class grid).
"""

from __future__ import annotations

import sys
from pathlib import Path

from genlab.checkpoint import save_checkpoint
from genlab.data.arrays import load_meta, load_split
from genlab.params import load_params_or_exit
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_tsv
from genlab.tracking import data_fingerprint, log_stage
from genlab.train.vae import TrainingDiverged, VaeData, VaeParams, train_vae, write_figures

DATA = Path("data/images")
MODEL_DIR, RESUME, REPORTS = Path("models/vae"), Path("models/vae_resume/resume.pt"), Path("reports/vae")


def main() -> int:
    common, cfg = load_params_or_exit("vae", VaeParams)
    seed_everything(common.seed)
    train_x, train_y = load_split(DATA, "train")
    test_x, test_y = load_split(DATA, "test")
    meta = load_meta(DATA) if (DATA / "meta.json").exists() else {}
    class_names = meta.get("class_names") or None
    num_classes = max(len(class_names or []), int(max(train_y.max(), test_y.max())) + 1)
    data = VaeData(train_x, train_y, test_x, test_y, num_classes, data_fingerprint(DATA / "meta.json"))
    device = resolve_device(common.device)
    try:
        run = train_vae(cfg, data, seed=common.seed, device=device,
                        resume_path=RESUME, reports_dir=REPORTS)
    except (TrainingDiverged, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    save_checkpoint(MODEL_DIR / "checkpoint.pt", kind="vae", **run.checkpoint)
    figures = run.figures + write_figures(run.model, data, REPORTS, common.seed, class_names)
    write_json("metrics/vae.json", run.metrics)
    write_tsv("plots/vae/loss.tsv", run.history)
    log(f"vae: test negative ELBO {run.metrics['vae/test_loss']:.2f} nats/image "
        f"({run.wall_s:.0f} s, resumed from epoch {run.resumed_from})")
    log_stage("train_vae", common, cfg, metrics=run.metrics,
              history={"loss": [{"step": r["epoch"], **{f"vae/{k}": v for k, v in r.items() if k != "epoch"}}
                             for r in run.history]},
              artifacts=[*figures, "plots/vae/loss.tsv"], models={"vae": run.model},
              tags={"data_sha256": data.fingerprint, "wall_s": f"{run.wall_s:.1f}", "device": device.type})
    return 0


if __name__ == "__main__":
    sys.exit(main())

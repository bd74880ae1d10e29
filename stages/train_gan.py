"""Stage train_gan: a DCGAN on data/images -> models/gan/, metrics/gan.json, plots/gan/, reports/gan/
(library: genlab.train.gan)."""

from pathlib import Path

from genlab.train.batch import fit_batch_size
from genlab.data.arrays import has_labels, load_meta, load_split
from genlab.grids import save_gif, save_mp4
from genlab.params import ParamsError
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_tsv
from genlab.distributed import is_main_process
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import LiveCurve, data_fingerprint, live_stage_run, log_stage
from genlab.train.gan import GanParams, save_generator_checkpoint, train_gan

DATA = Path("data/images")
CHECKPOINT = Path("models/gan/checkpoint.pt")
RESUME = Path(".genlab/resume/train_gan.pt")  # outside DVC's outputs: never hashed, survives a killed run
REPORTS = Path("reports/gan")
LOSSES = Path("plots/gan/losses.tsv")


def main() -> int:
    common, cfg = load_stage_params("gan", GanParams)
    seed_everything(common.seed)
    meta = load_meta(DATA)
    if cfg.conditional and not has_labels(meta):
        raise ParamsError(f"params.yaml: gan.conditional=true needs labels, but {meta.get('source')} has none: "
                          f"set gan.conditional=false")
    images, labels = load_split(DATA, "train")
    cfg = fit_batch_size(cfg, min(len(images), cfg.limit or len(images)), "gan")
    device = resolve_device(common.device)
    # the MLflow run is open while G and D train: losses.tsv and the run's curves grow live
    with live_stage_run("train_gan", common, cfg) as run:
        result = train_gan(cfg, images, labels, seed=common.seed, device=device, resume_path=RESUME, grid_dir=REPORTS,
                           history_sinks={"step": LiveCurve(LOSSES, run, name="losses")})
        if not is_main_process():
            return 0  # under DDP, rank 0 writes the outputs
        save_generator_checkpoint(result, CHECKPOINT, meta.get("class_names"))
        write_tsv(LOSSES, result.history)
        write_json("metrics/gan.json", result.metrics)
        save_gif([g for _, g in result.grids], REPORTS / "progress.gif", fps=2, scale=2)
        if result.frames:  # gan.video_every > 0
            save_mp4([f for _, f in result.frames], REPORTS / "progress.mp4", fps=cfg.video_fps)
        log(f"gan: {result.metrics['gan/img_per_s']:.0f} img/s, final d_loss "
            f"{result.metrics['gan/d_loss_real'] + result.metrics['gan/d_loss_fake']:.3f}, "
            f"g_loss {result.metrics['gan/g_loss']:.3f}")
        log_stage("train_gan", common, cfg, metrics=result.metrics, history={"losses": result.history},
                  artifacts=[REPORTS], models={"generator": CHECKPOINT}, run=run,
                  datasets={"train": (images, labels)}, data_dir=DATA,
                  tags={"arch": cfg.arch, "loss": cfg.loss, "resumed_from_step": result.resumed_from_step,
                        "device": device.type, "data_sha256": data_fingerprint(DATA / "meta.json")})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main, distributed=True))  # distributed.nproc > 1: torchrun

"""Stage train_vae: the VAE of params.yaml `vae` on data/images -> models/vae/checkpoint.pt,
metrics/vae.json, plots/vae/loss.tsv, reports/vae/ (library: genlab.train.vae, figures:
genlab.render.vae_figures)."""

from pathlib import Path

from genlab.train.batch import fit_batch_size
from genlab.data.arrays import has_labels, load_meta, load_split
from genlab.models import vae as vae_model
from genlab.params import ParamsError
from genlab.render.vae_figures import reconstruction_figure, write_figures
from genlab.runtime import log, resolve_device, seed_everything, write_json, write_tsv
from genlab.distributed import is_main_process
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import LiveCurve, data_fingerprint, live_stage_run, log_stage
from genlab.train.vae import VaeData, VaeParams, train_vae

DATA = Path("data/images")
CHECKPOINT = Path("models/vae/checkpoint.pt")
RESUME = Path(".genlab/resume/train_vae.pt")  # outside DVC's outputs: never hashed, survives a killed run
REPORTS = Path("reports/vae")
LOSS = Path("plots/vae/loss.tsv")


def main() -> int:
    common, cfg = load_stage_params("vae", VaeParams)
    seed_everything(common.seed)
    meta = load_meta(DATA)
    if cfg.conditional and not has_labels(meta):
        raise ParamsError(f"params.yaml: vae.conditional=true needs labels, but {meta.get('source')} has none: "
                          f"set vae.conditional=false")
    train_x, train_y = load_split(DATA, "train")
    test_x, test_y = load_split(DATA, "test")
    cfg = fit_batch_size(cfg, len(train_x), "vae")
    class_names = meta.get("class_names") or None
    num_classes = max(len(class_names or []), int(max(train_y.max(), test_y.max())) + 1)
    data = VaeData(train_x, train_y, test_x, test_y, num_classes, data_fingerprint(DATA / "meta.json"))
    device = resolve_device(common.device)

    def draw(epoch: int, images, reconstructions) -> Path:
        return reconstruction_figure(images, reconstructions, REPORTS / f"recon_epoch{epoch:03d}.png", f"epoch {epoch}")

    # the MLflow run is open while the VAE trains: loss.tsv and the run's curves grow each epoch
    with live_stage_run("train_vae", common, cfg) as mlrun:
        run = train_vae(cfg, data, seed=common.seed, device=device, resume_path=RESUME, on_reconstruction=draw,
                        history_sinks={"epoch": LiveCurve(LOSS, mlrun, name="loss")})
        if not is_main_process():
            return 0  # under DDP, rank 0 writes the outputs
        vae_model.save(CHECKPOINT, run.model, epoch=int(run.metrics["vae/epochs"]), step=int(run.metrics["vae/steps"]),
                       metrics=run.metrics,
                       **({"class_names": list(class_names)} if cfg.conditional and class_names else {}))
        figures = run.figures + write_figures(run.model, test_x, test_y, REPORTS, common.seed, class_names)
        write_json("metrics/vae.json", run.metrics)
        write_tsv(LOSS, run.history)
        log(f"vae: test negative ELBO {run.metrics['vae/test_loss']:.2f} nats/image "
            f"({run.wall_s:.0f} s of training" + (f", resumed from step {run.resumed_from})" if run.resumed_from else ")"))
        log_stage("train_vae", common, cfg, metrics=run.metrics, history={"loss": run.history, "steps": run.steps},
                  artifacts=figures, models={"vae": CHECKPOINT}, run=mlrun,
                  datasets={"train": (train_x, train_y), "test": (test_x, test_y)}, data_dir=DATA,
                  tags={"arch": cfg.arch, "device": device.type, "resumed_from_step": run.resumed_from,
                        "data_sha256": data_fingerprint(DATA / "meta.json")})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main, distributed=True))  # distributed.nproc > 1: torchrun

"""Stage interpret: what the trained GAN's discriminator learned (Grad-CAM, guided backprop, a
linear probe on its features) and latent vector arithmetic for the GAN and the VAE
(library: genlab.interpret.analysis)."""

from pathlib import Path

from genlab.generate import default_checkpoint
from genlab.interpret.analysis import InterpretParams, flat_metrics, interpret
from genlab.runtime import log, resolve_device, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

DATA = Path("data/images")
REPORTS = Path("reports/interpret")


def main() -> int:
    common, cfg = load_stage_params("interpret", InterpretParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    metrics = interpret(cfg, seed=common.seed, device=device, gan_path=default_checkpoint("gan"), data_dir=DATA,
                        classifier_path=Path("models/classifier/checkpoint.pt"), vae_path=default_checkpoint("vae"),
                        out_dir=REPORTS)
    write_json("metrics/interpret.json", metrics)
    probe = metrics["probe"]
    if probe:
        log("interpret: probe accuracy " + "; ".join(
            f"{row} " + " ".join(f"{k}:{v:.3f}" for k, v in accs.items()) for row, accs in probe.items()))
    log_stage("interpret", common, cfg, metrics=flat_metrics(metrics), artifacts=sorted(REPORTS.glob("*")),
              tags={"device": device.type, "data_sha256": data_fingerprint(DATA / "meta.json")})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

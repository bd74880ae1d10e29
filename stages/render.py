"""Stage render: latent traversals (grid + GIF) for GAN and VAE, the VAE manifold, and the GAN
vs VAE figure (library: genlab.render.figures.render_all)."""

from pathlib import Path

from genlab.generate import GENERATORS, default_checkpoint
from genlab.render.figures import RenderParams, render_all
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import log_stage

OUT = Path("reports/render")


def main() -> int:
    common, cfg = load_stage_params("render", RenderParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    stats = render_all(cfg, seed=common.seed, device=device, out_dir=OUT, data_dir=Path("data/images"),
                       models={name: default_checkpoint(name) for name in GENERATORS},
                       samples={name: Path("data/generated") / f"{name}.npy" for name in GENERATORS})
    write_json("metrics/render.json", stats)
    log_stage("render", common, cfg, metrics=stats, tags={"device": device.type}, artifacts=sorted(OUT.glob("*")))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

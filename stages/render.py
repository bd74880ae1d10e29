"""Stage render: latent traversals (grid + GIF) for GAN and VAE, and the GAN vs VAE figure."""

from pathlib import Path

import numpy as np

from genlab.data.arrays import load_split
from genlab.generate import GENERATORS, default_checkpoint, load_generator
from genlab.params import load_params_or_exit
from genlab.render.figures import RenderParams, comparison_figure, render_traversal
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.tracking import log_stage
from genlab.train.vae import plot_manifold


def main() -> None:
    common, cfg = load_params_or_exit("render", RenderParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    out = Path("reports/render")
    test_images, test_labels = load_split("data/images", "test")
    stats = {}
    for name in GENERATORS:
        model = load_generator(name, default_checkpoint(name), device)
        encoded = name == "vae"  # the VAE walks between encoded test images, the GAN between prior draws
        stats.update(render_traversal(name, model, cfg, seed=common.seed, device=device, out_dir=out,
                                      real=test_images if encoded else None,
                                      real_labels=test_labels if encoded else None))
        if name == "vae" and model.z_dim == 2:  # the 2-D manifold, collected beside the traversals
            plot_manifold(model, out / "vae_manifold.png")
    samples = {name: np.load(Path("data/generated") / f"{name}.npy") for name in GENERATORS}
    comparison_figure(samples, out / "gan_vs_vae.png", cfg.compare_n)
    write_json("metrics/render.json", stats)
    log_stage("render", common, cfg, metrics=stats, tags={"device": device.type}, artifacts=sorted(out.glob("*")))


if __name__ == "__main__":
    main()

"""`genlab traverse`: a latent traversal grid and GIF from a trained GAN or VAE."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "latent traversal: genlab traverse --model vae --points 10 --steps 100 --out traversal.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="gan", help="gan | vae | a checkpoint path")
    p.add_argument("--kind", choices=["gan", "vae"], help="the model kind when --model is a path")
    p.add_argument("--points", type=int, default=10, help="latent points to visit (default 10)")
    p.add_argument("--steps", type=int, default=100, help="images between consecutive points (default 100)")
    p.add_argument("--interpolation", choices=["linear", "slerp"], default="linear")
    p.add_argument("--data", default="data/images", help="prepared images; a VAE traverses encoded test images")
    p.add_argument("--out", default="traversal.png", help="output grid; a .gif of the same path is written beside it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    from genlab.data.arrays import load_split
    from genlab.generate import load_generator
    from genlab.cli.sample import resolve_model
    from genlab.render.figures import RenderParams, render_traversal
    from genlab.runtime import resolve_device

    cfg = RenderParams(points=args.points, steps=args.steps, interpolation=args.interpolation)
    kind, path = resolve_model(args.model, args.kind)
    device = resolve_device(args.device)
    model = load_generator(kind, path, device)
    real = labels = None
    if kind == "vae" and Path(args.data).is_dir():
        real, labels = load_split(args.data, "test")
    out = Path(args.out)
    tmp_name = "traverse_cli"
    render_traversal(tmp_name, model, cfg, seed=args.seed, device=device, out_dir=out.parent,
                     real=real, real_labels=labels)
    (out.parent / f"{tmp_name}_traversal.png").replace(out)
    (out.parent / f"{tmp_name}_traversal.gif").replace(out.with_suffix(".gif"))
    print(out)
    print(out.with_suffix(".gif"))
    return 0

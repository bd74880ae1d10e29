"""`genlab sample`: a grid (and optionally the .npy) of samples from a trained GAN or VAE."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "sample images from a trained generator: genlab sample --model gan --n 64 --out grid.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="gan", help="gan | vae | a checkpoint path (models/<gan|vae>/checkpoint.pt)")
    p.add_argument("--kind", choices=["gan", "vae"], help="the model kind when --model is a path (default: guessed from the path)")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="samples.png", help="output .png grid, or .npy for the uint8 (N, C, H, W) array")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def resolve_model(model: str, kind: str | None) -> tuple[str, Path]:
    from genlab.generate import GENERATORS, default_checkpoint

    if model in GENERATORS:
        return model, default_checkpoint(model)
    path = Path(model)
    kind = kind or next((g for g in GENERATORS if g in path.as_posix().lower()), None)
    if kind is None:
        raise ValueError(f"cannot tell whether {path} is a gan or a vae checkpoint: pass --kind gan|vae")
    return kind, path


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.generate import MAX_SAMPLES, generate_samples, load_generator
    from genlab.grids import save_grid
    from genlab.runtime import resolve_device, write_npy

    if args.n < 1:
        raise ValueError(f"--n: must be >= 1, got {args.n}")
    if args.n > MAX_SAMPLES:  # the generate stage's cap (generate.n_samples), in its words
        raise ValueError(f"--n: must be <= {MAX_SAMPLES}, got {args.n}")
    kind, path = resolve_model(args.model, args.kind)
    device = resolve_device(args.device)
    model = load_generator(kind, path, device)
    images, labels = generate_samples(model, args.n, seed=args.seed, device=device)
    out = Path(args.out)
    if out.suffix == ".npy":
        write_npy(out, images)
        if labels is not None:
            write_npy(out.with_name(out.stem + "_labels.npy"), labels.astype(np.int64))
    else:
        save_grid(images, out)
    print(out)
    return 0

"""`genlab photos`: write the offline photo-like folder (:mod:`genlab.data.photo_folder`)."""

from __future__ import annotations

import argparse

HELP = "write an offline photo-like folder of PNGs (crops of scikit-image's sample photos, no labels): genlab photos data/photos"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", help="folder to write (created; e.g. data/photos, git-ignored)")
    p.add_argument("--n", type=int, default=500, help="number of images (default 500)")
    p.add_argument("--size", type=int, default=64, help="side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="crop seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from genlab.data.photo_folder import make_photo_folder

    out = make_photo_folder(args.out_dir, n=args.n, size=args.size, seed=args.seed)
    print(f"genlab photos: {args.n} images of {args.size}x{args.size} px in {out}")
    return 0

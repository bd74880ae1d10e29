"""What train_gan's progress MP4 costs: one frame (the fixed noise through G in train mode) and
the encoding of all frames by imageio-ffmpeg's ffmpeg, in wall and CPU seconds (this process's
user+sys; ffmpeg's own, a child process, from RUSAGE_CHILDREN).

    python benchmarks/progress_video.py --arch dcgan64 --size 64 --channels 3 --frames 60
    python benchmarks/progress_video.py --arch mnist28 --size 28 --channels 1 --frames 60
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from genlab.grids import save_mp4
from genlab.models import gan
from genlab.train.gan import sample_grid_as_trained


def cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="dcgan64")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=64)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--fps", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    g, _ = gan.build(gan.Config(arch=args.arch, channels=args.channels, image_size=args.size))
    z = torch.randn(args.n_samples, g.z_dim)
    sample_grid_as_trained(g, z, None)  # warm-up
    t0, c0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    frames = [sample_grid_as_trained(g, z + 0.01 * i, None) for i in range(args.frames)]
    frame_wall, frame_cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - c0
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0, k0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
        path = save_mp4(frames, Path(tmp) / "progress.mp4", fps=args.fps)
        enc_wall = time.perf_counter() - t0
        enc_cpu = cpu_seconds(resource.RUSAGE_SELF) - c0 + cpu_seconds(resource.RUSAGE_CHILDREN) - k0
        size_kb = path.stat().st_size / 1024
    h, w, _ = frames[0].shape
    print(f"{args.arch} {args.channels}x{args.size}px, {args.n_samples} samples per {w}x{h} grid (MP4 at 2x), "
          f"{args.frames} frames: one frame {frame_wall / args.frames * 1000:.1f} ms wall / "
          f"{frame_cpu / args.frames * 1000:.1f} ms CPU; encoding {enc_wall:.2f} s wall / {enc_cpu:.2f} s CPU; "
          f"{size_kb:.0f} KiB")


if __name__ == "__main__":
    main()

"""The default GAN's img/s under each OpenMP wait policy, on an idle machine and beside busy cores.

Each (policy, round) trains ``gan`` of params.yaml for --steps steps in a fresh process (the
policy must be in the environment before torch loads libgomp); rounds alternate policies so
that drifting load hits all alike; medians are reported. ``--busy N`` starts N pure-Python
busy loops first (another job on the machine). This is the evidence behind the wait policy
that ``import genlab`` sets (src/genlab/__init__.py).

    python benchmarks/omp_wait.py                       # idle machine
    python benchmarks/omp_wait.py --busy 1              # one core taken by something else
    GENLAB_FP32=1 python benchmarks/omp_wait.py --data data/images
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

POLICIES = {
    "genlab (3,000 spins)": {},
    "libgomp default (300,000 spins)": {"GOMP_SPINCOUNT": "300000"},
    "passive (sleep at once)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one thread": {"OMP_NUM_THREADS": "1"},
}

CHILD = """
import sys, numpy as np, yaml
import genlab
from genlab.train.gan import GanParams, train_gan
steps, data = int(sys.argv[1]), sys.argv[2]
section = dict(yaml.safe_load(open("params.yaml"))["gan"])
cfg = GanParams.model_validate({**section, "epochs": 1, "limit": None, "sample_every": 10**6, "log_every": 10**6})
n = steps * cfg.batch_size
if data:
    from genlab.data.arrays import load_split
    images, labels = load_split(data, "train")
    images, labels = images[:n], labels[:n]
else:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)
train_gan(cfg, images[: 4 * cfg.batch_size], labels, seed=0)  # warm-up
print(train_gan(cfg, images, labels, seed=0).metrics["gan/img_per_s"])
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, default=0, help="busy-loop processes running beside the GAN")
    p.add_argument("--data", default="", help="a prepared data folder (default: random images)")
    args = p.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    results: dict[str, list[float]] = {k: [] for k in POLICIES}
    try:
        for r in range(args.rounds):
            for name, env in POLICIES.items():
                out = subprocess.run([sys.executable, "-c", CHILD, str(args.steps), args.data], env={**base, **env},
                                     capture_output=True, text=True, check=True).stdout.split()
                results[name].append(float(out[-1]))
                print(f"round {r + 1}  {name:34s} {results[name][-1]:8.1f} img/s", flush=True)
    finally:
        for b in burners:
            b.kill()
    print(f"median over {args.rounds} rounds, {args.busy} busy core(s) beside, {os.cpu_count()} CPUs:")
    for name, vals in results.items():
        print(f"  {name:34s} {statistics.median(vals):8.1f} img/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

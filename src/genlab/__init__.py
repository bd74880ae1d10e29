"""genlab: a reproducible lab for classic generative models."""

import os

# How torch's OpenMP threads (libgomp) wait for work: spin briefly, then sleep. Must be set before
# torch starts its OpenMP runtime, hence here: every stage imports genlab first. Measured with
# benchmarks/omp_wait.py (the default GAN, fp32, 2 threads, 2-core Zen 5):
#   idle machine:         libgomp's default (300,000 spins) ~2,000 img/s, 3,000 spins ~2,000, sleeping at once
#                         (OMP_WAIT_POLICY=PASSIVE) ~1,480: each of the many small convolutions pays a wake-up;
#   one busy core beside: default ~540, 3,000 spins ~650, PASSIVE ~900, one thread ~1,200.
# A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins (PASSIVE suits a shared machine); parallel
# workers are better served by OMP_NUM_THREADS=1 each. The wait policy changes no result.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "3000"

__version__ = "0.1.0"

"""genlab: a reproducible lab for classic generative models."""

import os

# How torch's OpenMP threads (libgomp) wait for work: spin briefly, then sleep. Must be set before
# torch starts its OpenMP runtime, hence here: every stage imports genlab first. Why 3,000 spins:
# on an idle machine each of the many small convolutions would pay a wake-up if threads slept at
# once, while libgomp's default 300,000 spins starve other jobs on a shared machine
# (benchmarks/omp_wait.py; measurements in docs/speed.md).
# A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins (PASSIVE suits a shared machine); parallel
# workers are better served by OMP_NUM_THREADS=1 each. The wait policy changes no result.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "3000"

__version__ = "0.1.0"

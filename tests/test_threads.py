"""genlab's OpenMP wait policy: idle threads spin briefly, then sleep, unless the user chose otherwise."""

import os
import subprocess
import sys

CODE = "import genlab, os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"


def _seen_by_a_stage(**env_vars: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_vars)
    # stages import genlab before torch, so libgomp starts with what genlab set
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_genlab_bounds_the_openmp_spin():
    # sleeping at once cost 25% of the GAN's speed on an idle 2-core CPU, spinning 300,000 times
    # (libgomp's default) halved it beside one busy core: benchmarks/omp_wait.py
    assert _seen_by_a_stage() == "None 3000"


def test_a_users_own_wait_policy_is_kept():
    assert _seen_by_a_stage(OMP_WAIT_POLICY="PASSIVE") == "PASSIVE None"
    assert _seen_by_a_stage(GOMP_SPINCOUNT="100") == "None 100"

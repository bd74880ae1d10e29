#!/usr/bin/env bash
# The DDP loop against the per-parameter all_reduce hook it replaced (commit 47c2c93, checked out
# as a worktree), both at distributed.nproc 2 (gloo), fp32, on the tiny GAN of tests/tiny_params.yaml
# over 2048 digits at batch 64 (32 steps); prints each run's gan/img_per_s (training steps only),
# wall and CPU seconds, then the largest weight difference of the two generators and discriminators.
# Usage: bash benchmarks/ddp_vs_hook.sh   (from the repository root, its venv on PATH)
set -euo pipefail
NEW=$(pwd); OLD=$(mktemp -d)/old; WORK=$(mktemp -d)
git worktree add -q --detach "$OLD" 47c2c93
export OMP_NUM_THREADS=1 GENLAB_FP32=1 GENLAB_PROGRESS=0
(cd tests && PYTHONPATH=$NEW/src python - "$WORK" <<'PY'
import shutil, sys, yaml
from pathlib import Path
from conftest import tiny_params
from genlab.data.images import PrepareImagesParams, prepare_images
root = Path(sys.argv[1])
prepare_images(PrepareImagesParams(source="synthetic-digits", n_train=2048, n_test=200), root / "images", seed=0)
for name in ("old", "ddp"):
    (root / name / "data").mkdir(parents=True)
    shutil.copytree(root / "images", root / name / "data/images")
    p = tiny_params(tracking={"enabled": False}, gan={"epochs": 1, "limit": 2048, "batch_size": 64, "checkpoint_every": 1000, "ema": 0})
    p["distributed"] = {"nproc": 2}  # the old commit knows no other distributed key
    (root / name / "params.yaml").write_text(yaml.safe_dump(p))
PY
)
for v in old ddp; do
  src=$NEW; [ "$v" = old ] && src=$OLD
  (cd "$WORK/$v" && /usr/bin/time -f "$v: wall %e s, CPU %U+%S s" env PYTHONPATH=$src/src python "$src/stages/train_gan.py" 2>&1 | tail -1
   python -c "import json; m = json.load(open('metrics/gan.json')); print('$v:', m['gan/steps'], 'steps,', m['gan/img_per_s'], 'img/s,', m['gan/train_seconds'], 's')")
done
python - "$WORK" <<'PY'
import sys, torch
a, b = (torch.load(f"{sys.argv[1]}/{v}/models/gan/checkpoint.pt", weights_only=True) for v in ("old", "ddp"))
print("max |old - ddp| weight:", max((a[k][n].float() - b[k][n].float()).abs().max().item()
                                      for k in ("generator", "discriminator") for n in a[k]))
PY
git worktree remove --force "$OLD"

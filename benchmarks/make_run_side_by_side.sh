#!/bin/bash
# `make run` (install included) in fresh clones of BASE and of HEAD, back to back, each output line
# time-stamped, so per-stage seconds can be read off ("Running stage" lines). Run on an idle machine:
#   bash benchmarks/make_run_side_by_side.sh TAG [BASE]        (BASE default 3c83b95; GENLAB_FP32=1 passes through)
# Logs: /tmp/sbs_TAG_{old,new}.log; clones: /tmp/sbs_TAG_{old,new}.
set -u
tag=${1:?tag}; base=${2:-3c83b95}
repo=$(cd "$(dirname "$0")/.." && pwd)
stamp() { python3 -u -c "
import sys, time
t0 = time.time()
for line in sys.stdin:
    print(f'{time.time() - t0:7.1f} {line}', end='', flush=True)"; }
for which in old new; do
  d=/tmp/sbs_${tag}_$which; rm -rf "$d"; git clone -q "$repo" "$d"
  [ "$which" = old ] && git -C "$d" checkout -q "$base"
  echo "== $which $(git -C "$d" rev-parse --short HEAD) $(date -u +%H:%M:%S) $(lscpu | grep 'Model name' | sed 's/ \+/ /g') ${GENLAB_FP32:+GENLAB_FP32=1}"
  ( cd "$d" && s=$(date +%s.%N) && make run 2>&1 | stamp > /tmp/sbs_${tag}_$which.log; rc=${PIPESTATUS[0]}; e=$(date +%s.%N)
    echo "$which make run: exit $rc, $(echo "$e - $s" | bc) s" | tee -a /tmp/sbs_${tag}_$which.log )
done

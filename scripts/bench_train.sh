#!/usr/bin/env bash
# bench_train.sh — seek's training step side by side with the same step in PyTorch, on the committed
# benchmark config (configs/train-bench.json: batch 8 × 256). Runs the two alternately, ROUNDS times
# each, so that both see the same machine state, and prints tokens/s, MFU against the sgemm peak each
# measured in its own process, and the ratio per round. Measure on a quiet machine (check `uptime`).
#
# Needs build/bench/bench_train (the Release build) and, for the peer, Debian's python3-torch
# (scripts/setup.sh --reference). Usage: scripts/bench_train.sh [ROUNDS] [extra bench_train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
shift || true
[ -x build/bench/bench_train ] || { echo "bench_train: build first (bash scripts/setup.sh)" >&2; exit 2; }
have_torch=1
/usr/bin/python3 -c "import torch" 2>/dev/null || have_torch=0
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  s=$(build/bench/bench_train --json "$@")
  echo "round $r seek:    $s"
  if [ "$have_torch" = 1 ]; then
    t=$(/usr/bin/python3 scripts/reference/train_bench.py --json-only)
    echo "round $r pytorch: $t"
    /usr/bin/python3 - "$s" "$t" <<'PY'
import json, sys
s, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"round: seek {s['tokens_per_s']:.0f} tok/s (MFU {100*s['mfu']:.1f}% of {s['gemm_peak_gflops']:.0f} GFLOP/s), "
      f"pytorch {t['tokens_per_s']:.0f} tok/s (MFU {100*t['mfu']:.1f}% of {t['gemm_peak_gflops']:.0f} GFLOP/s, "
      f"{t['threads']} threads): seek/pytorch = {s['tokens_per_s']/t['tokens_per_s']:.2f}x")
PY
  else
    echo "round $r pytorch: skipped (no python3-torch; install with scripts/setup.sh --reference)"
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

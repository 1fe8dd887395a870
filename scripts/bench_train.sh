#!/usr/bin/env bash
# bench_train.sh — seek's training step side by side with the same step in PyTorch, on the two
# committed benchmark configs: configs/train-bench.json (8.9M parameters, batch 8 × 256) and
# configs/train-bench-90m.json (96M parameters, V3 layout, batch 4 × 512). Per config it runs the two
# alternately, ROUNDS times each, so that both see the same machine state, and prints tokens/s, MFU
# against the sgemm peak each measured in its own process, the ratio per round and the medians.
# Measure on a quiet machine (check `uptime`); only ratios from one run count.
#
# The peer is scripts/reference/train_bench.py at its defaults: every core (os.sched_getaffinity),
# OpenBLAS's AVX-512 kernels, OMP_WAIT_POLICY=active (its docstring says why each).
#
# Needs build/bench/bench_train (the Release build) and, for the peer, Debian's python3-torch
# (scripts/setup.sh --reference). Usage: scripts/bench_train.sh [ROUNDS] [CONFIG_NAME ...]
#   CONFIG_NAME: small, 90m (default: both).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
shift || true
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(small 90m)
[ -x build/bench/bench_train ] || { echo "bench_train: build first (bash scripts/setup.sh)" >&2; exit 2; }
have_torch=1
/usr/bin/python3 -c "import torch" 2>/dev/null || have_torch=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${configs[@]}"; do
  case "$name" in
    small) shape=(--config configs/train-bench.json --batch 8 --seq 256) ;;
    90m) shape=(--config configs/train-bench-90m.json --batch 4 --seq 512) ;;
    *) echo "bench_train: unknown config '$name' (expected small or 90m)" >&2; exit 2 ;;
  esac
  echo "== ${shape[*]}"
  results=()
  for r in $(seq 1 "$rounds"); do
    s=$(build/bench/bench_train --json "${shape[@]}")
    echo "round $r seek:    $s"
    t='null'
    if [ "$have_torch" = 1 ]; then
      t=$(/usr/bin/python3 scripts/reference/train_bench.py --json-only "${shape[@]}")
      echo "round $r pytorch: $t"
    else
      echo "round $r pytorch: skipped (no python3-torch; install with scripts/setup.sh --reference)"
    fi
    results+=("{\"seek\": $s, \"pytorch\": $t}")
  done
  printf '%s\n' "${results[@]}" > "$tmp"
  /usr/bin/python3 - "$tmp" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for i, r in enumerate(rows, 1):
    s, t = r["seek"], r["pytorch"]
    line = f"round {i}: seek {s['tokens_per_s']:.0f} tok/s (MFU {100*s['mfu']:.1f}% of {s['gemm_peak_gflops']:.0f} GFLOP/s)"
    if t:
        line += (f", pytorch {t['tokens_per_s']:.0f} tok/s (MFU {100*t['mfu']:.1f}% of {t['gemm_peak_gflops']:.0f} "
                 f"GFLOP/s, {t['threads']} threads): seek/pytorch = {s['tokens_per_s']/t['tokens_per_s']:.2f}x")
    print(line)
med = statistics.median
line = (f"median: seek {med([r['seek']['tokens_per_s'] for r in rows]):.0f} tok/s, "
        f"MFU {100*med([r['seek']['mfu'] for r in rows]):.1f}%")
if all(r["pytorch"] for r in rows):
    line += (f"; pytorch {med([r['pytorch']['tokens_per_s'] for r in rows]):.0f} tok/s; seek/pytorch "
             f"{med([r['seek']['tokens_per_s'] / r['pytorch']['tokens_per_s'] for r in rows]):.2f}x (median of the rounds)")
print(line)
PY
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

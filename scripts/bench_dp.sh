#!/usr/bin/env bash
# bench_dp.sh — data-parallel pretraining on this one machine: `seek pretrain` in one process (every
# core) against `mpiexec -n N` (cores / N threads per rank), alternately, ROUNDS times, on the same global
# batch. Prints per run the training tokens/s (median of the log lines after the first), the share of
# step time spent summing gradients (comm_fraction), each rank's peak resident memory, and the bytes
# each rank sends per step (a chunked all-reduce sends 2 (N - 1) / N of the gradient's 4 bytes per
# parameter). On one machine the ranks share its cores and memory bandwidth: this measures what data
# parallelism costs, not what a second machine gives.
#
# Usage: scripts/bench_dp.sh CONFIG DATA_DIR [ROUNDS=2] [N=2] [BATCH=8] [SEQ=256] [STEPS=30] [SPLIT=batch]
#   DATA_DIR: written by `seek data` (its vocabulary within the config's).
#   SPLIT: batch (data parallel) or experts (`--expert-parallel`: each rank its rows of the batch, the
#   routed experts spread and reached by an all-to-all, each rank holding only its own; the gradient sum
#   covers the rest, and rank 0's dispatch + combine bytes per token per MoE layer, forward and
#   backward, are printed too).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,12p "$0" >&2; exit 2; }
config="$1" data="$2" rounds="${3:-2}" ranks="${4:-2}" batch="${5:-8}" seq="${6:-256}" steps="${7:-30}" split="${8:-batch}"
case "$split" in batch) split_flag=() ;; experts) split_flag=(--expert-parallel) ;; *) echo "SPLIT: batch or experts" >&2; exit 2 ;; esac
command -v mpiexec > /dev/null || { echo "bench_dp: needs mpiexec (bash scripts/setup.sh installs MPICH)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $config, batch $batch x $seq, $steps steps, ranks split the $split"
run() {  # run NAME RANKS
  local out="$work/$1" n="$2"
  rm -rf "$out"
  local args=(build/seek pretrain --config "$config" --data "$data" --out "$out" --steps "$steps" --batch "$batch"
              --seq-len "$seq" --log-every 5 --eval-every 0 --save-every 0)
  if [ "$n" = 1 ]; then
    /usr/bin/time -f "%M" -o "$out.rss.0" "${args[@]}" 2> /dev/null
  else
    mpiexec -n "$n" bash -c '/usr/bin/time -f "%M" -o "$0.rss.$PMI_RANK" "$@" 2> /dev/null' "$out" "${args[@]}" \
      "${split_flag[@]}"
  fi
  /usr/bin/python3 - "$out" "$n" "$split" <<'EOF'
import glob, json, statistics, struct, sys
out, n, split = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [json.loads(l) for l in open(out + "/metrics.jsonl") if l.strip()]
lines = [l for l in lines if "tokens_per_s" in l and l["step"] > 1]
tps = statistics.median(l["tokens_per_s"] for l in lines)
comm = statistics.median(l.get("comm_fraction", 0) for l in lines)
import os
rss = [int(open(f).read().split()[-1]) / 1024 for f in sorted(glob.glob(out + ".rss.*"))]
# The gradient summed: every f32 parameter, but with the experts spread only the part every rank holds.
with open(glob.glob(out + "/ckpt-*/model.safetensors")[0], "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
size = sum(t["data_offsets"][1] - t["data_offsets"][0] for name, t in header.items()
           if name != "__metadata__" and not (split == "experts" and ".mlp.experts." in name))
sent = 2 * (n - 1) / n * size / 2**20
ep = [l["expert_bytes_per_token_layer"] for l in lines if "expert_bytes_per_token_layer" in l]
print(f"{n} rank(s): {tps:8.0f} tokens/s  comm {100 * comm:4.1f}%  peak RSS/rank {', '.join(f'{r:.0f}' for r in rss)} MiB"
      f"  gradient sum sent/rank/step {sent:.1f} MiB" + (f"  experts' all-to-all {ep[-1]:.0f} B/token/layer" if ep else ""))
EOF
}
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run "one-$r" 1
  run "dp-$r" "$ranks"
done

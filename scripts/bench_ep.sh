#!/usr/bin/env bash
# bench_ep.sh — expert-parallel decoding on this one machine: `seek generate` in one process against
# `mpiexec -n N seek generate` (the routed experts spread over the ranks), alternately, ROUNDS times,
# greedy, weights mapped in both (SEEK_WEIGHTS=mmap, so resident memory is the pages a process reads).
# Prints decode tokens/s, each rank's peak resident memory, the bytes sent per token per MoE layer, and
# checks that the two print the same text. On one machine the ranks share its cores and memory
# bandwidth: this measures the cost and the memory split, not what more machines give.
#
# Usage: scripts/bench_ep.sh MODEL_DIR [ROUNDS=2] [N=2] [MAX_TOKENS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,9p "$0" >&2; exit 2; }
model="$1" rounds="${2:-2}" ranks="${3:-2}" max_tokens="${4:-200}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(build/seek generate -m "$model" -p "What is 347 * 29? Think step by step." --chat --think --temperature 0
      --max-tokens "$max_tokens" --draft 0)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $model, greedy, up to $max_tokens tokens"
report() {  # report LABEL OUT_PREFIX
  local rss
  rss=$(cat "$2".rss.* | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1 / 1024}')
  local tps bytes
  tps=$(grep -o 'decode [0-9.]* tokens/s' "$2.err" | head -1)
  bytes=$(grep -o '[0-9]* bytes sent per token per MoE layer' "$2.err" || true)
  echo "$1: $tps, peak RSS/rank $rss MiB${bytes:+, $bytes}"
}
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  SEEK_WEIGHTS=mmap /usr/bin/time -f "%M" -o "$work/one.rss.0" "${args[@]}" > "$work/one.out" 2> "$work/one.err"
  report "1 process" "$work/one"
  rm -f "$work"/ep.rss.*
  mpiexec -n "$ranks" bash -c '/usr/bin/time -f "%M" -o "$0.rss.$PMI_RANK" "$@"' "$work/ep" "${args[@]}" \
    > "$work/ep.out" 2> "$work/ep.err"
  report "$ranks ranks" "$work/ep"
  cmp -s "$work/one.out" "$work/ep.out" && echo "same text" || { echo "the texts differ" >&2; exit 1; }
done

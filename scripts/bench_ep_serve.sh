#!/usr/bin/env bash
# bench_ep_serve.sh — the expert-parallel server on this one machine: tests/server/bench.mjs against
# `seek serve` in one process and under `mpiexec -n N` (rank 0 serves, the routed experts spread over the
# ranks), alternately, ROUNDS times. Prints output tokens/s at 1 and 4 concurrent streams and the time
# to first token of a long prompt on a prefix-cache miss and hit. On one machine the ranks share its
# cores and memory bandwidth: this measures what spreading the experts costs, not what machines add.
#
# Usage: scripts/bench_ep_serve.sh MODEL_DIR [ROUNDS=2] [N=2] [TOKENIZER=tests/data/tokenizer]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,8p "$0" >&2; exit 2; }
model="$1" rounds="${2:-2}" ranks="${3:-2}" tokenizer="${4:-tests/data/tokenizer}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $model"
run() {  # run LABEL [LAUNCHER]
  node tests/server/bench.mjs --model "$model" --tokenizer "$tokenizer" --decode 24 --prompt 512 --streams 1,4 \
       --load-requests 0 ${2:+--launcher "$2"} --json "$work/r.json" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const t = r.throughput.map((x) => `${x.streams} stream${x.streams > 1 ? "s" : ""} ${x.tokens_per_s} tokens/s`).join(", ");
    console.log(`${process.argv[2]}: ${t}; first token of 512 ${r.cache.miss.ttft_s} s (miss), ${r.cache.hit.ttft_s} s (hit)`);
  ' "$work/r.json" "$1"
}
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run "1 process"
  run "$ranks ranks" "mpiexec -n $ranks"
done

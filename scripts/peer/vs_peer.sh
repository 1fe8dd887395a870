#!/usr/bin/env bash
# vs_peer.sh — seek's inference side by side with a llama.cpp-family engine (ik_llama.cpp, the CPU engine
# to beat, or mainline llama.cpp) on the same model, in alternating rounds, and the ratios per round
# (issue 12). Only ratios from one run count: this machine's memory bandwidth moves by 1.5x within an hour.
#
# Usage: scripts/peer/vs_peer.sh LLAMA_BENCH MODEL.gguf SEEK_MODEL_DIR [ROUNDS] [THREADS]
#   LLAMA_BENCH     the peer's llama-bench, built outside this project (CPU, -DGGML_NATIVE=ON)
#   MODEL.gguf      the same weights as SEEK_MODEL_DIR, e.g. written by
#                   /usr/bin/python3 scripts/peer/hf_to_gguf.py --gguf-py PEER/gguf-py SEEK_MODEL_DIR MODEL.gguf
#   SEEK_MODEL_DIR  a model folder in HF layout (build/seek new-model --preset bench-1b --dtype bf16 --out DIR),
#                   or a GGUF file (the same MODEL.gguf, so both engines read the same quantized blocks)
# Per round: the peer's pp512 and tg128 at its defaults (ik_llama.cpp: -mla 3 -fa 1 -fmoe 1), then
# `seek bench` (prefill of 512; tg128 as llama-bench runs it: 128 greedy steps from an empty cache, the
# mean of two runs; generate: 128 sampled tokens after a 32-token prompt through the engine; the head's
# matmul alone). Set PEER_ARGS to
# pass more options to llama-bench.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '6,14p' "$0" >&2; exit 2; }
peer="$1"; gguf="$2"; model="$3"; rounds="${4:-3}"; threads="${5:-2}"
cd "$(dirname "$0")/../.."
[ -x "$peer" ] || { echo "vs_peer: $peer is not an executable llama-bench" >&2; exit 2; }
[ -f "$gguf" ] || { echo "vs_peer: $gguf: no such file" >&2; exit 2; }
[ -f "$model/config.json" ] || [ -f "$model" ] ||
  { echo "vs_peer: $model: neither a model folder (config.json) nor a GGUF file" >&2; exit 2; }
[ -x build/seek ] || { echo "vs_peer: build first (bash scripts/setup.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The CPU as the kernel names it, since it moves compute-bound ratios: this VM is sold as Zen 5 (family 26),
# but on 2026-12-06 it reported family 25, model 17 (Zen 4, 512-bit FMAs at half rate), and seek bench's
# sgemm peak was 184-208 GFLOP/s, against 330-480 on earlier days.
cpu=$(awk -F': ' '/^cpu family/ {f=$2} /^model\t/ {m=$2} /^model name/ {n=$2} END {print n ", family " f " model " m}' /proc/cpuinfo)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); cpu: $cpu; peer: $peer"
for r in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  "$peer" -m "$gguf" -t "$threads" -p 512 -n 128 -r 2 -o json ${PEER_ARGS:-} > "$tmp/peer-$r.json" 2> "$tmp/peer-$r.err" ||
    { cat "$tmp/peer-$r.err" >&2; exit 1; }
  build/seek bench --model "$model" --prompt 512 --decode 128 --json "$tmp/seek-$r.json" > /dev/null 2> "$tmp/seek-$r.err" ||
    { cat "$tmp/seek-$r.err" >&2; exit 1; }
  echo "round $r done"
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    peer = json.load(open(f"{tmp}/peer-{r}.json"))
    pp = next(x["avg_ts"] for x in peer if x["n_prompt"] == 512 and x["n_gen"] == 0)
    tg = next(x["avg_ts"] for x in peer if x["n_prompt"] == 0 and x["n_gen"] == 128)
    s = json.load(open(f"{tmp}/seek-{r}.json"))
    rows.append(dict(pp=pp, tg=tg, prefill=s["prefill_tokens_per_s"], decode=s["decode_tg_tokens_per_s"],
                     head=s["head_ms_per_token"],
                     generate=s["generate_batch1_tokens_per_s"], bw=s["mem_read_bandwidth_GBps"],
                     peak=s["sgemm_peak_GFLOPs"], mem=s.get("peak_rss_over_file", s["peak_rss_over_weights"]),
                     read=s["decode_pct_of_bandwidth"]))
# "seek reads": seek's decode after the 512-token prompt, its weight and cache bytes a token times tokens/s,
# as a share of the bandwidth probe run just before it. Near 100% the memory bounds the step: no engine
# that reads the same bytes can be much faster then.
print("| round | peer pp512 | seek prefill 512 | ratio | peer tg128 | seek tg128 | ratio | seek generate | ratio | seek head ms | bandwidth GB/s | seek reads, % of it | sgemm GFLOP/s | seek peak memory / file (/ weights for a folder) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for i, x in enumerate(rows, 1):
    print(f"| {i} | {x['pp']:.1f} | {x['prefill']:.1f} | {x['prefill']/x['pp']:.2f} | {x['tg']:.1f} | {x['decode']:.1f} | "
          f"{x['decode']/x['tg']:.2f} | {x['generate']:.1f} | {x['generate']/x['tg']:.2f} | {x['head']:.2f} | {x['bw']:.0f} | "
          f"{x['read']:.0f} | {x['peak']:.0f} | {x['mem']:.3f} |")
med = lambda f: statistics.median(f(x) for x in rows)
print(f"medians of the per-round ratios: prefill {med(lambda x: x['prefill']/x['pp']):.2f}x, "
      f"decode tg128 {med(lambda x: x['decode']/x['tg']):.2f}x, decode (seek generate) {med(lambda x: x['generate']/x['tg']):.2f}x")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

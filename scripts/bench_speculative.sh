#!/usr/bin/env bash
# bench_speculative.sh — decoding at batch 1 with and without the MTP module's drafts (speculative
# decoding), in alternating runs on the same questions. A benchmark, never a test.
#
#   scripts/bench_speculative.sh MODEL_DIR [ROUNDS=3] [DRAFTS=1,2] [QUESTIONS=8] [EXTRA seek generate FLAGS...]
#
# Each round runs every held-out arithmetic question (seek corpus --split heldout) through
# `seek generate --chat --think --temperature 0` once per draft setting (0 first, then each of DRAFTS),
# and sums the decode tokens and seconds the command reports. Greedy output is the same with and
# without drafts (tests/unit/test_speculative.cpp), so every setting decodes the same tokens; the
# script checks that too. Prints per round the decode rate of each setting and its ratio to no drafts,
# then the medians, the acceptance per draft position and the tokens per step.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/bench_speculative.sh MODEL_DIR [ROUNDS] [DRAFTS] [QUESTIONS] [FLAGS...]}
rounds=${2:-3}
IFS=, read -r -a drafts <<< "${3:-1,2}"
questions=${4:-8}
shift $(( $# < 4 ? $# : 4 ))
extra=("$@")
seek=build/seek
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SKYLAKEX}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$seek" corpus --out "$work/q.jsonl" -n "$questions" --split heldout --worked-fraction 1 --countdown-fraction 0 \
  --min-difficulty 2 --max-difficulty 3 --seed 99 > /dev/null 2>&1
mapfile -t qs < <(python3 -c 'import json,sys; [print(json.loads(l)["question"]) for l in open(sys.argv[1])]' "$work/q.jsonl")

settings=(0 "${drafts[@]}")
echo "model $model, ${#qs[@]} questions, $rounds rounds, drafts ${settings[*]} (0 = none)"
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  for k in "${settings[@]}"; do
    tokens=0 seconds=0
    : > "$work/out-$k"
    for q in "${qs[@]}"; do
      err=$("$seek" generate -m "$model" --chat --think --temperature 0 --max-tokens 400 --draft "$k" "${extra[@]}" \
              -p "$q" 2>&1 >> "$work/out-$k" | tail -1)
      # "generated N tokens ...; decode R tokens/s[; drafts accepted A% / B% by position, S tokens a step]"
      n=$(sed -E 's/.*generated ([0-9]+) tokens.*/\1/' <<< "$err")
      rate=$(sed -E 's/.*decode ([0-9.]+) tokens\/s.*/\1/' <<< "$err")
      tokens=$(python3 -c "print($tokens + $n - 1)")
      seconds=$(python3 -c "print($seconds + ($n - 1) / $rate if $rate > 0 else $seconds)")
      echo "$err" >> "$work/log-$k"
    done
    if [ "$k" != 0 ] && ! cmp -s "$work/out-0" "$work/out-$k"; then
      echo "bench_speculative: the output with --draft $k differs from the output without drafts" >&2
      exit 1
    fi
    rate=$(python3 -c "print(f'{$tokens / $seconds:.1f}')")
    echo "$k $rate" >> "$work/rates-$r"
    line+=" draft $k ${rate} tok/s"
  done
  base=$(awk '$1 == 0 {print $2}' "$work/rates-$r")
  for k in "${drafts[@]}"; do
    line+=$(awk -v k="$k" -v b="$base" '$1 == k {printf " | %s: %.2fx", k, $2 / b}' "$work/rates-$r")
    awk -v k="$k" -v b="$base" '$1 == k {print $2 / b}' "$work/rates-$r" >> "$work/ratio-$k"
  done
  echo "$line"
done
for k in "${drafts[@]}"; do
  med=$(sort -g "$work/ratio-$k" | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}')
  stats=$(python3 - "$work/log-$k" <<'EOF'
import re, sys
drafted_steps = []
acc, per_step = [], []
for line in open(sys.argv[1]):
    m = re.search(r"drafts accepted (.*) by position, ([0-9.]+) tokens a step", line)
    if m:
        acc.append([float(x) for x in re.findall(r"([0-9.]+)%", m.group(1))])
        per_step.append(float(m.group(2)))
if acc:
    n = max(len(a) for a in acc)
    mean = [sum(a[i] for a in acc if len(a) > i) / sum(1 for a in acc if len(a) > i) for i in range(n)]
    print("acceptance by position " + " / ".join(f"{x:.0f}%" for x in mean) +
          f", {sum(per_step) / len(per_step):.2f} tokens a step (means over runs)")
EOF
)
  echo "draft $k: median speedup ${med}x over $rounds rounds; $stats"
done

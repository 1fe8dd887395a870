#!/usr/bin/env bash
# make_gguf_models.sh — the GGUF model fixtures of tests/data/gguf-models, written by llama.cpp's own tools,
# with llama.cpp's logits as goldens. Run once, outside CI (it needs a built llama.cpp checkout):
#
#   scripts/peer/make_gguf_models.sh PEER_LLAMA_CPP_DIR [OUT_DIR=tests/data/gguf-models]
#
# PEER_LLAMA_CPP_DIR is a mainline llama.cpp checkout built with `cmake -B build -DGGML_NATIVE=ON` (this
# project used unslothai/llama.cpp, a fork that tracks mainline; its commit goes into OUT_DIR/README.md).
# (PEER_NAME=... names it in the README.) The widest fixture, qwen2-wide-f32.gguf, is kept so that
# `seek quantize` can be compared with llama-quantize block for block. For each config OUT_DIR/<name>.json:
#   1. seek writes a random f32 checkpoint in Hugging Face layout (`seek new-model`, seed 7);
#   2. scripts/peer/hf_to_gguf.py turns it into an F32 GGUF with the peer's gguf-py (its tensor names, keys
#      and, for Llama, its q/k row permutation); deepseek2 in both layouts llama.cpp has written: split
#      attn_k_b/attn_v_b with the *_length_mla keys ("mainline") and the single attn_kv_b ("legacy");
#   3. the peer's llama-quantize makes Q8_0 (the -small models), Q4_K_M and Q5_K_M (the -wide ones, whose
#      widths are multiples of 256 so that llama-quantize uses the K-quants without falling back to other
#      types; the split attn_k_b, 64 wide, is asked for Q8_0 in Q4_K_M and for Q5_0 in Q5_K_M);
#   4. llama_logits.cpp (built against the peer) writes the logits of every position of a fixed sequence.
# Only the GGUF files and the logits are kept; the HF checkpoints are written to a temp dir.
set -euo pipefail
PEER=$(cd "${1:?usage: make_gguf_models.sh PEER_LLAMA_CPP_DIR [OUT_DIR]}" && pwd)
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${2:-$HERE/tests/data/gguf-models}
SEEK=${SEEK:-$HERE/build/seek}
IDS="1 17 42 99 200 257 3 5 8 13 21 34 55 89 144 233"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

g++ -O2 -std=c++17 -I"$PEER/include" -I"$PEER/ggml/include" "$HERE/scripts/peer/llama_logits.cpp" \
  -L"$PEER/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$PEER/build/bin" -o "$TMP/llama_logits"
convert() {  # MODEL_DIR OUT.gguf [LAYOUT]
  /usr/bin/python3 "$HERE/scripts/peer/hf_to_gguf.py" --gguf-py "$PEER/gguf-py" --type f32 --layout "${3:-mainline}" "$1" "$2"
}
quantize() {  # IN OUT TYPE [extra args]
  "$PEER/build/bin/llama-quantize" "${@:4}" "$1" "$2" "$3" 1 >"$TMP/quantize.log" 2>&1 || { cat "$TMP/quantize.log"; exit 1; }
  grep -q "falling back" "$TMP/quantize.log" && { grep "falling back" "$TMP/quantize.log"; echo "fallback types in $2"; exit 1; }
  true
}
logits() {  # GGUF
  "$TMP/llama_logits" "$1" "${1%.gguf}.logits" $IDS 2>/dev/null
}

for arch in qwen2 llama deepseek; do
  "$SEEK" new-model --out "$TMP/$arch-small" --config "$OUT/$arch-small.json" --dtype f32 --seed 7
  "$SEEK" new-model --out "$TMP/$arch-wide" --config "$OUT/$arch-wide.json" --dtype f32 --seed 7
  convert "$TMP/$arch-small" "$OUT/$arch-small-f32.gguf"
  quantize "$OUT/$arch-small-f32.gguf" "$OUT/$arch-small-q8_0.gguf" Q8_0
  wide_f32="$TMP/$arch-wide-f32.gguf"
  [ "$arch" = qwen2 ] && wide_f32="$OUT/$arch-wide-f32.gguf"  # kept: seek quantize is compared with it
  convert "$TMP/$arch-wide" "$wide_f32"
  quantize "$wide_f32" "$OUT/$arch-wide-q4_k_m.gguf" Q4_K_M --tensor-type attn_k_b=q8_0
  quantize "$wide_f32" "$OUT/$arch-wide-q5_k_m.gguf" Q5_K_M --tensor-type attn_k_b=q5_0
  for f in "$OUT/$arch-small-f32.gguf" "$OUT/$arch-small-q8_0.gguf" "$OUT/$arch-wide-q4_k_m.gguf" \
           "$OUT/$arch-wide-q5_k_m.gguf"; do logits "$f"; done
  [ "$arch" = qwen2 ] && logits "$wide_f32"
done
# Llama 3.1's rope scaling: the converter writes it as the rope_freqs tensor.
"$SEEK" new-model --out "$TMP/llama31-small" --config "$OUT/llama31-small.json" --dtype f32 --seed 7
convert "$TMP/llama31-small" "$OUT/llama31-small-f32.gguf"
logits "$OUT/llama31-small-f32.gguf"
convert "$TMP/deepseek-small" "$OUT/deepseek-small-legacy-f32.gguf" legacy
quantize "$OUT/deepseek-small-legacy-f32.gguf" "$OUT/deepseek-small-legacy-q8_0.gguf" Q8_0
for f in "$OUT/deepseek-small-legacy-f32.gguf" "$OUT/deepseek-small-legacy-q8_0.gguf"; do logits "$f"; done

{
  echo "# GGUF model fixtures, written by llama.cpp's tools"
  echo
  echo "Made by \`scripts/peer/make_gguf_models.sh PEER\` (see its header for how) with llama.cpp"
  echo "${PEER_NAME:-unslothai/llama.cpp} at \`$(git -C "$PEER" rev-parse HEAD)\`."
  echo "Each \`X.gguf\` has \`X.logits\`: llama.cpp's logits, f32 [16, vocab], of the token ids \`$IDS\`"
  echo "decoded in one batch from an empty cache (f32 KV cache, no flash attention)."
  echo
  echo "| file | bytes | types |"
  echo "|---|---|---|"
  for f in "$OUT"/*.gguf; do
    types=$(/usr/bin/python3 -c "
import sys; sys.path.insert(0, '$PEER/gguf-py')
import gguf, collections
r = gguf.GGUFReader('$f')
c = collections.Counter(t.tensor_type.name for t in r.tensors)
print(', '.join(f'{k} x{v}' for k, v in sorted(c.items())))")
    echo "| $(basename "$f") | $(stat -c %s "$f") | $types |"
  done
} >"$OUT/README.md"
echo "wrote $(ls "$OUT"/*.gguf | wc -l) GGUF files and their logits to $OUT"

#!/usr/bin/env bash
# make_quant_golden.sh — regenerates tests/data/quant/ (the Q8_0 / Q4_0 / Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K goldens of
# tests/unit/test_quant.cpp) with llama.cpp's own ggml: compiles scripts/peer/quant_golden.c against the
# peer's headers and its built libggml-base, runs it, and prints the peer commit to record in
# tests/data/quant/README.md.
#
# Usage: scripts/peer/make_quant_golden.sh PEER_DIR OUT_DIR
#   PEER_DIR  a llama.cpp checkout built with CMake (libggml-base.so under build/bin or build/ggml/src)
#   OUT_DIR   where the fixtures go (tests/data/quant)
set -euo pipefail
[ $# -eq 2 ] || { sed -n '7,9p' "$0" >&2; exit 2; }
peer="$(cd "$1" && pwd)"; out="$2"
here="$(cd "$(dirname "$0")" && pwd)"
lib=""
for d in "$peer/build/bin" "$peer/build/ggml/src"; do
  if [ -f "$d/libggml-base.so" ]; then lib="$d"; break; fi
done
[ -n "$lib" ] || { echo "make_quant_golden: no libggml-base.so under $peer/build (build the peer first)" >&2; exit 2; }
[ -f "$peer/ggml/src/ggml-quants.h" ] || { echo "make_quant_golden: $peer/ggml/src/ggml-quants.h: not found" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -std=c11 -Wall -Wextra -I"$peer/ggml/include" -I"$peer/ggml/src" "$here/quant_golden.c" \
  -L"$lib" -lggml-base -Wl,-rpath,"$lib" -lm -o "$tmp/quant_golden"
"$tmp/quant_golden" "$out"
echo "make_quant_golden: wrote $(ls "$out"/*.bin | wc -l) files to $out from llama.cpp $(git -C "$peer" rev-parse HEAD)"

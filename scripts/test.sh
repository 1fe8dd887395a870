#!/usr/bin/env bash
# test.sh — build (installing dependencies if needed) and run every test: unit, golden and slow on the
# Release build, then unit and golden again under AddressSanitizer + UBSan.
# This is the README's test command, and the whole of CI (.ci/run). Extra arguments go to both ctest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --preset release -j "$(nproc)" "$@"

echo "test: the same tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake --preset asan > /dev/null
cmake --build --preset asan -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1 ctest --preset asan -j "$(nproc)" -L "unit|golden" "$@"

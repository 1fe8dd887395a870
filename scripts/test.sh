#!/usr/bin/env bash
# test.sh — build (installing dependencies if needed) and run every test: unit, golden, slow.
# This is the README's test command, and the whole of CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --preset release -j "$(nproc)" "$@"

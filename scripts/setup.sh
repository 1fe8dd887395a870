#!/usr/bin/env bash
# setup.sh — install every Debian package seek needs, then configure and build the Release preset.
# Safe to run twice: apt skips what is installed and CMake rebuilds only what changed.
#   bash scripts/setup.sh              # dependencies + Release build in build/
#   bash scripts/setup.sh --reference  # also PyTorch, for regenerating the golden files
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential cmake git pkg-config
  libopenblas-openmp-dev   # BLAS for f32 GEMMs; the OpenMP build shares libgomp's threads with ours
  nlohmann-json3-dev       # config.json, safetensors headers
  libcli11-dev             # the command line
  libpcre2-dev             # Unicode regexes of the BPE pre-tokenizer
  libutf8proc-dev          # Unicode normalization of tokenizers (NFC, NFKC, lowercase)
  libgtest-dev             # tests
  libcpp-httplib-dev       # seek serve: the HTTP server (chunked responses for server-sent events)
  libxxhash-dev            # seek serve: prefix-cache block keys and disk-block checksums
  libmpich-dev mpich       # mpiexec -n N seek ...: data and expert parallelism (MPICH runs as root in CI)
  chromium                 # tests/server: the chat page in headless Chromium (driven by playwright-core)
)
# Node.js runs the server's integration tests with the official `openai` client (tests/server). Debian's
# nodejs + npm where no node is installed yet (a NodeSource node already carries its own npm).
command -v node > /dev/null || packages+=(nodejs)
command -v npm > /dev/null || packages+=(npm)
if [ "${1:-}" = "--reference" ]; then
  packages+=(python3-torch python3-numpy)  # test oracle only (scripts/reference), never a runtime dependency
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# The server tests' npm packages (openai, playwright-core), pinned by tests/server/package-lock.json.
if [ ! -d tests/server/node_modules ] || [ tests/server/package-lock.json -nt tests/server/node_modules ]; then
  (cd tests/server && npm ci --no-audit --no-fund --loglevel=error) && touch tests/server/node_modules
fi

cmake --preset release
cmake --build --preset release -j "$(nproc)"
echo "setup: built build/seek"

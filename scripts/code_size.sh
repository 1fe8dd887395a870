#!/usr/bin/env bash
# code_size.sh — the size of seek's source: lines in src/ (all, and without blank and comment-only
# lines) and the longest functions, by Universal Ctags' start and end lines (lambdas count toward the
# function that holds them). Usage: scripts/code_size.sh [TREE] [N]  (TREE: a checkout, default this one)
set -euo pipefail
tree="${1:-$(dirname "$0")/..}"
n="${2:-5}"
command -v ctags >/dev/null || { echo "code_size: needs universal-ctags (apt-get install universal-ctags)" >&2; exit 2; }
cd "$tree"
files=$(find src -name '*.cpp' -o -name '*.h' | sort)
total=$(cat $files | wc -l)
code=$(cat $files | grep -cvE '^\s*($|//)')
echo "src/: $(echo "$files" | wc -l) files, $total lines, $code lines of code (not blank, not comment-only)"
echo "longest functions (lines, file:line, name):"
ctags --languages=C++ --kinds-C++=f --fields=+ne -o - $files 2>/dev/null |
  awk -F'\t' '{ line = 0; end = 0
                for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) line = substr($i, 6); if ($i ~ /^end:/) end = substr($i, 5) }
                if (end > 0) printf "%d\t%s:%d\t%s\n", end - line + 1, $2, line, $1 }' |
  sort -rn | head -n "$n"

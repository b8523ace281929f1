#!/usr/bin/env bash
# Builds the package and its tests, failing on any compiler warning in this project's own code
# (dependencies' warnings are not ours to fix).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! swift build --build-tests "$@" 2>&1 | tee "$log"; then
    exit 1
fi
if grep -E "^$(pwd)/(Sources|Tests|Benchmarks)/.*: warning:" "$log"; then
    echo "check-build: the warnings above must be fixed" >&2
    exit 1
fi

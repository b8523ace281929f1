#!/usr/bin/env bash
# Builds the package and its tests, failing on any compiler warning in this project's own code
# (dependencies' warnings are not ours to fix). With --release, builds infra-up and every library
# under it optimized instead: the optimizer meets code the debug build never shows it (a compiler
# crash in a release build once passed every test).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ "${1:-}" = --release ]; then
    shift
    set -- -c release --product infra-up "$@"
else
    set -- --build-tests "$@"
fi
if ! swift build "$@" 2>&1 | tee "$log"; then
    exit 1
fi
if grep -E "^$(pwd)/(Sources|Tests|Benchmarks)/.*: warning:" "$log"; then
    echo "check-build: the warnings above must be fixed" >&2
    exit 1
fi

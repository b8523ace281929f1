#!/usr/bin/env bash
# The whole test suite under AddressSanitizer with LeakSanitizer: every test against the same live
# servers as `make test`, in a build of its own (.build-asan). Any memory error stops the test
# process; a leak LeakSanitizer reports at exit (other than the toolchain's own, listed in
# scripts/lsan-suppressions.txt) fails the run and is printed. Not part of `make test`: the
# instrumented suite takes about twice as long.
#   scripts/sanitize.sh [swift test arguments, e.g. --filter NATS]
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-asan
reports=$PWD/.bench/asan
swift build --build-tests --sanitize=address --scratch-path "$scratch"
rm -rf "$reports"
mkdir -p "$reports"
# A small quarantine: the default (256 MB of freed memory kept poisoned) would break the tests that
# bound resident memory; 16 MB still catches a use soon after a free.
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=16:log_path=$reports/report"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"
status=0
scripts/test-servers.sh run --no-legacy-nats -- \
    swift test --skip-build --no-parallel --sanitize=address --scratch-path "$scratch" "$@" || status=$?
found=0
for report in "$reports"/report.*; do
    [[ -e $report ]] || continue
    found=1
    echo "sanitize: $(basename "$report"):" >&2
    cat "$report" >&2
done
if ((found)); then
    echo "sanitize: AddressSanitizer or LeakSanitizer reported the above" >&2
    exit 1
fi
if ((status)); then
    echo "sanitize: the instrumented suite failed (exit $status)" >&2
    exit "$status"
fi
echo "sanitize: no memory error and no leak in the suite" >&2

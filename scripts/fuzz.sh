#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with AddressSanitizer) of the RESP and NATS parsers, the PostgreSQL
# message and cell decoders, the TOML parser and .env reader, and the JetStream API models and ack
# subjects, seeded with the golden streams
# and the TOML documents (TOML_TEST_DIR adds the toml-test cases).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 120; crashes are written to .bench/fuzz-*/)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
out=.bench
# Optimised builds (bounds and overflow checks stay on under -O): a debug build spends most of a
# run in unspecialised generic code and runs several times fewer inputs.
for product in resp-fuzz nats-fuzz pgwire-fuzz toml-fuzz jetstream-fuzz; do
    swift build -c release --scratch-path .build-fuzz --product "$product" -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >/dev/null
done
bin=$(swift build -c release --scratch-path .build-fuzz --show-bin-path)

mkdir -p "$out/fuzz-resp" "$out/fuzz-nats" "$out/fuzz-pgwire" "$out/fuzz-toml" "$out/fuzz-jetstream"
# The seed corpora come from the golden streams, read by the tests' own fixture reader.
# toml-test's cases are found as the conformance test finds them.
if [[ -z "${TOML_TEST_DIR:-}" && -d ../shared/toml-test ]]; then export TOML_TEST_DIR=../shared/toml-test; fi
swift run fixture-corpus "$out" >/dev/null
status=0
for target in resp nats pgwire toml jetstream; do
    echo "fuzz: $target for ${seconds}s" >&2
    # The regression cases of Fixtures/fuzz/<target>/ seed the run too (read, never written).
    (cd "$out/fuzz-$target" && "$bin/$target-fuzz" "../corpus-$target" "../../Fixtures/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov: .* ft:|ERROR|crash|Done" | tail -6 ) || status=1
done
# An input that crashed, hung or ran out of memory is left where libFuzzer wrote it; once fixed it
# belongs in Fixtures/fuzz/<target>/, which the test suite replays.
for found in "$out"/fuzz-*/crash-* "$out"/fuzz-*/timeout-* "$out"/fuzz-*/oom-*; do
    [[ -e "$found" ]] || continue
    folder=$(basename "$(dirname "$found")")
    echo "fuzz: found $found (reproduce: $bin/${folder#fuzz-}-fuzz $found)" >&2
    status=1
done
exit $status

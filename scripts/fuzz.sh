#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with AddressSanitizer) of the RESP and NATS parsers, the PostgreSQL
# message and cell decoders, and the TOML parser and .env reader, seeded with the golden streams
# and the TOML conformance documents.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 120; crashes are written to .bench/fuzz-*/)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
out=.bench
for product in resp-fuzz nats-fuzz pgwire-fuzz toml-fuzz; do
    swift build --scratch-path .build-fuzz --product "$product" -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >/dev/null
done
bin=$(swift build --scratch-path .build-fuzz --show-bin-path)

mkdir -p "$out/corpus-resp" "$out/corpus-nats" "$out/corpus-pgwire" "$out/corpus-toml" "$out/fuzz-resp" "$out/fuzz-nats" "$out/fuzz-pgwire" "$out/fuzz-toml"
python3 - "$out" <<'PY'
import glob, os, sys
out = sys.argv[1]
for f in glob.glob("Fixtures/resp/*.resp"):
    data = b"".join(bytes.fromhex(l[2:].strip()) for l in open(f) if l.startswith("< "))
    open(os.path.join(out, "corpus-resp", os.path.basename(f) + ".bin"), "wb").write(data)
for f in glob.glob("Fixtures/nats/*.nats"):
    data = b"".join(bytes.fromhex(l[1:].split("#")[0].strip()) for l in open(f) if l.startswith("<"))
    open(os.path.join(out, "corpus-nats", os.path.basename(f) + ".bin"), "wb").write(data)
for f in glob.glob("Fixtures/pgwire/*.pgw"):
    data = b"".join(bytes.fromhex(l[2:].split("#")[0].strip()) for l in open(f) if l.startswith("< "))
    open(os.path.join(out, "corpus-pgwire", os.path.basename(f) + ".bin"), "wb").write(data)
sources = glob.glob("../shared/toml-test/valid/**/*.toml", recursive=True) + glob.glob("Fixtures/settings/*/*.toml") \
    + glob.glob("Fixtures/settings/*/env.fixture") + ["settings.toml"]
for i, f in enumerate(sources):
    open(os.path.join(out, "corpus-toml", f"{i:04d}"), "wb").write(open(f, "rb").read())
PY
status=0
for target in resp nats pgwire toml; do
    echo "fuzz: $target for ${seconds}s" >&2
    (cd "$out/fuzz-$target" && "$bin/$target-fuzz" "../corpus-$target" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|ERROR|crash|Done" ) || status=1
done
exit $status

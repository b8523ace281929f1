#!/usr/bin/env bash
# The connection pool beside asyncpg's pool and postgres-nio's PostgresClient: 50 tasks doing SELECT 1
# through a pool of 10 connections, on one server started for the run, in interleaved rounds; prints
# throughput and the acquire wait's p50 / p99 (medians of the rounds) with ratios. Then the migration
# runner's `upgrade head` with nothing to apply (connect and lock included), in milliseconds.
#   scripts/bench-pool.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}

if [[ -z ${INFRA_TEST_POSTGRES_PORT:-} ]]; then
    exec scripts/test-servers.sh run --no-legacy-nats -- "$0" "$rounds" "$seconds"
fi

venv=.build/bench-venv
if ! "$venv/bin/python" -c 'import asyncpg' 2>/dev/null; then
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet asyncpg "psycopg[binary]"
fi
swift build -c release --product pg-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/pg-bench
(cd Benchmarks/postgres-nio-bench && swift build -c release >/dev/null)
nio=Benchmarks/postgres-nio-bench/.build/release/postgres-nio-bench

host=$INFRA_TEST_POSTGRES_HOST port=$INFRA_TEST_POSTGRES_PORT user=$INFRA_TEST_POSTGRES_USER
db=$INFRA_TEST_POSTGRES_DATABASE
export PGPASSWORD=$INFRA_TEST_POSTGRES_PASSWORD
args=("$host" "$port" "$user" "$PGPASSWORD" "$db")
out=.bench/pool
mkdir -p "$out"

declare -A results
record() { results[$1]+="$2 "; }
for round in $(seq "$rounds"); do
    for client in swift asyncpg nio; do
        case $client in
            swift) rate=$("$bench" "${args[@]}" pool "$seconds" 2>"$out/wait") ;;
            nio) rate=$("$nio" "${args[@]}" pool "$seconds" 2>"$out/wait") ;;
            asyncpg) rate=$("$venv/bin/python" Benchmarks/postgres/bench.py asyncpg "${args[@]}" pool "$seconds" 2>"$out/wait") ;;
        esac
        record "$client rate" "$rate"
        record "$client p50" "$(awk '/acquire wait/ {print $5}' "$out/wait")"
        record "$client p99" "$(awk '/acquire wait/ {print $8}' "$out/wait")"
    done
    echo "round $round of $rounds done" >&2
done
noop=$("$bench" "${args[@]}" migrate-noop 50)

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m() { echo "${results[$1]}" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '\nPostgreSQL %s; 50 tasks, pool of 10, SELECT 1 for %s s; medians of %s rounds\n' \
    "$(psql -X -At -h "$host" -p "$port" -U "$user" -d "$db" -c 'SHOW server_version' 2>/dev/null || echo '?')" "$seconds" "$rounds"
printf '%-32s %12s %12s %12s\n' "client" "queries/s" "wait p50 µs" "wait p99 µs"
for client in swift asyncpg nio; do
    printf '%-32s %12.0f %12.0f %12.0f\n' "$client" "$(m "$client rate")" "$(m "$client p50")" "$(m "$client p99")"
done
printf 'throughput: %sx asyncpg pool, %sx postgres-nio PostgresClient\n' \
    "$(ratio "$(m "swift rate")" "$(m "asyncpg rate")")" "$(ratio "$(m "swift rate")" "$(m "nio rate")")"
printf 'migrate upgrade head with nothing to apply (connect, lock, history, release build): %.1f ms\n' "$noop"
for key in "${!results[@]}"; do echo "  $key: ${results[$key]}"; done | sort

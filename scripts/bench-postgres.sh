#!/usr/bin/env bash
# The PostgreSQL client beside postgres-nio (Swift), asyncpg, psycopg 3 (binary) and pgbench (libpq),
# on one server started for the run, in interleaved rounds; prints medians and ratios.
#   scripts/bench-postgres.sh [ROUNDS] [WORKLOAD...]   (workloads: select1 prepared fetch insert copy connect)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
workloads=${*:-select1 prepared fetch insert copy connect}

if [[ -z ${INFRA_TEST_POSTGRES_PORT:-} ]]; then
    exec scripts/test-servers.sh run --no-legacy-nats -- "$0" "$rounds" $workloads
fi

venv=.build/bench-venv
if ! "$venv/bin/python" -c 'import asyncpg, psycopg' 2>/dev/null; then
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet asyncpg "psycopg[binary]"
fi
swift build -c release --product pg-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/pg-bench
(cd Benchmarks/postgres-nio-bench && swift build -c release >/dev/null)
nio=Benchmarks/postgres-nio-bench/.build/release/postgres-nio-bench
pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)

host=$INFRA_TEST_POSTGRES_HOST port=$INFRA_TEST_POSTGRES_PORT user=$INFRA_TEST_POSTGRES_USER
db=$INFRA_TEST_POSTGRES_DATABASE
export PGPASSWORD=$INFRA_TEST_POSTGRES_PASSWORD
args=("$host" "$port" "$user" "$PGPASSWORD" "$db")
out=.bench/postgres
mkdir -p "$out"
echo 'SELECT 1;' >"$out/select1.sql"
printf '\\set n random(1, 1000000)\nSELECT :n::int;\n' >"$out/prepared.sql"
pgbench_tps() {  # MODE FILE COUNT
    "$pgbench" -h "$host" -p "$port" -U "$user" -n -c 1 -t "$3" -M "$1" -f "$2" "$db" 2>/dev/null \
        | awk '/^tps/ {printf "%d\n", $3}'
}

declare -A results
record() { results[$1]+="$2 "; }
declare -A counts=([select1]=20000 [prepared]=20000 [fetch]=1000000 [insert]=50000 [copy]=50000 [connect]=300)
rate() {  # CLIENT WORKLOAD COUNT
    case $1 in
        swift) "$bench" "${args[@]}" "$2" "$3" ;;
        nio) "$nio" "${args[@]}" "$2" "$3" ;;
        *) "$venv/bin/python" Benchmarks/postgres/bench.py "$1" "${args[@]}" "$2" "$3" ;;
    esac
}
for round in $(seq "$rounds"); do
    for w in $workloads; do
        case $w in
            select1) record "pgbench $w" "$(pgbench_tps simple "$out/select1.sql" "${counts[$w]}")" ;;
            prepared) record "pgbench $w" "$(pgbench_tps prepared "$out/prepared.sql" "${counts[$w]}")" ;;
        esac
        for client in swift nio asyncpg psycopg; do
            record "$client $w" "$(rate "$client" "$w" "${counts[$w]}")"
        done
    done
    echo "round $round of $rounds done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m() { [[ -n ${results[$1]:-} ]] && echo "${results[$1]}" | median || echo 0; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else printf "-"}'; }
printf '\n%-34s %10s %10s %10s %10s %10s   %s\n' "workload (per second)" "Swift" "pg-nio" "asyncpg" "psycopg" "pgbench" "Swift vs: nio / asyncpg / psycopg / pgbench"
for w in $workloads; do
    s=$(m "swift $w") n=$(m "nio $w") a=$(m "asyncpg $w") p=$(m "psycopg $w") b=$(m "pgbench $w")
    printf '%-34s %10.0f %10.0f %10.0f %10.0f %10.0f   %s / %s / %s / %s\n' "$w" "$s" "$n" "$a" "$p" "$b" \
        "$(ratio "$s" "$n")" "$(ratio "$s" "$a")" "$(ratio "$s" "$p")" "$(ratio "$s" "$b")"
done
for key in "${!results[@]}"; do echo "  $key: ${results[$key]}"; done | sort

#!/usr/bin/env bash
# `infra-up up` from an empty .infra/ to all healthy, and again with everything running, beside
# the floor (scripts/up-floor.sh: the same servers and readiness waits from a plain script), in
# interleaved rounds on ports of their own. Reports medians and the ratios the targets name:
# first up / (floor + migration time), and second up against 0.5 s and 10% of the first.
#
#   scripts/bench-up.sh [ROUNDS]
set -euo pipefail

rounds=${1:-3}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
swift build -c release --product infra-up >/dev/null
infra_up="$(swift build -c release --show-bin-path)/infra-up"
export INFRA_UP="$infra_up"

free_base() {
    python3 - <<'PY'
import random, socket
while True:
    low = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
    base = random.randint(10000, low - 10)  # below the ephemeral ports
    ok = True
    for port in range(base, base + 8):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            ok = False
        s.close()
    if ok:
        print(base)
        break
PY
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

first=() second=() floor=() migration=()
for round in $(seq 1 "$rounds"); do
    # infra-up in a project folder of its own.
    base=$(free_base)
    project=$(mktemp -d /tmp/bench-up-XXXXXX)
    chmod 755 "$project"
    cp settings.toml "$project/" && cp -r migrations "$project/"
    env_vars=(TRANSCRIPTION_POSTGRES__PORT=$base TRANSCRIPTION_REDIS__PORT=$((base + 1)) TRANSCRIPTION_NATS_URL=nats://127.0.0.1:$((base + 2))
        TRANSCRIPTION_NATS__MONITOR_PORT=$((base + 3)) TRANSCRIPTION_PROMETHEUS_PORT=$((base + 4)) TRANSCRIPTION_NATS__EXPORTER_PORT=$((base + 5))
        TRANSCRIPTION_POSTGRES__EXPORTER_PORT=$((base + 6)) TRANSCRIPTION_REDIS__EXPORTER_PORT=$((base + 7)) TRANSCRIPTION_REDIS__PASSWORD=bench-redis)
    start=$(now)
    env "${env_vars[@]}" "$infra_up" up --root "$project" >"$project/up1.log" 2>&1 || { cat "$project/up1.log"; exit 1; }
    first+=("$(elapsed "$start" "$(now)")")
    start=$(now)
    env "${env_vars[@]}" "$infra_up" up --root "$project" >"$project/up2.log" 2>&1 || { cat "$project/up2.log"; exit 1; }
    second+=("$(elapsed "$start" "$(now)")")
    password=$(cat "$project/.infra/secrets/postgres-password")
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V -r | head -1)
    migration+=("$(PGPASSWORD=$password "$bin/psql" -X -At -h 127.0.0.1 -p "$base" -U transcription -d transcription \
        -c 'SELECT round(coalesce(sum(duration_ms), 0) / 1000.0, 3) FROM schema_migrations')")
    env "${env_vars[@]}" "$infra_up" down --volumes --root "$project" >/dev/null
    rm -rf "$project"

    # The floor.
    base=$(free_base)
    dir=$(mktemp -d /tmp/bench-floor-XXXXXX)
    start=$(now)
    scripts/up-floor.sh start "$dir" "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5)) $((base + 6)) $((base + 7))
    floor+=("$(elapsed "$start" "$(now)")")
    scripts/up-floor.sh stop "$dir"
    printf 'round %s: first up %ss, second up %ss, floor %ss, migrations %ss\n' "$round" "${first[-1]}" "${second[-1]}" "${floor[-1]}" "${migration[-1]}"
done

python3 - "${first[*]}" "${second[*]}" "${floor[*]}" "${migration[*]}" <<'PY'
import statistics, sys
first, second, floor, migration = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
f, s, fl, m = (statistics.median(x) for x in (first, second, floor, migration))
print(f"medians: first up {f:.3f} s, second up {s:.3f} s, floor {fl:.3f} s, migrations {m:.3f} s")
print(f"first up / (floor + migrations) = {f / (fl + m):.2f}  (target <= 1.30)")
print(f"second up = {s:.3f} s, {100 * s / f:.1f}% of the first  (targets <= 0.5 s and <= 10%)")
PY

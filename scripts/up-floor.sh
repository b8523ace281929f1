#!/usr/bin/env bash
# The floor `infra-up up` is measured against: a plain script that starts the same servers from the
# same packages with the same readiness waits (a PostgreSQL login and SELECT 1, Redis AUTH + PING,
# NATS with JetStream answering, an HTTP 200 from Prometheus and the exporters), and nothing else:
# no pid bookkeeping, no port checks, no migrations, no topology.
#
#   scripts/up-floor.sh start DIR PG REDIS NATS MONITOR PROMETHEUS NATS_EXPORTER PG_EXPORTER REDIS_EXPORTER
#   scripts/up-floor.sh stop DIR
set -euo pipefail

die() { printf 'up-floor: %s\n' "$*" >&2; exit 1; }

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r | head -1; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi; }

wait_until() {
    local what=$1
    shift
    for _ in $(seq 1 3000); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    die "$what did not become ready"
}

start() {
    local dir=$1 pg=$2 redis=$3 nats=$4 monitor=$5 prometheus=$6 nats_exporter=$7 pg_exporter=$8 redis_exporter=$9
    local bin password
    bin=$(pg_bindir)
    password=$(openssl rand -hex 12)
    mkdir -p "$dir"/{pg,redis,nats,prometheus/data,logs,run}
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pg" "$dir/run" && chmod 755 "$dir"
    printf '%s\n' "$password" >"$dir/pg/pw"
    chmod 600 "$dir/pg/pw"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pg/pw"
    as_pg "$bin/initdb" -D "$dir/pg/data" -U transcription --pwfile="$dir/pg/pw" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    (as_pg "$bin/postgres" -D "$dir/pg/data" -c listen_addresses=127.0.0.1 -c port="$pg" \
        -c unix_socket_directories="$dir/run" </dev/null >"$dir/logs/postgres.log" 2>&1 &)

    cat >"$dir/redis/redis.conf" <<CONF
bind 127.0.0.1
port $redis
dir $dir/redis
appendonly yes
requirepass $password
CONF
    (redis-server "$dir/redis/redis.conf" </dev/null >"$dir/logs/redis.log" 2>&1 & echo $! >"$dir/run/redis.pid")

    cat >"$dir/nats/nats.conf" <<CONF
listen: 127.0.0.1:$nats
http: 127.0.0.1:$monitor
jetstream { store_dir: "$dir/nats" }
CONF
    (nats-server -c "$dir/nats/nats.conf" </dev/null >"$dir/logs/nats.log" 2>&1 & echo $! >"$dir/run/nats.pid")

    (DATA_SOURCE_NAME="postgresql://transcription:$password@127.0.0.1:$pg/postgres?sslmode=disable" \
        prometheus-postgres-exporter --web.listen-address="127.0.0.1:$pg_exporter" </dev/null >"$dir/logs/pg-exporter.log" 2>&1 &
        echo $! >"$dir/run/pg-exporter.pid")
    (REDIS_PASSWORD=$password prometheus-redis-exporter -redis.addr="redis://127.0.0.1:$redis" \
        -web.listen-address="127.0.0.1:$redis_exporter" </dev/null >"$dir/logs/redis-exporter.log" 2>&1 &
        echo $! >"$dir/run/redis-exporter.pid")
    ("${INFRA_UP:-infra-up}" nats-exporter --port "$nats_exporter" --monitor-port "$monitor" \
        </dev/null >"$dir/logs/nats-exporter.log" 2>&1 & echo $! >"$dir/run/nats-exporter.pid")
    printf 'global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' \
        "$prometheus" >"$dir/prometheus/prometheus.yml"
    (prometheus --config.file="$dir/prometheus/prometheus.yml" --storage.tsdb.path="$dir/prometheus/data" \
        --web.listen-address="127.0.0.1:$prometheus" </dev/null >"$dir/logs/prometheus.log" 2>&1 & echo $! >"$dir/run/prometheus.pid")

    wait_until PostgreSQL env PGPASSWORD="$password" "$bin/psql" -X -q -h 127.0.0.1 -p "$pg" -U transcription -d postgres -c 'SELECT 1'
    env PGPASSWORD="$password" "$bin/psql" -X -q -h 127.0.0.1 -p "$pg" -U transcription -d postgres -c 'CREATE DATABASE transcription' >/dev/null
    wait_until Redis redis-cli -p "$redis" -a "$password" --no-auth-warning ping
    wait_until NATS curl -sf "http://127.0.0.1:$monitor/healthz?js-enabled-only=true"
    wait_until prometheus curl -sf "http://127.0.0.1:$prometheus/-/ready"
    wait_until nats-exporter curl -sf "http://127.0.0.1:$nats_exporter/metrics"
    wait_until postgres-exporter curl -sf "http://127.0.0.1:$pg_exporter/metrics"
    wait_until redis-exporter curl -sf "http://127.0.0.1:$redis_exporter/metrics"
}

stop() {
    local dir=$1 pid pids=()
    for file in "$dir"/run/*.pid; do
        [[ -f $file ]] && pids+=("$(cat "$file")")
    done
    pid=$(head -1 "$dir/pg/data/postmaster.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        pids+=("$pid")
        kill -INT "$pid" 2>/dev/null || true
    fi
    ((${#pids[@]})) || { rm -rf "$dir"; return 0; }
    kill "${pids[@]}" 2>/dev/null || true
    # Every server must be gone before its data is: Redis refuses to exit when it cannot
    # write its append-only file, and would stay behind.
    for _ in $(seq 1 500); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1 || true; done
        ((alive)) || break
        sleep 0.02
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
    return 0
}

case ${1:-} in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) die "usage: $0 start DIR PORTS... | stop DIR" ;;
esac

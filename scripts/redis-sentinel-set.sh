#!/usr/bin/env bash
# A Redis master, its replica and three sentinels of their own on loopback, for the Sentinel
# tests (the suite's main Redis stays untouched). Every node requires PASSWORD; the sentinels
# require SENTINEL_PASSWORD. The master is known to the sentinels as "infra-master".
#   redis-sentinel-set.sh start DIR PASSWORD SENTINEL_PASSWORD
#       prints "MASTER_PORT REPLICA_PORT SENTINEL_PORT SENTINEL_PORT SENTINEL_PORT" once the
#       replica is in sync and the sentinels have found it and each other
#   redis-sentinel-set.sh kill-master DIR PASSWORD   SIGKILL to the current master (as a crash);
#                                                    prints its port
#   redis-sentinel-set.sh destroy DIR        stops everything and removes DIR
set -euo pipefail
die() { printf 'redis-sentinel-set: %s\n' "$*" >&2; exit 1; }
(($# >= 2)) || die "usage: $0 start DIR PASSWORD SENTINEL_PASSWORD | kill-master DIR | destroy DIR"
command=$1 dir=$2
server=$(command -v redis-server) || die "redis-server not found"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_node NAME PORT ARGS...: a detached redis-server whose pid is kept in DIR/NAME.pid.
start_node() {
    local name=$1 port=$2
    shift 2
    (
        for fd in /proc/$BASHPID/fd/*; do
            n=${fd##*/}
            ((n > 2)) && eval "exec $n>&-" 2>/dev/null
        done
        exec </dev/null >>"$dir/$name.log" 2>&1
        exec "$server" "$@"
    ) &
    echo $! >"$dir/$name.pid"
    echo "$port" >"$dir/$name.port"
    for _ in $(seq 100); do
        redis-cli -p "$port" --no-auth-warning -a "${AUTH:-}" PING >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "$name did not start: $(tail -3 "$dir/$name.log")"
}

case $command in
    start)
        (($# == 4)) || die "usage: $0 start DIR PASSWORD SENTINEL_PASSWORD"
        password=$3 sentinel_password=$4
        mkdir -p "$dir"
        master=$(free_port) replica=$(free_port)
        # No delay before a replica's first sync (diskless sync waits 5 s by default).
        AUTH=$password start_node master "$master" --port "$master" --bind 127.0.0.1 --requirepass "$password" --masterauth "$password" \
            --save "" --appendonly no --dir "$dir" --repl-diskless-sync-delay 0
        AUTH=$password start_node replica "$replica" --port "$replica" --bind 127.0.0.1 --requirepass "$password" --masterauth "$password" \
            --save "" --appendonly no --dir "$dir" --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$master"
        for _ in $(seq 200); do
            redis-cli -p "$master" --no-auth-warning -a "$password" INFO replication 2>/dev/null | grep -q "state=online" && break
            sleep 0.05
        done
        redis-cli -p "$master" --no-auth-warning -a "$password" INFO replication | grep -q "state=online" \
            || die "the replica did not finish its first sync in 10 s"
        sentinels=()
        for number in 1 2 3; do
            port=$(free_port)
            cat >"$dir/sentinel-$number.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
requirepass $sentinel_password
sentinel sentinel-pass $sentinel_password
sentinel monitor infra-master 127.0.0.1 $master 2
sentinel auth-pass infra-master $password
sentinel down-after-milliseconds infra-master 1000
sentinel failover-timeout infra-master 10000
sentinel parallel-syncs infra-master 1
CONF
            AUTH=$sentinel_password start_node "sentinel-$number" "$port" "$dir/sentinel-$number.conf" --sentinel
            sentinels+=("$port")
        done
        # Ready when each sentinel knows the replica and the two other sentinels.
        for _ in $(seq 200); do
            ready=1
            for port in "${sentinels[@]}"; do
                info=$(redis-cli -p "$port" --no-auth-warning -a "$sentinel_password" SENTINEL MASTER infra-master 2>/dev/null | tr '\n' ' ')
                [[ $info == *"num-slaves 1 "* && $info == *"num-other-sentinels 2 "* ]] || ready=0
            done
            ((ready)) && break
            sleep 0.1
        done
        ((ready)) || die "the sentinels did not find the replica and each other in 20 s"
        echo "$master $replica ${sentinels[*]}"
        ;;
    kill-master)
        # The master is whichever data node reports role:master.
        for name in master replica; do
            port=$(cat "$dir/$name.port")
            if redis-cli -p "$port" --no-auth-warning -a "${3:-}" ROLE 2>/dev/null | head -1 | grep -q master; then
                kill -9 "$(cat "$dir/$name.pid")"
                echo "$port"
                exit 0
            fi
        done
        die "no running master found"
        ;;
    destroy)
        # A node already gone (a killed master) must not stop the others' kill under `set -e`.
        for file in "$dir"/*.pid; do
            [[ -f $file ]] || continue
            kill -9 "$(cat "$file")" 2>/dev/null || true
        done
        rm -rf "$dir"
        ;;
    *) die "unknown command $command" ;;
esac

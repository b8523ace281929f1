#!/usr/bin/env bash
# A PostgreSQL primary and its synchronous streaming standby of their own, for failover tests
# (the suite's main server and standby stay untouched).
#   pg-pair.sh start DIR         initdb, start the primary, pg_basebackup -R, start the standby;
#                                prints "PRIMARY_PORT STANDBY_PORT"
#   pg-pair.sh stop-primary DIR  kills the primary (immediate shutdown, as a crash)
#   pg-pair.sh promote DIR       promotes the standby and waits until it takes writes
#   pg-pair.sh destroy DIR       stops both and removes DIR
# Needs INFRA_TEST_POSTGRES_BINDIR, INFRA_TEST_POSTGRES_USER and INFRA_TEST_POSTGRES_PASSWORD
# (scripts/test-servers.sh exports them). Commits wait for the standby's flush
# (synchronous_standby_names='*'), so a commit the primary acknowledged survives its loss.
set -euo pipefail
die() { printf 'pg-pair: %s\n' "$*" >&2; exit 1; }
(($# == 2)) || die "usage: $0 start|stop-primary|promote|destroy DIR"
command=$1 dir=$2
bindir=${INFRA_TEST_POSTGRES_BINDIR:?} user=${INFRA_TEST_POSTGRES_USER:?} password=${INFRA_TEST_POSTGRES_PASSWORD:?}
run=()
[[ $(id -u) -eq 0 ]] && run=(runuser -u postgres --)

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case $command in
    start)
        mkdir -p "$dir"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
        primary_port=$(free_port)
        standby_port=$(free_port)
        printf '%s\n' "$password" >"$dir/pwfile"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pwfile"
        "${run[@]}" "$bindir/initdb" -D "$dir/primary" -U "$user" --pwfile="$dir/pwfile" --auth=scram-sha-256 -E UTF8 --no-sync \
            >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$dir/initdb.log")"
        rm -f "$dir/pwfile"
        printf 'host replication %s 127.0.0.1/32 scram-sha-256\n' "$user" >>"$dir/primary/pg_hba.conf"
        "${run[@]}" "$bindir/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $primary_port -k $dir -c fsync=off -c synchronous_standby_names=*" start >/dev/null \
            || die "the primary did not start: $(tail -3 "$dir/primary.log")"
        "${run[@]}" env PGPASSWORD="$password" "$bindir/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U "$user" -D "$dir/standby" \
            -R -X stream -c fast >"$dir/basebackup.log" 2>&1 || die "pg_basebackup failed: $(tail -3 "$dir/basebackup.log")"
        "${run[@]}" "$bindir/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $standby_port -k $dir -c fsync=off -c synchronous_standby_names=" start >/dev/null \
            || die "the standby did not start: $(tail -3 "$dir/standby.log")"
        echo "$primary_port $standby_port"
        ;;
    stop-primary)
        "${run[@]}" "$bindir/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null
        ;;
    promote)
        "${run[@]}" "$bindir/pg_ctl" -D "$dir/standby" -w -t 60 promote >/dev/null
        ;;
    destroy)
        for data in "$dir/primary" "$dir/standby"; do
            [[ -f "$data/postmaster.pid" ]] || continue
            "${run[@]}" "$bindir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
        done
        rm -rf "$dir"
        ;;
    *) die "unknown command $command" ;;
esac

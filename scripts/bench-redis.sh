#!/usr/bin/env bash
# The Redis client beside redis-benchmark (C) and redis-py with hiredis, on one redis-server, in
# interleaved rounds; prints medians and ratios.   scripts/bench-redis.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=.bench/redis
mkdir -p "$out"
scripts/test-servers.sh install >/dev/null
venv=.build/bench-venv
if ! "$venv/bin/python" -c 'import redis, hiredis' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "redis[hiredis]"
fi
swift build -c release --product redis-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/redis-bench

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --pidfile "$PWD/$out/redis.pid" \
    --logfile "$PWD/$out/redis.log" --dir "$PWD/$out"
trap 'kill "$(cat "$out/redis.pid")" 2>/dev/null' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

# A mixed captured stream for the parser: the golden fixtures' replies plus a large LRANGE and HGETALL.
redis-cli -p "$port" del biglist bighash >/dev/null
python3 - "$port" "$out/stream.bin" <<'PY'
import socket, sys, glob
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out
s.sendall(b"".join(cmd("RPUSH", "biglist", *[f"item-{i}" for i in range(j, j + 100)]) for j in range(0, 10000, 100)))
s.sendall(b"".join(cmd("HSET", "bighash", f"f{i}", i * 1.5) for i in range(2000)))
s.sendall(cmd("HELLO", "3") + cmd("LRANGE", "biglist", 0, -1) + cmd("HGETALL", "bighash") + cmd("PING") + b"".join(cmd("GET", "biglist") for _ in range(50)))
s.settimeout(1)
data = b""
try:
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
golden = b""
for f in sorted(glob.glob("Fixtures/resp/*.resp")):
    for line in open(f):
        if line.startswith("< "):
            golden += bytes.fromhex(line[2:].strip())
stream = (data + golden) * max(1, (20 << 20) // max(1, len(data) + len(golden)))
open(path, "wb").write(stream)
PY
redis-cli -p "$port" del biglist bighash >/dev/null
stream_mb=$(( $(wc -c <"$out/stream.bin") / 1000000 ))

declare -A results
record() { results[$1]+="$2 "; }
for round in $(seq "$rounds"); do
    record "C seq SET" "$(redis-benchmark -p "$port" -c 1 -n 50000 -t set -q --csv | tail -1 | cut -d, -f2 | tr -d '"')"
    record "Swift seq SET" "$("$bench" "$port" sequential-set 50000)"
    record "Py seq SET" "$("$venv/bin/python" Benchmarks/redis/bench.py "$port" sequential-set 20000)"
    record "C seq GET" "$(redis-benchmark -p "$port" -c 1 -n 50000 -t get -q --csv | tail -1 | cut -d, -f2 | tr -d '"')"
    record "Swift seq GET" "$("$bench" "$port" sequential-get 50000)"
    record "Py seq GET" "$("$venv/bin/python" Benchmarks/redis/bench.py "$port" sequential-get 20000)"
    record "C pipe1000 SET" "$(redis-benchmark -p "$port" -c 1 -P 1000 -n 1000000 -t set -q --csv | tail -1 | cut -d, -f2 | tr -d '"')"
    record "Swift pipe1000 SET" "$("$bench" "$port" pipelined-set 1000000 1000)"
    record "Py pipe1000 SET" "$("$venv/bin/python" Benchmarks/redis/bench.py "$port" pipelined-set 200000 1000)"
    record "C c50 P100 SET" "$(redis-benchmark -p "$port" -c 50 -P 100 -n 1000000 -t set -q --csv | tail -1 | cut -d, -f2 | tr -d '"')"
    record "C c50 SET" "$(redis-benchmark -p "$port" -c 50 -n 200000 -t set -q --csv | tail -1 | cut -d, -f2 | tr -d '"')"
    record "Swift 50 tasks SET" "$("$bench" "$port" concurrent-set 200000 50)"
    record "Swift parse MB/s" "$("$bench" - parse "$out/stream.bin" 3)"
    record "hiredis parse MB/s" "$("$venv/bin/python" Benchmarks/redis/bench.py - parse "$out/stream.bin" 3)"
    echo "round $round of $rounds done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m() { echo "${results[$1]}" | median; }
# The median of the per-round ratios: each round measures both sides back to back, so a round
# slowed by the rest of the machine slows both, and the pair's ratio still holds.
paired() {
    paste -d' ' <(echo "${results[$1]}" | tr ' ' '\n' | grep -v '^$') <(echo "${results[$2]}" | tr ' ' '\n' | grep -v '^$') |
        awk '{printf "%.4f\n", $1 / $2}' | median | awk '{printf "%.2f", $1}'
}
printf '\nmedians of %s rounds; ratios are medians of the per-round ratios\n' "$rounds"
printf '%-34s %12s %14s %14s %10s %10s\n' "workload (ops/s)" "Swift" "redis-bench" "redis-py" "vs C" "vs py"
row() { printf '%-34s %12.0f %14.0f %14s %9sx %9s\n' "$1" "$(m "$2")" "$(m "$3")" "${4:+$(m "$4")}" "$(paired "$2" "$3")" "${4:+$(paired "$2" "$4")x}"; }
row "sequential SET, 1 connection" "Swift seq SET" "C seq SET" "Py seq SET"
row "sequential GET, 1 connection" "Swift seq GET" "C seq GET" "Py seq GET"
row "1M SET, batches of 1000, 1 conn" "Swift pipe1000 SET" "C pipe1000 SET" "Py pipe1000 SET"
row "50 tasks on 1 conn (C: 50 conns)" "Swift 50 tasks SET" "C c50 SET" ""
row "50 tasks on 1 conn (C: -c 50 -P 100)" "Swift 50 tasks SET" "C c50 P100 SET" ""
printf '%-34s %12s %14s %14s %10s\n' "parser, MB/s (${stream_mb} MB stream)" "$(m "Swift parse MB/s")" "" "$(m "hiredis parse MB/s") (hiredis)" "$(paired "Swift parse MB/s" "hiredis parse MB/s")x"
for key in "${!results[@]}"; do echo "  $key: ${results[$key]}"; done | sort

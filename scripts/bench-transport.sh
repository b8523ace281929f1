#!/usr/bin/env bash
# Loopback echo round trips: the Swift transport beside plain blocking C and Python socket loops,
# against one C epoll echo server, interleaved in one run (the machine is noisy; only ratios
# measured side by side mean anything). Prints a table of medians and the ratio to blocking C.
#   scripts/bench-transport.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-2}
out=.bench
mkdir -p "$out"
cc -O2 -o "$out/echo_server" Benchmarks/echo/echo_server.c
cc -O2 -pthread -o "$out/blocking_client" Benchmarks/echo/blocking_client.c
swift build -c release --product transport-bench >/dev/null
swift_bench=$(swift build -c release --show-bin-path)/transport-bench

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$out/echo_server" "$port" >"$out/echo_server.log" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
until grep -q ready "$out/echo_server.log" 2>/dev/null; do sleep 0.05; done

declare -A results
record() { results[$1]+="$2 "; }
for round in $(seq "$rounds"); do
    record "C blocking, 1 connection" "$("$out/blocking_client" "$port" 1 "$seconds")"
    record "Swift transport, 1 connection" "$("$swift_bench" "$port" 1 "$seconds")"
    record "Python blocking, 1 connection" "$(python3 Benchmarks/echo/blocking_client.py "$port" "$seconds")"
    record "C blocking, 100 connections (100 threads)" "$("$out/blocking_client" "$port" 100 "$seconds")"
    record "Swift transport, 100 connections" "$("$swift_bench" "$port" 100 "$seconds")"
    echo "round $round of $rounds done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
c1=$(echo "${results["C blocking, 1 connection"]}" | median)
c100=$(echo "${results["C blocking, 100 connections (100 threads)"]}" | median)
printf '\n%-44s %14s %10s   %s\n' "client (1-byte echo, loopback)" "round trips/s" "vs C" "all rounds"
for name in "C blocking, 1 connection" "Swift transport, 1 connection" "Python blocking, 1 connection" \
    "C blocking, 100 connections (100 threads)" "Swift transport, 100 connections"; do
    m=$(echo "${results[$name]}" | median)
    base=$c1
    [[ $name == *100* ]] && base=$c100
    printf '%-44s %14s %9sx   %s\n' "$name" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", a / b}')" "${results[$name]}"
done

#!/usr/bin/env bash
# The NATS client beside the Go reference client (nats.go, Debian's package, built here in GOPATH
# mode) and nats-py, on one nats-server of its own, in interleaved rounds; prints medians and ratios.
#   scripts/bench-nats.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=.bench/nats
mkdir -p "$out"
scripts/test-servers.sh install >/dev/null

# The Go peer: golang-go and golang-github-nats-io-go-nats-dev install nats.go and its
# dependencies under /usr/share/gocode, which GOPATH mode builds against offline.
if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/github.com/nats-io/nats.go ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "bench-nats: install golang-go golang-github-nats-io-go-nats-dev" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go golang-github-nats-io-go-nats-dev >/dev/null
fi
(cd Benchmarks/nats && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../$out/gocache" go build -o "../../$out/nats-go-bench" bench.go)
go_version=$(dpkg-query -W -f '${Version}' golang-github-nats-io-go-nats-dev 2>/dev/null || echo "?")

venv=.build/bench-venv
if ! "$venv/bin/python" -c 'import nats' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "nats-py==2.16.0"
fi
swift build -c release --product nats-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/nats-bench

server=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
rm -rf "$out/jetstream"
"$server" -a 127.0.0.1 -p "$port" -js -sd "$out/jetstream" >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null' EXIT
until python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; do sleep 0.1; done
url="nats://127.0.0.1:$port"

declare -A results
record() { results[$1]+="$2 "; }
# An object of $2 MiB stored and read back by client $1 ("Swift", "Go" or "Py"): put and get MB/s
# and the client's peak resident memory are recorded.
object_round() {
    local client=$1 megabytes=$2 put log=$out/object-stderr
    case $client in
        Swift) put=$("$bench" "$url" obj-put "$megabytes" 0 2>"$log") ;;
        Go) put=$("$out/nats-go-bench" "$url" obj-put "$megabytes" 0 2>"$log") ;;
        Py) put=$("$venv/bin/python" Benchmarks/nats/bench.py "$url" obj-put "$megabytes" 0 2>"$log") ;;
    esac
    record "$client obj-put-$megabytes" "$put"
    record "$client obj-get-$megabytes" "$(awk '/get MB\/s/ {print $3}' "$log")"
    record "$client obj-rss-$megabytes" "$(awk '/peak RSS MB/ {print $4}' "$log")"
}
for round in $(seq "$rounds"); do
    for workload in publish pubsub request js-publish js-publish-async fetch kv-put kv-get; do
        case $workload in
            request) count=20000 py_count=5000 ;;
            js-publish) count=20000 py_count=5000 ;;
            js-publish-async | fetch) count=20000 py_count=20000 ;;
            kv-put) count=10000 py_count=5000 ;;
            kv-get) count=20000 py_count=5000 ;;
            *) count=1000000 py_count=200000 ;;
        esac
        record "Swift $workload" "$("$bench" "$url" "$workload" "$count" 16)"
        record "Go $workload" "$("$out/nats-go-bench" "$url" "$workload" "$count" 16)"
        record "Py $workload" "$("$venv/bin/python" Benchmarks/nats/bench.py "$url" "$workload" "$py_count" 16)"
    done
    for client in Swift Go Py; do object_round "$client" 200; done
    object_round Swift 20
    echo "round $round of $rounds done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m() { echo "${results[$1]}" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '\nnats-server %s; nats.go %s; nats-py 2.16.0; 16-byte payloads; medians of %s rounds\n' \
    "$("$server" --version | awk '{print $2}')" "$go_version" "$rounds"
printf '%-38s %12s %12s %12s %9s %9s\n' "workload (messages/s)" "Swift" "Go" "nats-py" "vs Go" "vs py"
row() {
    printf '%-38s %12.0f %12.0f %12.0f %8sx %8sx\n' "$1" "$(m "Swift $2")" "$(m "Go $2")" "$(m "Py $2")" \
        "$(ratio "$(m "Swift $2")" "$(m "Go $2")")" "$(ratio "$(m "Swift $2")" "$(m "Py $2")")"
}
row "publish 1M, then flush" publish
row "pub -> sub through the server (1M)" pubsub
row "sequential request/reply" request
row "JetStream publish, each acked (20k)" js-publish
row "JetStream async publish, 4k pending (20k)" js-publish-async
row "JetStream fetch, batches of 100 (20k)" fetch
row "KV put, sequential" kv-put
row "KV get, sequential" kv-get
printf '%-38s %12s %12s %12s %9s %9s\n' "Object Store, 200 MiB file (MB/s)" "" "" "" "" ""
row "  put from a file" obj-put-200
row "  get to a file" obj-get-200
printf '%-38s %12.0f %12.0f %12.0f\n' "  peak RSS (MB)" "$(m "Swift obj-rss-200")" "$(m "Go obj-rss-200")" "$(m "Py obj-rss-200")"
printf 'Swift peak RSS: %s MB with a 20 MiB object, %s MB with a 200 MiB one\n' "$(m "Swift obj-rss-20")" "$(m "Swift obj-rss-200")"
for key in "${!results[@]}"; do echo "  $key: ${results[$key]}"; done | sort

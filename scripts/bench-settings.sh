#!/usr/bin/env bash
# The settings loader beside Python on the same inputs, interleaved in one run (ratios only mean
# something side by side on a noisy machine):
#   TOML parsing: the Swift parser vs tomllib on a large generated document (MB/s);
#   a full load of the project's settings (settings.toml, a .secrets.toml, 50 variables) vs Dynaconf.
#   scripts/bench-settings.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
out=.bench/settings
mkdir -p "$out/project"
scripts/test-servers.sh install >/dev/null
venv=.build/oracle-venv
if ! "$venv/bin/python" -c 'import dynaconf' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "dynaconf==3.3.5"
fi
swift build -c release --product settings-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/settings-bench

python3 Benchmarks/settings/generate.py "$out/large.toml" 4000
cp settings.toml "$out/project/settings.toml"
cp .secrets.toml.example "$out/project/.secrets.toml"
# 50 variables, half of them nested, all typed by TOML rules.
variables=(ENV_FOR_DYNACONF=production)
for i in $(seq 1 25); do variables+=("TRANSCRIPTION_EXTRA_$i=$i"); done
for i in $(seq 1 20); do variables+=("TRANSCRIPTION_POSTGRES__OPTION_$i=value-$i"); done
variables+=("TRANSCRIPTION_NATS__URL=nats://127.0.0.1:4222" "TRANSCRIPTION_BOT_TOKEN=123456:bench-token"
    "TRANSCRIPTION_SECRET_KEY=$(openssl rand -hex 24)" "TRANSCRIPTION_POSTGRES__PASSWORD=$(openssl rand -hex 12)"
    "TRANSCRIPTION_GRAFANA__ADMIN_PASSWORD=$(openssl rand -hex 12)")
size=$(wc -c <"$out/large.toml")
echo "TOML document: $((size / 1024)) KiB; settings load: shipped files + ${#variables[@]} variables" >&2

declare -A results
record() { results[$1]+="$2 "; }
for round in $(seq "$rounds"); do
    record "swift-toml" "$("$bench" toml "$out/large.toml" 20)"
    record "python-toml" "$("$venv/bin/python" Benchmarks/settings/bench.py toml "$out/large.toml" 5)"
    record "swift-load" "$(env -i PATH="$PATH" "${variables[@]}" "$bench" load "$out/project" 2000)"
    record "python-load" "$(env -i PATH="$PATH" "${variables[@]}" "$venv/bin/python" Benchmarks/settings/bench.py load "$out/project" 50)"
    echo "round $round of $rounds done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
st=$(echo "${results[swift-toml]}" | median); pt=$(echo "${results[python-toml]}" | median)
sl=$(echo "${results[swift-load]}" | median); pl=$(echo "${results[python-load]}" | median)
printf '\n%-44s %12s %12s %8s\n' "workload" "Swift" "Python" "ratio"
printf '%-44s %12s %12s %7sx\n' "TOML parse, MB/s (Swift vs tomllib)" "$st" "$pt" "$(ratio "$st" "$pt")"
printf '%-44s %12s %12s %7sx\n' "full settings load, loads/s (vs Dynaconf)" "$sl" "$pl" "$(ratio "$sl" "$pl")"
echo "all rounds: swift-toml ${results[swift-toml]}| python-toml ${results[python-toml]}| swift-load ${results[swift-load]}| python-load ${results[python-load]}"

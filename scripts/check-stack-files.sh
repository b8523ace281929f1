#!/usr/bin/env bash
# Checks the stack files without a Docker engine: docker-compose.yml with Debian's docker-compose
# (`config -q`, with .env.example's values), server.conf with nats-server's own check, Prometheus's
# configuration with promtool, and the Grafana provisioning and dashboards as YAML and JSON whose
# data sources exist. Installs docker-compose and prometheus with apt-get when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v promtool >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || { echo "check-stack-files: install ${missing[*]} (apt-get)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The package starts a Prometheus service of its own; this check needs only promtool.
    systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus 2>/dev/null || true
fi
nats_server=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
[[ -x $nats_server ]] || nats_server=$(command -v nats-server)

echo "check-stack-files: docker-compose.yml"
docker-compose --env-file .env.example -f docker-compose.yml config -q
echo "check-stack-files: server.conf"
NATS_USER=check NATS_PASSWORD=check "$nats_server" -t -c server.conf
echo "check-stack-files: config/prometheus/prometheus.yml"
promtool check config config/prometheus/prometheus.yml >/dev/null
echo "check-stack-files: Grafana provisioning and dashboards"
python3 - <<'PY'
import json, pathlib, sys
import yaml  # PyYAML, a dependency of docker-compose
uids = set()
for path in pathlib.Path("config/grafana/provisioning").rglob("*.yml"):
    document = yaml.safe_load(path.read_text())
    for source in document.get("datasources", []):
        uids.add(source["uid"])
problems = []
for path in pathlib.Path("config/grafana/dashboards").glob("*.json"):
    dashboard = json.loads(path.read_text())
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid not in uids:
                problems.append(f"{path}: panel {panel.get('title')!r} uses data source {uid!r}, which is not provisioned")
            if not target.get("expr"):
                problems.append(f"{path}: panel {panel.get('title')!r} has no query")
if problems:
    sys.exit("\n".join(problems))
PY
echo "check-stack-files: all valid"

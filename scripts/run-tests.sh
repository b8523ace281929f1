#!/usr/bin/env bash
# Runs the NATS and JetStream tests against the legacy nats-server (Debian's 2.9.10) when it is running, then the
# whole suite against the current servers of scripts/test-servers.sh (last, so its summary closes the log).
# Tests run one at a time: several assert latencies that a loaded 2-core machine would blur.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${INFRA_TEST_NATS_LEGACY_URL:-}" ]]; then
    echo "run-tests: NATS tests against the legacy nats-server at $INFRA_TEST_NATS_LEGACY_URL"
    INFRA_TEST_NATS_URL=$INFRA_TEST_NATS_LEGACY_URL INFRA_TEST_NATS_SERVER=legacy \
        swift test --skip-build --no-parallel --filter 'NATS|JetStream' "$@"
fi
echo "run-tests: the whole suite"
swift test --skip-build --no-parallel "$@"

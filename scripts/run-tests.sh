#!/usr/bin/env bash
# Runs the whole test suite against the servers of scripts/test-servers.sh, then the NATS tests a
# second time against the legacy nats-server (Debian's 2.9.10) when it is running.
# Tests run one at a time: several assert latencies that a loaded 2-core machine would blur.
set -euo pipefail
cd "$(dirname "$0")/.."
swift test --skip-build --no-parallel "$@"
if [[ -n "${INFRA_TEST_NATS_LEGACY_URL:-}" ]]; then
    echo "run-tests: NATS tests against the legacy nats-server at $INFRA_TEST_NATS_LEGACY_URL"
    INFRA_TEST_NATS_URL=$INFRA_TEST_NATS_LEGACY_URL INFRA_TEST_NATS_SERVER=legacy \
        swift test --skip-build --no-parallel --filter 'NATS' "$@"
fi

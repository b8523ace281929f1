#!/usr/bin/env bash
# Runs the NATS and JetStream tests against the legacy nats-server (Debian's 2.9.10) when it is running, the
# PostgreSQL client's tests against PostgreSQL 18 when it is running, then the whole suite against the
# current servers of scripts/test-servers.sh (last, so its summary closes the log).
# Tests run one at a time: several assert latencies that a loaded 2-core machine would blur.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${INFRA_TEST_NATS_LEGACY_URL:-}" ]]; then
    echo "run-tests: NATS tests against the legacy nats-server at $INFRA_TEST_NATS_LEGACY_URL"
    INFRA_TEST_NATS_URL=$INFRA_TEST_NATS_LEGACY_URL INFRA_TEST_NATS_SERVER=legacy \
        swift test --skip-build --no-parallel --filter 'NATS|JetStream' "$@"
fi
if [[ -n "${INFRA_TEST_POSTGRES18_PORT:-}" ]]; then
    # The PostgreSQL client's suite again, against PostgreSQL 18 (protocol 3.2 asked for by the
    # 3.2 tests; a build without TLS and without a standby: INFRA_TEST_POSTGRES_PASS=18 says so,
    # and the tests that need either are left to the main pass).
    echo "run-tests: PostgreSQL tests against PostgreSQL 18 on port $INFRA_TEST_POSTGRES18_PORT"
    INFRA_TEST_POSTGRES_PASS=18 INFRA_TEST_POSTGRES_PORT=$INFRA_TEST_POSTGRES18_PORT \
        INFRA_TEST_POSTGRES_PASSWORD=$INFRA_TEST_POSTGRES18_PASSWORD INFRA_TEST_POSTGRES_SOCKET_DIR=$INFRA_TEST_POSTGRES18_SOCKET_DIR \
        INFRA_TEST_POSTGRES_MD5_PASSWORD=$INFRA_TEST_POSTGRES18_MD5_PASSWORD \
        INFRA_TEST_POSTGRES_CLEARTEXT_PASSWORD=$INFRA_TEST_POSTGRES18_CLEARTEXT_PASSWORD \
        swift test --skip-build --no-parallel --filter 'PGWireTests' "$@"
fi
echo "run-tests: the whole suite"
swift test --skip-build --no-parallel "$@"

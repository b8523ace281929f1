# The project's commands. `make test` is the one test command: it installs what is missing
# (apt-get / pip, as root), starts PostgreSQL, Redis and nats-server on loopback ports of their own,
# builds, runs every test, and stops the servers, also when tests fail.

.PHONY: all build up down status logs test test-fast check-stack migrate bench bench-compare bench-micro bench-check bench-thresholds fuzz soak sanitize clean

all: build

# Compiles everything, tests included, failing on a warning; installs nothing (libssl-dev's
# headers must be present: `make test` installs them).
build:
	scripts/check-build.sh

# The local stack (native under .infra/, or Docker Compose when a Docker engine answers).
up:
	swift run infra-up up

down:
	swift run infra-up down

status:
	swift run infra-up status

# make logs SERVICE=postgres
logs:
	swift run infra-up logs $(or $(SERVICE),postgres)

test:
	scripts/test-servers.sh install
	scripts/check-stack-files.sh
	scripts/check-build.sh
	scripts/check-build.sh --release
	scripts/test-servers.sh run -- scripts/run-tests.sh

# Skips the second NATS pass against the legacy server.
test-fast:
	scripts/test-servers.sh install
	scripts/check-build.sh
	scripts/test-servers.sh run --no-legacy-nats -- scripts/run-tests.sh

# Every client beside its peers (redis-benchmark, redis-py, pgbench, postgres-nio, asyncpg,
# psycopg, nats.go, nats-py, a blocking C echo client, tomllib) on the test servers, in one table:
# throughput ratios, targets, and client CPU time per operation. BENCH_ROUNDS rounds (default 3);
# results in .bench/bench-*.json. The per-client scripts (scripts/bench-*.sh) give more detail.
bench:
	scripts/test-servers.sh install
	scripts/test-servers.sh run --no-legacy-nats -- scripts/bench.py run --rounds $(or $(BENCH_ROUNDS),3)

# make bench-compare A=.bench/bench-1.json B=.bench/bench-2.json
bench-compare:
	scripts/bench.py compare $(A) $(B)

# Micro-benchmarks of the parsers and encoders (ordo-one/benchmark, in Benchmarks/micro): time,
# CPU and allocations per message. bench-check fails when a hot path allocates more than
# Benchmarks/micro/Thresholds records; bench-thresholds records the current counts.
bench-micro:
	cd Benchmarks/micro && swift package benchmark

bench-check:
	cd Benchmarks/micro && SWIFT_DETERMINISTIC_HASHING=1 swift package benchmark thresholds check --metric mallocCountTotal

bench-thresholds:
	cd Benchmarks/micro && SWIFT_DETERMINISTIC_HASHING=1 swift package --allow-writing-to-package-directory benchmark thresholds update --metric mallocCountTotal

# The stack files (docker-compose.yml, server.conf, Prometheus, Grafana) checked without Docker.
check-stack:
	scripts/check-stack-files.sh

# Applies the migrations to the database of the settings (DATABASE_URL, [postgres]).
migrate:
	swift run infra-up migrate upgrade head

# Coverage-guided fuzzing of the parsers; FUZZ_SECONDS per target (default 120).
fuzz:
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),120)

# 30 minutes (SOAK_MINUTES) of mixed load on all three clients at a fixed rate: resident memory,
# descriptors and threads must stay flat after the warm-up. Not part of `make test`.
soak:
	scripts/test-servers.sh install
	swift build -c release --product soak
	scripts/test-servers.sh run --no-legacy-nats -- "$$(swift build -c release --show-bin-path)/soak" $(or $(SOAK_MINUTES),30)

# The whole suite under AddressSanitizer and LeakSanitizer (its own build in .build-asan); any
# memory error or leak fails it. Not part of `make test`.
sanitize:
	scripts/test-servers.sh install
	scripts/sanitize.sh

clean:
	rm -rf .build .build-fuzz .build-asan .bench Benchmarks/micro/.build

#!/usr/bin/env python3
"""make bench: every client beside its peers on the same servers, in one table.

    scripts/bench.py run [--rounds N] [--only GROUP,...] [--no-cpu]   (under scripts/test-servers.sh run)
    scripts/bench.py compare A.json B.json
    scripts/bench.py markdown RUN.json                                (the table as the README shows it)

`run` measures each workload for our client and each peer in interleaved rounds (every round runs
every client once, back to back, so a round slowed by the rest of the machine slows all of them)
and prints medians, the median of the per-round ratios against each peer, the workload's target
and whether it is met. Beside throughput it gives each client's CPU time per operation (user +
system of the client process, from the kernel's accounting of waited-for children): each client
also runs a tenth of the count, and the difference of the two runs' CPU over the difference of
their operations is the cost of one more operation, free of process start, connection set-up and
warm-up. On two cores the client and the server share the CPUs, so that figure, which does not move
with the loopback's speed, says more than throughput. The server's CPU per operation is measured
the same way (its process tree, found by the port it listens on): where it is near the wall time
per operation, the server is the limit and the client's CPU is the figure to compare. The loopback
round trip of a blocking C ping-pong is measured first, so that runs on two machines can be
compared.

The results go to .bench/bench-<UTC time>.json (and .bench/bench-latest.json); `compare` sets two
of them side by side.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".bench")


def fail(message):
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Running one client


class Measurement:
    def __init__(self, rate, cpu_per_op, server_cpu_per_op=None):
        self.rate = rate
        self.cpu_per_op = cpu_per_op
        self.server_cpu_per_op = server_cpu_per_op


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def listening_pid(port):
    """The process that listens on TCP `port` on this machine, or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == int(port):
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def process_tree_cpu(root):
    """CPU seconds of `root` and every process under it, with the children they have reaped (a
    PostgreSQL backend's time reaches the postmaster's when it exits)."""
    parents, times = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(pid)] = int(fields[1])
        times[int(pid)] = sum(int(value) for value in fields[11:15])
    total, stack = 0, [root]
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / CLOCK_TICKS


def execute(argv, env=None, server=None):
    """Runs argv to completion; returns (stdout, CPU seconds of it and its waited-for children,
    CPU seconds the server process tree `server` spent meanwhile, or None)."""
    before = children_cpu()
    server_before = process_tree_cpu(server) if server else None
    completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    cpu = children_cpu() - before
    server_cpu = process_tree_cpu(server) - server_before if server else None
    if completed.returncode != 0:
        fail(f"{' '.join(argv)} exited with {completed.returncode}: {completed.stderr.strip()[-2000:]}")
    return completed.stdout, cpu, server_cpu


def last_number(text):
    numbers = re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)
    if not numbers:
        fail(f"no figure in the output: {text.strip()[-300:]}")
    return float(numbers[-1])


def redis_benchmark_rate(text):
    # --csv: "test","rps","avg_latency_ms",... on the last line
    row = text.strip().splitlines()[-1].split(",")
    return float(row[1].strip('"'))


def pgbench_rate(text):
    match = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    if not match:
        fail(f"pgbench printed no tps: {text.strip()[-300:]}")
    return float(match.group(1))


class Client:
    """One program on one workload: `command(count)` gives its argv; the rate is parsed from its
    standard output; `timed` when the count is seconds (operations = rate × seconds)."""

    def __init__(self, name, command, parse=last_number, env=None, timed=False, count=None):
        self.name = name
        self.command = command
        self.parse = parse
        self.env = env
        self.timed = timed
        self.count = count

    def measure(self, count, with_cpu, server=None):
        count = self.count or count
        out, cpu, server_cpu = execute(self.command(count), self.env, server)
        rate = self.parse(out)
        if not with_cpu:
            return Measurement(rate, None)
        small = max(1, count // 10) if not self.timed else count / 10
        small_out, small_cpu, small_server_cpu = execute(self.command(small), self.env, server)
        operations = rate * count if self.timed else count
        small_operations = self.parse(small_out) * small if self.timed else small
        extra = operations - small_operations

        def per_operation(full, tenth):
            if full is None or extra <= 0:
                return None
            value = (full - tenth) / extra
            return value if value > 0 else None  # the two runs' noise exceeded the difference

        return Measurement(rate, per_operation(cpu, small_cpu), per_operation(server_cpu, small_server_cpu))


class Workload:
    """A workload: our client first, then its peers. `target` is (peer, least ratio of ours to
    it); `cpu_target` (peer, largest ratio of our CPU per operation to its)."""

    def __init__(self, key, group, title, unit, count, clients, target=None, cpu_target=None, cpu=True):
        self.key = key
        self.group = group
        self.title = title
        self.unit = unit
        self.count = count
        self.clients = clients
        self.target = target
        self.cpu_target = cpu_target
        self.cpu = cpu


# ---------------------------------------------------------------------------------------------
# Tools: the programs of ours, and the peers (installed here when missing)


def need(variable):
    value = os.environ.get(variable)
    if not value:
        fail(f"{variable} is not set: run under scripts/test-servers.sh run (make bench does)")
    return value


def sh(command, **kwargs):
    subprocess.run(command, shell=True, check=True, cwd=ROOT, **kwargs)


def swift_products(products):
    for product in products:
        sh(f"swift build -c release --product {product} >/dev/null")
    return subprocess.run(
        ["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True
    ).stdout.strip()


def bench_venv():
    venv = os.path.join(OUT, "venv")
    python = os.path.join(venv, "bin", "python")
    wanted = ["redis[hiredis]", "asyncpg", "psycopg[binary]", "nats-py==2.16.0", "dynaconf==3.3.5"]
    probe = "import redis, hiredis, asyncpg, psycopg, nats, dynaconf"
    if not os.path.exists(python):
        sh(f"python3 -m venv {venv}")
    if subprocess.run([python, "-c", probe], stderr=subprocess.DEVNULL).returncode != 0:
        sh(f"{python} -m pip install --quiet " + " ".join(f"'{w}'" for w in wanted))
    return python


def apt_install(packages):
    if os.getuid() != 0:
        fail("install " + " ".join(packages) + " (apt-get, as root), or run make bench as root")
    sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " + " ".join(packages) + " >/dev/null")


def nats_go_bench():
    if not shutil.which("go") or not os.path.isdir("/usr/share/gocode/src/github.com/nats-io/nats.go"):
        apt_install(["golang-go", "golang-github-nats-io-go-nats-dev"])
    binary = os.path.join(OUT, "nats-go-bench")
    sh(
        f"cd Benchmarks/nats && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE={OUT}/gocache go build -o {binary} bench.go"
    )
    return binary


def postgres_nio_bench():
    sh("cd Benchmarks/postgres-nio-bench && swift build -c release >/dev/null")
    return os.path.join(ROOT, "Benchmarks/postgres-nio-bench/.build/release/postgres-nio-bench")


def echo_programs():
    server = os.path.join(OUT, "echo_server")
    client = os.path.join(OUT, "blocking_client")
    sh(f"cc -O2 -o {server} Benchmarks/echo/echo_server.c")
    sh(f"cc -O2 -pthread -o {client} Benchmarks/echo/blocking_client.c")
    return server, client


def version_of(argv, pattern=r"(\d+\.\d+(?:\.\d+)?)"):
    try:
        text = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    except OSError:
        return "?"
    match = re.search(pattern, text)
    return match.group(1) if match else "?"


# ---------------------------------------------------------------------------------------------
# The workloads


def workloads(tools, groups):
    """The chosen groups' workloads. Each group is built by a function of its own, so that the
    commands' closures capture that group's ports and paths (Python binds a closure's names late)."""
    builders = {"transport": transport_workloads, "redis": redis_workloads, "postgres": postgres_workloads,
                "nats": nats_workloads, "settings": settings_workloads}
    return [w for group, build in builders.items() if group in groups for w in build(tools)]


def transport_workloads(tools):
    bin_path, blocking_client, echo_port = tools["bin"], tools["blocking_client"], tools["echo_port"]

    def echo(key, title, **variables):
        """Ours with `variables` set (the transport-bench mode), beside the blocking C client."""
        return Workload(key, "transport", title, "round trips/s", 2, [
            Client("ours", lambda s: [f"{bin_path}/transport-bench", str(echo_port), "1", str(s)], timed=True,
                   env=dict(os.environ, **variables)),
            Client("blocking C", lambda s: [blocking_client, str(echo_port), "1", str(s)], timed=True),
        ], target=("blocking C", 0.95))

    return [
        echo("transport.echo", "1-byte echo, 1 connection"),
        echo("transport.echo-inline", "1-byte echo, 1 connection, inline read wait", TRANSPORT_BENCH_INLINE="1"),
        echo("transport.echo-reactor", "1-byte echo, 1 connection, task on the reactor's thread", TRANSPORT_BENCH_ON_REACTOR="1"),
    ]


def redis_workloads(tools):
    bin_path, python = tools["bin"], tools["python"]
    port = need("INFRA_TEST_REDIS_PORT")
    password = need("INFRA_TEST_REDIS_PASSWORD")
    env = dict(os.environ, REDIS_PASSWORD=password)
    ours = f"{bin_path}/redis-bench"
    py = [python, "Benchmarks/redis/bench.py"]

    def redis_benchmark(*arguments):
        return lambda n: ["redis-benchmark", "-p", port, "-a", password, "--csv", "-n", str(n), *arguments]

    return [
        Workload("redis.set", "redis", "sequential SET, 1 connection", "ops/s", 50_000, [
            Client("ours", lambda n: [ours, port, "sequential-set", str(n)], env=env),
            Client("redis-benchmark -c 1", redis_benchmark("-c", "1", "-t", "set"), parse=redis_benchmark_rate),
            Client("redis-py", lambda n: [*py, port, "sequential-set", str(n)], env=env, count=20_000),
        ], target=("redis-benchmark -c 1", 1.0), cpu_target=("redis-benchmark -c 1", 1.1)),
        Workload("redis.get", "redis", "sequential GET, 1 connection", "ops/s", 50_000, [
            Client("ours", lambda n: [ours, port, "sequential-get", str(n)], env=env),
            Client("redis-benchmark -c 1", redis_benchmark("-c", "1", "-t", "get"), parse=redis_benchmark_rate),
            Client("redis-py", lambda n: [*py, port, "sequential-get", str(n)], env=env, count=20_000),
        ], target=("redis-benchmark -c 1", 1.0), cpu_target=("redis-benchmark -c 1", 1.1)),
        Workload("redis.pipeline", "redis", "1M SET in batches of 1,000, 1 connection", "ops/s", 1_000_000, [
            Client("ours", lambda n: [ours, port, "pipelined-set", str(n), "1000"], env=env),
            Client("redis-benchmark -P 1000", redis_benchmark("-c", "1", "-P", "1000", "-t", "set"), parse=redis_benchmark_rate),
            Client("redis-py", lambda n: [*py, port, "pipelined-set", str(n), "1000"], env=env, count=200_000),
        ], target=("redis-benchmark -P 1000", 1.0)),
        # The same through pipelineDiscardingReplies, which keeps only errors, as redis-benchmark
        # keeps no reply: the CPU target is this row's.
        Workload("redis.pipeline-discarding", "redis", "1M SET in batches of 1,000, replies discarded", "ops/s", 1_000_000, [
            Client("ours", lambda n: [ours, port, "pipelined-set-discarding", str(n), "1000"], env=env),
            Client("redis-benchmark -P 1000", redis_benchmark("-c", "1", "-P", "1000", "-t", "set"), parse=redis_benchmark_rate),
        ], target=("redis-benchmark -P 1000", 1.0), cpu_target=("redis-benchmark -P 1000", 1.2)),
        # Client-side caching: a hit against redis-py's cache, and against our own round trip.
        Workload("redis.cached-get", "redis", "cached GET (client-side caching, every GET a hit)", "ops/s", 2_000_000, [
            Client("ours", lambda n: [ours, port, "cached-get", str(n)], env=env),
            Client("redis-py cache", lambda n: [*py, port, "cached-get", str(n)], env=env, count=200_000),
            Client("ours uncached", lambda n: [ours, port, "sequential-get", str(n)], env=env, count=50_000),
        ], target=("redis-py cache", 3.0)),
        Workload("redis.tasks", "redis", "50 tasks on 1 connection (peer: 50 connections)", "ops/s", 200_000, [
            Client("ours", lambda n: [ours, port, "concurrent-set", str(n), "50"], env=env),
            Client("redis-benchmark -c 50", redis_benchmark("-c", "50", "-t", "set"), parse=redis_benchmark_rate),
        ], target=("redis-benchmark -c 50", 1.5)),
    ]


def postgres_workloads(tools):
    bin_path, python, nio = tools["bin"], tools["python"], tools["nio"]
    arguments = [need("INFRA_TEST_POSTGRES_HOST"), need("INFRA_TEST_POSTGRES_PORT"), need("INFRA_TEST_POSTGRES_USER"),
                 need("INFRA_TEST_POSTGRES_PASSWORD"), need("INFRA_TEST_POSTGRES_DATABASE")]
    host, port, user, password, database = arguments
    env = dict(os.environ, PGPASSWORD=password)
    pgbench = tools["pgbench"]
    os.makedirs(os.path.join(OUT, "postgres"), exist_ok=True)
    select1 = os.path.join(OUT, "postgres", "select1.sql")
    prepared = os.path.join(OUT, "postgres", "prepared.sql")
    with open(select1, "w") as f:
        f.write("SELECT 1;\n")
    with open(prepared, "w") as f:
        f.write("\\set n random(1, 1000000)\nSELECT :n::int;\n")

    def ours(mode):
        return lambda n: [f"{bin_path}/pg-bench", *arguments, mode, str(n)]

    def peer(name, mode, count=None):
        if name == "postgres-nio":
            return Client(name, lambda n: [nio, *arguments, mode, str(n)], count=count)
        return Client(name, lambda n: [python, "Benchmarks/postgres/bench.py", name, *arguments, mode, str(n)], count=count)

    def pgbench_client(protocol, script):
        return Client(f"pgbench ({protocol})", lambda n: [pgbench, "-h", host, "-p", port, "-U", user, "-n", "-c", "1", "-t",
                                                           str(n), "-M", protocol, "-f", script, database],
                      parse=pgbench_rate, env=env)

    return [
        Workload("postgres.select1", "postgres", "SELECT 1, simple protocol, sequential", "queries/s", 20_000, [
            Client("ours", ours("select1")), pgbench_client("simple", select1), peer("postgres-nio", "select1"),
            peer("asyncpg", "select1"),
        ], target=("pgbench (simple)", 1.0)),
        Workload("postgres.prepared", "postgres", "SELECT $1::int, prepared, sequential", "queries/s", 20_000, [
            Client("ours", ours("prepared")), pgbench_client("prepared", prepared), peer("postgres-nio", "prepared"),
            peer("asyncpg", "prepared"),
        ], target=("pgbench (prepared)", 1.0)),
        Workload("postgres.fetch", "postgres", "fetch 1M rows (int8, text, timestamptz)", "rows/s", 1_000_000, [
            Client("ours", ours("fetch")), peer("postgres-nio", "fetch"), peer("asyncpg", "fetch"),
            peer("psycopg", "fetch"),
        ], target=("asyncpg", 1.5)),
        # 500,000 rows: 50,000 take about 15 ms, too short for the marginal CPU per row to stand
        # above a process's start. Text lines: every client formats each row as a string.
        Workload("postgres.copy", "postgres", "COPY in text lines, 500,000 rows", "rows/s", 500_000, [
            Client("ours", ours("copy")), peer("postgres-nio", "copy"),
        ], target=("postgres-nio", 1.3)),
        # Typed rows, each library's own way: ours and asyncpg send binary COPY; postgres-nio has
        # only text lines, so it is the same program as above.
        Workload("postgres.copy-rows", "postgres", "COPY in typed rows, 500,000 rows", "rows/s", 500_000, [
            Client("ours", ours("copy-rows")), peer("postgres-nio", "copy"), peer("asyncpg", "copy"),
        ], target=("postgres-nio", 1.3)),
        # 200,000 rows, so that the marginal CPU per row (against a run of 20,000) stands above
        # the noise; postgres-nio, which waits for each row's reply, inserts 20,000.
        Workload("postgres.insert", "postgres", "executeMany insert, 200,000 rows", "rows/s", 200_000, [
            Client("ours", ours("insert")), peer("asyncpg", "insert"), peer("postgres-nio", "insert", count=20_000),
        ], target=("asyncpg", 1.2)),
        Workload("postgres.connect", "postgres", "connect + SCRAM + close", "connections/s", 300, [
            Client("ours", ours("connect")), peer("postgres-nio", "connect"), peer("asyncpg", "connect"),
        ], target=("postgres-nio", 1.0)),
    ]


def nats_workloads(tools):
    bin_path, python, go_bench = tools["bin"], tools["python"], tools["go"]
    url = need("INFRA_TEST_NATS_URL")

    def nats(workload, python_count):
        return [
            Client("ours", lambda n: [f"{bin_path}/nats-bench", url, workload, str(n), "16"]),
            Client("nats.go", lambda n: [go_bench, url, workload, str(n), "16"]),
            Client("nats-py", lambda n: [python, "Benchmarks/nats/bench.py", url, workload, str(n), "16"], count=python_count),
        ]

    return [
        Workload("nats.publish", "nats", "publish 1M (16 B), then flush", "msgs/s", 1_000_000, nats("publish", 200_000),
                 target=("nats.go", 1.2)),
        Workload("nats.pubsub", "nats", "pub -> sub through the server, 1M", "msgs/s", 1_000_000, nats("pubsub", 200_000),
                 target=("nats.go", 1.0)),
        Workload("nats.request", "nats", "sequential request/reply", "requests/s", 20_000, nats("request", 5_000),
                 target=("nats.go", 1.0)),
        Workload("nats.js-publish", "nats", "JetStream publish, each acked", "msgs/s", 20_000, nats("js-publish", 5_000),
                 target=("nats.go", 1.0)),
        Workload("nats.kv-get", "nats", "KV get, sequential", "gets/s", 20_000, nats("kv-get", 5_000),
                 target=("nats.go", 1.0)),
    ]


def settings_workloads(tools):
    bin_path, python = tools["bin"], tools["python"]
    document = tools["toml_document"]
    return [
        Workload("settings.toml", "settings", "TOML parse of a large document", "MB/s", 20, [
            Client("ours", lambda n: [f"{bin_path}/settings-bench", "toml", document, str(n)]),
            Client("tomllib", lambda n: [python, "Benchmarks/settings/bench.py", "toml", document, str(n)], count=5),
        ], target=("tomllib", 3.0), cpu=False),
    ]


# ---------------------------------------------------------------------------------------------
# Running and reporting


def loopback_round_trip(blocking_client, port):
    rates = [last_number(execute([blocking_client, str(port), "1", "1"])[0]) for _ in range(3)]
    return 1e6 / statistics.median(rates)


def server_processes(tools, groups):
    """The process (tree) of each group's server, found by the port it listens on."""
    ports = {"transport": tools["echo_port"]}
    if "redis" in groups:
        ports["redis"] = need("INFRA_TEST_REDIS_PORT")
    if "postgres" in groups:
        ports["postgres"] = need("INFRA_TEST_POSTGRES_PORT")
    if "nats" in groups:
        ports["nats"] = need("INFRA_TEST_NATS_URL").rsplit(":", 1)[1].strip("/")
    servers = {}
    for group, port in ports.items():
        pid = listening_pid(port)
        if pid is None:
            print(f"bench: no process found listening on port {port}; {group}'s server CPU is not shown", file=sys.stderr)
        else:
            servers[group] = pid
    return servers


def paired_ratios(mine, theirs):
    return [a / b for a, b in zip(mine, theirs) if a and b]


# The server is the limit when its CPU per operation is at least this share of the wall time per
# operation, for ours and the peer alike. Then no client can go much faster, and a throughput
# target that the ratio misses is judged by client CPU per operation instead: a target of 1.3x
# holds when ours costs at most 1/1.3 of the peer's CPU per operation.
SERVER_BOUND = 0.8


def server_loads(rate, server_cpu_us, peer_rate, peer_server_cpu_us):
    """How busy the server was serving ours and the peer: its CPU per operation over the wall
    time per operation (None where not measured)."""
    def load(r, cpu_us):
        return None if not r or not cpu_us else cpu_us * 1e-6 * r
    return load(rate, server_cpu_us), load(peer_rate, peer_server_cpu_us)


def judge(target, ratio, cpu_ratio, loads):
    """(met, judged by CPU) of a throughput target: met by the throughput ratio, or, where that
    falls short and the server is the limit, by the client CPU ratio."""
    if target is None:
        return None, False
    if ratio >= target:
        return True, False
    bound = all(load is not None and load >= SERVER_BOUND for load in loads)
    if bound and cpu_ratio is not None:
        return cpu_ratio <= 1 / target, True
    return False, False


def summarize(workload, samples):
    """The row figures of one workload from its samples {client: [Measurement...]}."""
    def medians(measurements):
        """Median rate, client CPU and server CPU (µs) per operation of one client's samples."""
        cpu = [m.cpu_per_op for m in measurements if m.cpu_per_op]
        server_cpu = [m.server_cpu_per_op for m in measurements if m.server_cpu_per_op]
        return (statistics.median(m.rate for m in measurements),
                statistics.median(cpu) * 1e6 if cpu else None,
                statistics.median(server_cpu) * 1e6 if server_cpu else None)

    ours = samples["ours"]
    rate, cpu_us, server_cpu_us = medians(ours)
    rows = []
    for client in workload.clients[1:]:
        theirs = samples[client.name]
        peer_rate, peer_cpu_us, peer_server_cpu_us = medians(theirs)
        ratio = statistics.median(paired_ratios([m.rate for m in ours], [m.rate for m in theirs]))
        cpu_ratios = paired_ratios([m.cpu_per_op for m in ours], [m.cpu_per_op for m in theirs])
        cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else None
        target = workload.target[1] if workload.target and workload.target[0] == client.name else None
        cpu_target = workload.cpu_target[1] if workload.cpu_target and workload.cpu_target[0] == client.name else None
        loads = server_loads(rate, server_cpu_us, peer_rate, peer_server_cpu_us)
        met, bound = judge(target, ratio, cpu_ratio, loads)
        rows.append({
            "peer": client.name,
            "peer_rate": peer_rate,
            "ratio": ratio,
            "target": target,
            "met": met,
            "server_bound": bound,
            "server_loads": loads,
            "peer_cpu_us": peer_cpu_us,
            "cpu_ratio": cpu_ratio,
            "cpu_target": cpu_target,
            "cpu_met": None if cpu_target is None or cpu_ratio is None else cpu_ratio <= cpu_target,
            "peer_server_cpu_us": peer_server_cpu_us,
        })
    return {"rate": rate, "cpu_us": cpu_us, "server_cpu_us": server_cpu_us, "peers": rows}


def figure(value):
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def cpu_figure(value):
    return "-" if value is None else f"{value:.2f}"


def print_table(report):
    machine = report["machine"]
    print()
    print(f"make bench, {report['date']}: {machine['cpus']} CPUs, {machine['kernel']}, loopback round trip "
          f"{machine['loopback_rtt_us']:.1f} µs (blocking C ping-pong); medians of {report['rounds']} interleaved rounds;")
    print("ratio = median of the per-round ratios of ours to the peer (> 1: ours faster); CPU µs/op = client user + "
          "system time per extra operation; CPU ratio < 1: ours cheaper;")
    print("server µs/op = the server's own CPU per extra operation while serving ours / the peer: where it is near "
          "the wall time per operation, the server is the limit")
    header = f"{'workload':<58} {'ours':>12} {'peer':<24} {'peer rate':>12} {'ratio':>7} {'target':>8} {'met':>4} " \
             f"{'CPU ours':>9} {'CPU peer':>9} {'CPU ratio':>9} {'target':>7} {'server ours':>11} {'server peer':>11}"
    group = None
    for workload in report["workloads"]:
        if workload["group"] != group:
            group = workload["group"]
            print()
            print(f"{group}:")
            print(header)
        first = True
        for row in workload["summary"]["peers"]:
            name = f"{workload['title']} ({workload['unit']})" if first else ""
            ours = figure(workload["summary"]["rate"]) if first else ""
            our_cpu = cpu_figure(workload["summary"]["cpu_us"]) if first else ""
            our_server = cpu_figure(workload["summary"].get("server_cpu_us")) if first else ""
            target = "-" if row["target"] is None else f"≥{row['target']:.2f}x"
            met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
            if row.get("server_bound"):
                met += " (server-bound: judged by CPU)"
            cpu_target = "" if row["cpu_target"] is None else f"≤{row['cpu_target']:.1f}x"
            if row["cpu_met"] is False:
                cpu_target += " NO"
            print(f"{name[:58]:<58} {ours:>12} {row['peer'][:24]:<24} {figure(row['peer_rate']):>12} {row['ratio']:>6.2f}x "
                  f"{target:>8} {met:>4} {our_cpu:>9} {cpu_figure(row['peer_cpu_us']):>9} "
                  f"{('-' if row['cpu_ratio'] is None else format(row['cpu_ratio'], '.2f') + 'x'):>9} {cpu_target:>7} "
                  f"{our_server:>11} {cpu_figure(row.get('peer_server_cpu_us')):>11}")
            first = False
    targets = [row for w in report["workloads"] for row in w["summary"]["peers"] if row["met"] is not None]
    cpu_targets = [row for w in report["workloads"] for row in w["summary"]["peers"] if row["cpu_met"] is not None]
    print()
    print(f"targets met: {sum(r['met'] for r in targets)} of {len(targets)} throughput, "
          f"{sum(r['cpu_met'] for r in cpu_targets)} of {len(cpu_targets)} CPU")


def run(arguments):
    groups = set(arguments.only.split(",")) if arguments.only else {"transport", "redis", "postgres", "nats", "settings"}
    os.makedirs(OUT, exist_ok=True)
    products = ["transport-bench", "redis-bench", "pg-bench", "nats-bench", "settings-bench"]
    print("bench: building our benchmark programs (release)", file=sys.stderr)
    tools = {"bin": swift_products(products)}
    tools["python"] = bench_venv()
    tools["go"] = nats_go_bench() if "nats" in groups else None
    if "postgres" in groups:
        print("bench: building postgres-nio's benchmark (release)", file=sys.stderr)
        tools["nio"] = postgres_nio_bench()
        bindir = need("INFRA_TEST_POSTGRES_BINDIR")
        tools["pgbench"] = os.path.join(bindir, "pgbench")
        if not os.path.exists(tools["pgbench"]):
            fail(f"pgbench is not in {bindir}")
    else:
        tools["nio"] = None
    if "redis" in groups:
        if not shutil.which("redis-benchmark"):
            apt_install(["redis-tools"])
        port = need("INFRA_TEST_REDIS_PORT")
        # The test server appends every write to its AOF; the benchmark measures the clients, so the
        # server does as little as it can, for ours and the peers alike.
        sh(f"redis-cli -p {port} -a \"$INFRA_TEST_REDIS_PASSWORD\" --no-auth-warning CONFIG SET appendonly no >/dev/null")
    echo_server, blocking_client = echo_programs()
    tools["blocking_client"] = blocking_client
    echo_port = free_port()
    server = subprocess.Popen([echo_server, str(echo_port)], stdout=subprocess.PIPE, text=True)
    server.stdout.readline()  # "ready"
    tools["echo_port"] = echo_port
    if "settings" in groups:
        tools["toml_document"] = os.path.join(OUT, "settings", "large.toml")
        os.makedirs(os.path.dirname(tools["toml_document"]), exist_ok=True)
        sh(f"python3 Benchmarks/settings/generate.py {tools['toml_document']} 4000")
    try:
        chosen = workloads(tools, groups)
        rtt = loopback_round_trip(blocking_client, echo_port)
        print(f"bench: loopback round trip {rtt:.1f} µs; {len(chosen)} workloads, {arguments.rounds} rounds", file=sys.stderr)
        servers = server_processes(tools, groups)
        samples = {w.key: {c.name: [] for c in w.clients} for w in chosen}
        for round_number in range(1, arguments.rounds + 1):
            started = time.monotonic()
            for workload in chosen:
                for client in workload.clients:
                    measurement = client.measure(workload.count, workload.cpu and not arguments.no_cpu, servers.get(workload.group))
                    samples[workload.key][client.name].append(measurement)
            print(f"bench: round {round_number} of {arguments.rounds} done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        server.terminate()
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": arguments.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loopback_rtt_us": rtt,
        },
        "versions": {
            "redis-server": version_of(["redis-server", "--version"], r"v=(\S+)"),
            "postgresql": version_of([tools["pgbench"], "--version"]) if "postgres" in groups else None,
            "nats-server": version_of([os.environ.get("INFRA_TEST_NATS_SERVER_BINARY", "nats-server"), "--version"]),
        },
        "workloads": [
            {
                "key": w.key, "group": w.group, "title": w.title, "unit": w.unit, "count": w.count,
                "samples": {name: [{"rate": m.rate, "cpu_per_op": m.cpu_per_op, "server_cpu_per_op": m.server_cpu_per_op} for m in ms]
                            for name, ms in samples[w.key].items()},
                "summary": summarize(w, samples[w.key]),
            }
            for w in chosen
        ],
    }
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(OUT, f"bench-{stamp}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    latest = os.path.join(OUT, "bench-latest.json")
    if os.path.lexists(latest):
        os.remove(latest)
    os.symlink(os.path.basename(path), latest)
    print_table(report)
    print(f"\nresults: {os.path.relpath(path, ROOT)}")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compare(arguments):
    with open(arguments.a) as f:
        a = json.load(f)
    with open(arguments.b) as f:
        b = json.load(f)
    print(f"A: {a['date']}, loopback {a['machine']['loopback_rtt_us']:.1f} µs    "
          f"B: {b['date']}, loopback {b['machine']['loopback_rtt_us']:.1f} µs")
    print(f"{'workload':<48} {'peer':<24} {'ratio A':>8} {'ratio B':>8} {'ours B/A':>9} {'CPU A':>7} {'CPU B':>7}")
    b_workloads = {w["key"]: w for w in b["workloads"]}
    for workload in a["workloads"]:
        other = b_workloads.get(workload["key"])
        if not other:
            continue
        other_peers = {row["peer"]: row for row in other["summary"]["peers"]}
        for row in workload["summary"]["peers"]:
            match = other_peers.get(row["peer"])
            if not match:
                continue
            change = other["summary"]["rate"] / workload["summary"]["rate"] if workload["summary"]["rate"] else float("nan")
            print(f"{workload['title'][:48]:<48} {row['peer'][:24]:<24} {row['ratio']:>7.2f}x {match['ratio']:>7.2f}x "
                  f"{change:>8.2f}x {cpu_figure(workload['summary']['cpu_us']):>7} {cpu_figure(other['summary']['cpu_us']):>7}")


def markdown(arguments):
    """The table of a run as Markdown, as the README shows it."""
    with open(arguments.file) as f:
        report = json.load(f)

    def cpu_pair(ours, theirs):
        return f"{cpu_figure(ours)} / {cpu_figure(theirs)}"

    print("| workload | ours | peer | peer | ours ÷ peer | target | client CPU µs/op, ours / peer | server CPU µs/op, ours / peer |")
    print("|---|---:|---|---:|---:|---|---|---|")
    for workload in report["workloads"]:
        summary = workload["summary"]
        for position, row in enumerate(summary["peers"]):
            first = position == 0
            name = f"{workload['title']} ({workload['unit']})" if first else ""
            ours = figure(summary["rate"]) if first else ""
            target = ""
            if row["target"] is not None:
                loads = server_loads(summary["rate"], summary.get("server_cpu_us"), row["peer_rate"], row.get("peer_server_cpu_us"))
                met, bound = judge(row["target"], row["ratio"], row["cpu_ratio"], loads)
                verdict = "met" if met else "**not met**"
                if bound:
                    target = (f"≥ {row['target']:.2f}×; server-bound (busy {loads[0]:.0%} / {loads[1]:.0%}): "
                              f"client CPU {row['cpu_ratio']:.2f}× ≤ {1 / row['target']:.2f}× {verdict}")
                else:
                    target = f"≥ {row['target']:.2f}× {verdict}"
            client = cpu_pair(summary["cpu_us"], row["peer_cpu_us"]) if summary["cpu_us"] or row["peer_cpu_us"] else ""
            if row["cpu_target"] is not None and row["cpu_ratio"] is not None:
                client += f" = {row['cpu_ratio']:.2f}× (≤ {row['cpu_target']:.1f}×: " + ("met" if row["cpu_met"] else "**not met**") + ")"
            server_ours, server_peer = summary.get("server_cpu_us"), row.get("peer_server_cpu_us")
            server = cpu_pair(server_ours, server_peer) if server_ours or server_peer else ""
            print(f"| {name} | {ours} | {row['peer']} | {figure(row['peer_rate'])} | {row['ratio']:.2f}× | {target} | {client} | {server} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--rounds", type=int, default=3)
    run_parser.add_argument("--only", help="comma-separated groups: transport,redis,postgres,nats,settings")
    run_parser.add_argument("--no-cpu", action="store_true", help="skip the CPU-per-operation runs")
    compare_parser = commands.add_parser("compare")
    compare_parser.add_argument("a")
    compare_parser.add_argument("b")
    markdown_parser = commands.add_parser("markdown", help="print a run's table as Markdown")
    markdown_parser.add_argument("file")
    arguments = parser.parse_args()
    if arguments.command == "run":
        run(arguments)
    elif arguments.command == "markdown":
        markdown(arguments)
    else:
        compare(arguments)


if __name__ == "__main__":
    main()

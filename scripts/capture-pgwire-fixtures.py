#!/usr/bin/env python3
"""Captures the golden PostgreSQL protocol streams in Fixtures/pgwire/ from a live server.

    scripts/test-servers.sh run -- scripts/capture-pgwire-fixtures.py

Each fixture is one conversation, driven by this script speaking protocol 3.0 over a raw socket
(so the client side is exactly what is written here, and the server side exactly what the server
sent), one message per line:

    > 51 0000000d 53454c45435420310  # Query "SELECT 1"
    < 54 ...                          # RowDescription

`>` is client to server, `<` server to client; the hex is the whole message; the note after `#`
is for people. Header lines (`#` first) give the server version and how the file was made.

The SCRAM conversations use a fixed client nonce and the password below, set on a role made for
the capture, so a test can replay the server's side and expect the client's bytes exactly.
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import sys

HOST = os.environ["INFRA_TEST_POSTGRES_HOST"]
PORT = int(os.environ["INFRA_TEST_POSTGRES_PORT"])
DATABASE = os.environ["INFRA_TEST_POSTGRES_DATABASE"]
ADMIN = os.environ["INFRA_TEST_POSTGRES_USER"]
ADMIN_PASSWORD = os.environ["INFRA_TEST_POSTGRES_PASSWORD"]
OUT = "Fixtures/pgwire"

# The replayable SCRAM fixtures: this role and password exist only while the capture runs.
SCRAM_USER = "pgwire_fixture"
SCRAM_PASSWORD = "fixture-password"
SCRAM_NONCE = "fixedClientNonceForReplay0123456"

NAMES = {
    b"R": "Authentication", b"K": "BackendKeyData", b"2": "BindComplete", b"3": "CloseComplete",
    b"C": "CommandComplete", b"d": "CopyData", b"c": "CopyDone", b"G": "CopyInResponse",
    b"H": "CopyOutResponse", b"D": "DataRow", b"I": "EmptyQueryResponse", b"E": "ErrorResponse",
    b"v": "NegotiateProtocolVersion", b"n": "NoData", b"N": "NoticeResponse", b"A": "NotificationResponse",
    b"t": "ParameterDescription", b"S": "ParameterStatus", b"1": "ParseComplete", b"s": "PortalSuspended",
    b"Z": "ReadyForQuery", b"T": "RowDescription",
}
FRONT = {
    b"B": "Bind", b"C": "Close", b"d": "CopyData", b"c": "CopyDone", b"f": "CopyFail", b"D": "Describe",
    b"E": "Execute", b"H": "Flush", b"P": "Parse", b"p": "Password/SASL", b"Q": "Query", b"S": "Sync",
    b"X": "Terminate",
}


def message(kind, body=b""):
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text):
    return text.encode() + b"\0"


class Conversation:
    def __init__(self, name, description):
        self.name, self.description = name, description
        self.lines = []
        self.sock = socket.create_connection((HOST, PORT))
        self.buffer = b""

    def send(self, data, note):
        self.sock.sendall(data)
        self.lines.append("> %s  # %s" % (data.hex(), note))

    def send_message(self, kind, body=b"", note=None):
        self.send(message(kind, body), note or FRONT.get(kind, "?"))

    def receive(self):
        while len(self.buffer) < 5 or len(self.buffer) < 1 + struct.unpack("!i", self.buffer[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("%s: server closed the connection" % self.name)
            self.buffer += chunk
        length = struct.unpack("!i", self.buffer[1:5])[0]
        data, self.buffer = self.buffer[:1 + length], self.buffer[1 + length:]
        kind, body = data[:1], data[5:]
        note = NAMES.get(kind, "?")
        if kind == b"R":
            note += " %d" % struct.unpack("!i", body[:4])[0]
        elif kind in (b"E", b"N"):
            fields = dict((f[:1], f[1:].decode()) for f in body.split(b"\0") if f)
            note += " %s %s" % (fields.get(b"C", ""), fields.get(b"M", ""))
        elif kind == b"C":
            note += " %s" % body.rstrip(b"\0").decode()
        elif kind == b"S":
            note += " %s" % body.replace(b"\0", b" ").decode().strip()
        elif kind == b"Z":
            note += " %s" % body.decode()
        self.lines.append("< %s  # %s" % (data.hex(), note))
        return kind, body

    def until_ready(self):
        while True:
            kind, body = self.receive()
            if kind == b"Z":
                return

    def startup(self, user, password=None, nonce=None):
        body = struct.pack("!i", 196608) + cstr("user") + cstr(user) + cstr("database") + cstr(DATABASE)
        body += cstr("client_encoding") + cstr("UTF8") + b"\0"
        self.send(struct.pack("!i", len(body) + 4) + body, "StartupMessage user=%s" % user)
        scram = None
        while True:
            kind, body = self.receive()
            if kind == b"R":
                code = struct.unpack("!i", body[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    self.send_message(b"p", cstr(password), "PasswordMessage (cleartext)")
                elif code == 5:
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = "md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                    self.send_message(b"p", cstr(outer), "PasswordMessage (md5)")
                elif code == 10:
                    scram = Scram(password, nonce)
                    first = scram.client_first()
                    self.send_message(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first, "SASLInitialResponse")
                elif code == 11:
                    self.send_message(b"p", scram.client_final(body[4:]), "SASLResponse")
                elif code == 12:
                    scram.verify(body[4:])
            elif kind == b"Z":
                return
            elif kind == b"E":
                return

    def close(self, terminate=True):
        if terminate:
            self.send_message(b"X", note="Terminate")
        self.sock.close()
        version = server_version
        header = [
            "# %s" % self.description,
            "# Captured from PostgreSQL %s by scripts/capture-pgwire-fixtures.py (raw protocol 3.0 over TCP)." % version,
            "# '>' client to server, '<' server to client; one whole message a line, in hex; notes after '#'.",
        ]
        with open(os.path.join(OUT, self.name + ".pgw"), "w") as f:
            f.write("\n".join(header + self.lines) + "\n")


class Scram:
    def __init__(self, password, nonce):
        self.password = password.encode()
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bare = "n=,r=" + self.nonce

    def client_first(self):
        return ("n,," + self.bare).encode()

    def client_final(self, server_first):
        attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth = ",".join([self.bare, server_first.decode(), without_proof]).encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected = hmac.new(server_key, auth, hashlib.sha256).digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final):
        assert base64.b64decode(server_final.decode()[2:]) == self.expected, "server signature mismatch"


def admin_sql(statements):
    c = Conversation("setup", "")
    c.startup(ADMIN, ADMIN_PASSWORD)
    for sql in statements:
        c.send_message(b"Q", cstr(sql))
        c.until_ready()
    c.sock.close()


def simple(c, sql, note=None):
    c.send_message(b"Q", cstr(sql), note or "Query %r" % sql[:60])
    c.until_ready()


def extended(c, sql, params, types, statement=b"", describe=b"P"):
    body = cstr(statement.decode()) + cstr(sql) + struct.pack("!h", len(types)) + b"".join(struct.pack("!I", t) for t in types)
    c.send_message(b"P", body, "Parse %r" % sql[:60])
    values = b"".join(struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p for p in params)
    c.send_message(b"B", b"\0" + cstr(statement.decode()) + struct.pack("!hh", 1, 1) + struct.pack("!h", len(params)) + values
                   + struct.pack("!hh", 1, 1), "Bind (binary parameters and results)")
    c.send_message(b"D", describe + b"\0", "Describe portal")
    c.send_message(b"E", b"\0" + struct.pack("!i", 0), "Execute")
    c.send_message(b"S", note="Sync")
    c.until_ready()


def main():
    global server_version
    os.makedirs(OUT, exist_ok=True)
    probe = Conversation("probe", "")
    probe.startup(ADMIN, ADMIN_PASSWORD)
    probe.send_message(b"Q", cstr("SHOW server_version"))
    server_version = "?"
    while True:
        kind, body = probe.receive()
        if kind == b"D":
            server_version = body[6:].decode()
        if kind == b"Z":
            break
    probe.sock.close()

    admin_sql([
        "DROP ROLE IF EXISTS %s" % SCRAM_USER,
        "CREATE ROLE %s LOGIN PASSWORD '%s'" % (SCRAM_USER, SCRAM_PASSWORD),
    ])
    try:
        c = Conversation("startup-scram", "Startup with SCRAM-SHA-256 (replayable: fixed client nonce), then SELECT 1 and Terminate")
        c.startup(SCRAM_USER, SCRAM_PASSWORD, SCRAM_NONCE)
        simple(c, "SELECT 1")
        c.close()

        c = Conversation("startup-scram-wrong-password", "SCRAM-SHA-256 with a wrong password: ErrorResponse 28P01")
        c.startup(SCRAM_USER, "not-the-password", SCRAM_NONCE)
        c.close(terminate=False)
    finally:
        admin_sql(["DROP ROLE IF EXISTS %s" % SCRAM_USER])

    for user, password, name in [
        (os.environ["INFRA_TEST_POSTGRES_MD5_USER"], os.environ["INFRA_TEST_POSTGRES_MD5_PASSWORD"], "startup-md5"),
        (os.environ["INFRA_TEST_POSTGRES_CLEARTEXT_USER"], os.environ["INFRA_TEST_POSTGRES_CLEARTEXT_PASSWORD"], "startup-cleartext"),
        (os.environ["INFRA_TEST_POSTGRES_TRUST_USER"], None, "startup-trust"),
    ]:
        c = Conversation(name, "Startup with %s authentication" % name.split("-")[1])
        c.startup(user, password)
        c.close()

    c = Conversation("simple-queries", "Simple protocol: several statements, an empty query, an error mid-string, a notice")
    c.startup(ADMIN, ADMIN_PASSWORD)
    simple(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'one'), (2, NULL); SELECT * FROM t ORDER BY id")
    simple(c, "")
    simple(c, "SELECT 1; SELECT 1/0; SELECT 3")
    simple(c, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
    simple(c, "INSERT INTO t VALUES (1, 'again')")
    simple(c, "SELECT * FROM no_such_table")
    simple(c, "SELEC 1")
    simple(c, "BEGIN; SELECT 1/0")
    simple(c, "SELECT 1")
    simple(c, "ROLLBACK")
    c.close()

    c = Conversation("extended-types", "Extended protocol, binary results: one value of every supported type, and arrays")
    c.startup(ADMIN, ADMIN_PASSWORD)
    extended(c, "SELECT $1::int4, $2::text, NULL::int8", [struct.pack("!i", 42), "héllo".encode()], [23, 25])
    extended(c, """SELECT true, 32767::int2, 2147483647::int4, 9223372036854775807::int8, 1.5::float4, 2.25::float8,
        12345.678::numeric, -0.0001::numeric, 'NaN'::numeric, 'text'::text, 'v'::varchar, 'c'::char(3), 'n'::name,
        '\\xdeadbeef'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '2024-02-29'::date, '12:34:56.789'::time,
        '12:34:56+02'::timetz, '2024-02-29 12:34:56.789'::timestamp, '2024-02-29 12:34:56.789+00'::timestamptz,
        '1 year 2 mons 3 days 04:05:06.5'::interval, '{"a": [1, 2]}'::json, '{"a": [1, 2]}'::jsonb,
        '192.168.0.1/24'::inet, '10.0.0.0/8'::cidr, '::1'::inet, '08:00:2b:01:02:03'::macaddr, 12.34::money,
        '[1,10)'::int4range, '(,5]'::int8range, 'empty'::numrange, '[2024-01-01,2024-02-01)'::daterange,
        '[2024-01-01 00:00+00,)'::tstzrange, ARRAY[1,2,NULL]::int4[], ARRAY[[1,2],[3,4]]::int8[], '{}'::text[],
        ARRAY['a','b"c']::text[], 'infinity'::timestamptz, '-infinity'::date""", [], [])
    extended(c, "SELECT 1/$1::int", [struct.pack("!i", 0)], [23])
    extended(c, "SELECT $1::int", [b"xx"], [23])
    c.close()

    c = Conversation("copy", "COPY FROM STDIN (text) with data, a CopyFail, and COPY TO STDOUT")
    c.startup(ADMIN, ADMIN_PASSWORD)
    simple(c, "CREATE TEMP TABLE c (id int, name text)")
    c.send_message(b"Q", cstr("COPY c FROM STDIN"))
    c.receive()
    c.send_message(b"d", b"1\tone\n2\t\\N\n", "CopyData")
    c.send_message(b"c", note="CopyDone")
    c.until_ready()
    c.send_message(b"Q", cstr("COPY c FROM STDIN"))
    c.receive()
    c.send_message(b"f", cstr("client gave up"), "CopyFail")
    c.until_ready()
    simple(c, "COPY c TO STDOUT (FORMAT csv)")
    c.close()

    listener = Conversation("notifications", "LISTEN, then a NOTIFY from another session arrives while idle and inside a query")
    listener.startup(ADMIN, ADMIN_PASSWORD)
    simple(listener, 'LISTEN "jobs"')
    sender = Conversation("sender", "")
    sender.startup(ADMIN, ADMIN_PASSWORD)
    simple(sender, "NOTIFY jobs, 'first'")
    listener.receive()
    simple(sender, "NOTIFY jobs, 'second'")
    simple(listener, "SELECT pg_sleep(0.1)")
    sender.sock.close()
    listener.close()
    print("wrote", len([f for f in os.listdir(OUT) if f.endswith(".pgw")]), "fixtures to", OUT)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Captures the golden NATS protocol streams in Fixtures/nats/ from the live nats-servers.

    scripts/test-servers.sh run -- scripts/capture-nats-fixtures.py

For each server (INFRA_TEST_NATS_URL, the current release, and INFRA_TEST_NATS_LEGACY_URL,
Debian's 2.9) one conversation is driven over a raw socket and written one operation a line:

    > 505542206f6e652e74776f20350d0a68656c6c6f0d0a  # PUB one.two 5
    < 4d5347206f6e652e74776f203120350d0a...          # MSG one.two 1 5

`>` is client to server, `<` server to client; the hex is the whole operation with its payload;
the note after `#` is for people. Header lines (`#` first) give the server version and how the
file was made. Every server operation of the stream is kept, in order.
"""
import json
import os
import socket
import time

OUT = "Fixtures/nats"


class Conversation:
    def __init__(self, url):
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.settimeout(2)
        self.buffer = b""
        self.lines = []

    def send(self, data, note):
        self.sock.sendall(data)
        self.lines.append("> %s  # %s" % (data.hex(), note))

    def read_operation(self):
        """One server operation, whole (control line and payload)."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        end = self.buffer.index(b"\r\n") + 2
        line = self.buffer[:end]
        fields = line.split()
        total = end
        if fields and fields[0].upper() in (b"MSG", b"HMSG"):
            total = end + int(fields[-1]) + 2
            while len(self.buffer) < total:
                self.buffer += self.sock.recv(65536)
        data, self.buffer = self.buffer[:total], self.buffer[total:]
        note = line.strip().decode(errors="replace")
        if note.startswith("INFO"):
            info = json.loads(note[5:])
            note = "INFO (server %s, max_payload %s, headers %s)" % (info.get("version"), info.get("max_payload"), info.get("headers"))
        self.lines.append("< %s  # %s" % (data.hex(), note))
        return data

    def expect(self, count):
        for _ in range(count):
            if self.read_operation() is None:
                break

    def drain(self, seconds=0.3):
        deadline = time.time() + seconds
        self.sock.settimeout(0.1)
        while time.time() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buffer += chunk
            while b"\r\n" in self.buffer:
                before = len(self.buffer)
                if self.read_operation() is None or len(self.buffer) == before:
                    break
        self.sock.settimeout(2)


def capture(url, name, description):
    c = Conversation(url)
    info = json.loads(c.read_operation()[5:].decode())
    connect = {"verbose": True, "pedantic": False, "headers": True, "no_responders": True, "lang": "swift", "version": "fixture",
               "protocol": 1, "echo": True}
    c.send(b"CONNECT " + json.dumps(connect, separators=(",", ":")).encode() + b"\r\n", "CONNECT (verbose, headers, no_responders)")
    c.expect(1)  # +OK
    c.send(b"SUB one.* 1\r\n", "SUB one.* 1")
    c.expect(1)
    c.send(b"sub\tq.>\tworkers\t2\r\n", "sub with tabs, a queue group, lower case")
    c.expect(1)
    c.send(b"PUB one.two 5\r\nhello\r\n", "PUB one.two 5")
    c.expect(2)  # +OK, MSG
    c.send(b"PUB one.three reply.here 0\r\n\r\n", "PUB with a reply subject and an empty payload")
    c.expect(2)
    headers = b"NATS/1.0\r\nTrace-Id: abc\r\nTrace-Id: def\r\nlower-Case: kept\r\n\r\n"
    c.send(b"HPUB q.x.y inbox.1 %d %d\r\n%sbody\r\n" % (len(headers), len(headers) + 4, headers), "HPUB with repeated and mixed-case keys")
    c.expect(2)
    c.send(b"HPUB one.four %d %d\r\n%s\r\n" % (len(headers), len(headers), headers), "HPUB with headers only")
    c.expect(2)
    c.send(b"PUB one.five %d\r\n%s\r\n" % (3000, b"x" * 3000), "PUB with a 3000-byte payload")
    c.expect(2)
    c.send(b"SUB _INBOX.fixture.* 3\r\n", "SUB for a request's reply")
    c.expect(1)
    c.send(b"PUB nobody.listens _INBOX.fixture.1 2\r\nhi\r\n", "request with no responders")
    c.expect(2)  # +OK, HMSG 503
    c.send(b"UNSUB 1\r\n", "UNSUB 1")
    c.expect(1)
    c.send(b"PING\r\n", "PING")
    c.expect(1)  # PONG
    c.send(b"FOO bar\r\n", "an unknown operation")
    c.drain()
    c.sock.close()
    header = [
        "# %s" % description,
        "# Captured from nats-server %s by scripts/capture-nats-fixtures.py (raw client protocol over TCP)." % info.get("version"),
        "# '>' client to server, '<' server to client; one whole operation a line, in hex; notes after '#'.",
    ]
    with open(os.path.join(OUT, name + ".nats"), "w") as f:
        f.write("\n".join(header + c.lines) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    capture(os.environ["INFRA_TEST_NATS_URL"], "session-current",
            "INFO, +OK, MSG with and without reply, HMSG with repeated keys, a 503 no-responders status, PONG and -ERR")
    legacy = os.environ.get("INFRA_TEST_NATS_LEGACY_URL")
    if legacy:
        capture(legacy, "session-legacy", "The same conversation with the legacy server")
    print("wrote", len(os.listdir(OUT)), "fixtures to", OUT)


if __name__ == "__main__":
    main()

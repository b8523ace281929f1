"""Captures golden RESP streams from a live redis-server into Fixtures/resp/.

    INFRA_TEST_REDIS_PORT=... INFRA_TEST_REDIS_PASSWORD=... python3 scripts/capture-resp-fixtures.py

Each file lists exchanges: '>' lines are what was sent (as text, the password masked), '<' lines the
bytes received, in hex, 32 per line, with '#' notes. The server needs `enable-debug-command local`
(scripts/test-servers.sh starts it so).
"""
import os
import socket
import time

PORT = int(os.environ["INFRA_TEST_REDIS_PORT"])
PASSWORD = os.environ["INFRA_TEST_REDIS_PASSWORD"]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "resp")


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def connect():
    s = socket.create_connection(("127.0.0.1", PORT))
    s.settimeout(2)
    return s


def drain(sock, quiet=0.3):
    """Reads until the server has been quiet for a moment."""
    data = b""
    sock.settimeout(quiet)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


class Capture:
    def __init__(self, name, note):
        self.name, self.note, self.lines = name, note, []

    def exchange(self, sock, args, note="", send=True):
        if send:
            shown = " ".join("***" if a == PASSWORD else str(a) for a in args)
            self.lines.append(f"> {shown}")
            sock.sendall(encode(*args))
        data = drain(sock)
        if note:
            self.lines.append(f"# {note}")
        for i in range(0, len(data), 32):
            self.lines.append("< " + data[i:i + 32].hex(" "))
        return data

    def write(self, version):
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, self.name + ".resp"), "w") as f:
            f.write(f"# {self.note}\n# server: redis {version}\n# captured with scripts/capture-resp-fixtures.py\n")
            f.write("\n".join(self.lines) + "\n")


def main():
    probe = connect()
    probe.sendall(encode("AUTH", PASSWORD) + encode("INFO", "server"))
    info = drain(probe).decode(errors="replace")
    version = next((l.split(":")[1].strip() for l in info.splitlines() if l.startswith("redis_version:")), "unknown")
    probe.close()

    # Every RESP3 type DEBUG PROTOCOL can produce, after HELLO 3.
    c = Capture("resp3-types", "HELLO 3, then DEBUG PROTOCOL for every type the server can send")
    s = connect()
    c.exchange(s, ["HELLO", "3", "AUTH", "default", PASSWORD], "the HELLO 3 map")
    for kind in ["string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push", "verbatim", "true", "false"]:
        c.exchange(s, ["DEBUG", "PROTOCOL", kind], f"DEBUG PROTOCOL {kind}")
    c.exchange(s, ["GET", "no-such-key"], "null reply of GET")
    c.exchange(s, ["INCRBYFLOAT", "fixture:float", "1.5"], "bulk reply with a float")
    c.exchange(s, ["DEL", "fixture:float"], "integer")
    c.exchange(s, ["NOT-A-COMMAND"], "simple error")
    c.exchange(s, ["SET", "fixture:x", "1", "EX"], "syntax error")
    c.write(version)
    s.close()

    # The same commands over RESP2.
    c = Capture("resp2-replies", "RESP2 (no HELLO): AUTH, null bulk and null array forms, nested arrays")
    s = connect()
    c.exchange(s, ["AUTH", PASSWORD], "+OK")
    c.exchange(s, ["GET", "no-such-key"], "$-1 null bulk")
    c.exchange(s, ["RPUSH", "fixture:list", "a", "b", "c"], "integer")
    c.exchange(s, ["LRANGE", "fixture:list", "0", "-1"], "array of bulk strings")
    c.exchange(s, ["BLPOP", "fixture:empty", "0.1"], "*-1 null array after the timeout")
    c.exchange(s, ["DEL", "fixture:list"], "integer")
    c.exchange(s, ["HSET", "fixture:hash", "f", "v"], "integer")
    c.exchange(s, ["HGETALL", "fixture:hash"], "flat array in RESP2 (a map in RESP3)")
    c.exchange(s, ["DEL", "fixture:hash"], "integer")
    c.write(version)
    s.close()

    # Pub/sub pushes interleaved with replies on one RESP3 connection.
    c = Capture("pubsub-pushes", "RESP3 SUBSCRIBE on a connection that also runs commands; another connection publishes")
    s = connect()
    other = connect()
    other.sendall(encode("AUTH", PASSWORD))
    drain(other)
    c.exchange(s, ["HELLO", "3", "AUTH", "default", PASSWORD], "HELLO map")
    c.exchange(s, ["SUBSCRIBE", "fixture:channel"], "subscribe confirmation as a push")
    other.sendall(encode("PUBLISH", "fixture:channel", "hello"))
    drain(other)
    time.sleep(0.1)
    c.exchange(s, ["PING"], "the published message (a push) and then PONG")
    c.exchange(s, ["UNSUBSCRIBE", "fixture:channel"], "unsubscribe confirmation as a push")
    c.write(version)
    s.close()
    other.close()

    # Client-side caching invalidation.
    c = Capture("tracking-invalidation", "RESP3 CLIENT TRACKING: a read key is changed by another connection")
    s = connect()
    other = connect()
    other.sendall(encode("AUTH", PASSWORD))
    drain(other)
    c.exchange(s, ["HELLO", "3", "AUTH", "default", PASSWORD], "HELLO map")
    c.exchange(s, ["CLIENT", "TRACKING", "ON"], "+OK")
    c.exchange(s, ["GET", "fixture:tracked"], "null; the key is now tracked")
    other.sendall(encode("SET", "fixture:tracked", "changed"))
    drain(other)
    time.sleep(0.1)
    c.exchange(s, ["PING"], "an invalidate push, then PONG")
    other.sendall(encode("DEL", "fixture:tracked"))
    drain(other)
    c.write(version)
    s.close()
    other.close()


if __name__ == "__main__":
    main()

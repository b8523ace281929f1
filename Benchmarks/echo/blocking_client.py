"""The Python baseline: one blocking socket, 1-byte ping-pong. usage: blocking_client.py PORT SECONDS"""
import socket
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
count = 0
start = time.monotonic()
end = start + seconds
while count % 64 or time.monotonic() < end:
    sock.sendall(b"x")
    if len(sock.recv(1)) != 1:
        sys.exit("connection closed")
    count += 1
print(round(count / (time.monotonic() - start)))

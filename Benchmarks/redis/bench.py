"""redis-py (with hiredis) on the same workloads as redis-bench; prints operations or MB per second.
    bench.py PORT sequential-set|sequential-get COUNT | PORT pipelined-set COUNT BATCH | - parse FILE REPEAT
"""
import os
import sys
import time

mode = sys.argv[2]
if mode == "parse":
    import hiredis
    data = open(sys.argv[3], "rb").read()
    times = int(sys.argv[4])
    start = time.perf_counter()
    for _ in range(times):
        reader = hiredis.Reader()
        for offset in range(0, len(data), 16384):
            reader.feed(data[offset:offset + 16384])
            while reader.gets() is not False:
                pass
    print(round(len(data) * times / 1e6 / (time.perf_counter() - start)))
    sys.exit()

import redis

client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=3, password=os.environ.get("REDIS_PASSWORD"))
count = int(sys.argv[3])
client.set("key:__rand_int__", "xxx")
start = time.perf_counter()
if mode == "sequential-set":
    for _ in range(count):
        client.set("key:__rand_int__", "xxx")
elif mode == "sequential-get":
    for _ in range(count):
        client.get("key:__rand_int__")
elif mode == "pipelined-set":
    batch = int(sys.argv[4])
    for _ in range(count // batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(batch):
            pipe.set("key:__rand_int__", "xxx")
        pipe.execute()
print(round(count / (time.perf_counter() - start)))

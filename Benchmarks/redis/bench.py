"""redis-py (with hiredis) on the same workloads as redis-bench; prints operations or MB per second.
    bench.py PORT sequential-set|sequential-get|cached-get COUNT | PORT pipelined-set COUNT BATCH | - parse FILE REPEAT
    cached-get: redis-py's client-side cache (protocol 3, CacheConfig), GETs over 100 keys read once first.
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

count = int(sys.argv[3])
if mode == "cached-get":
    from redis.cache import CacheConfig
    from redis.connection import CacheProxyConnection
    # redis-py enables its cache only from Redis 7.4 on, by a version check: the tracking it uses
    # (RESP3 CLIENT TRACKING) is in every Redis since 6.0, so the check is lowered for the
    # distribution's server.
    CacheProxyConnection.MIN_ALLOWED_VERSION = "6.0.0"
    client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=3, password=os.environ.get("REDIS_PASSWORD"),
                         cache_config=CacheConfig())
    keys = [f"cached:{index}" for index in range(100)]
    for key in keys:
        client.set(key, "xxx")
    for key in keys:
        client.get(key)
    start = time.perf_counter()
    for index in range(count):
        client.get(keys[index % 100])
    print(round(count / (time.perf_counter() - start)))
    sys.exit()
client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=3, password=os.environ.get("REDIS_PASSWORD"))
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

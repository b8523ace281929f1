"""nats-py on the same workloads as nats-bench:
    bench.py URL publish|pubsub|request|js-publish|js-publish-async|fetch|kv-put|kv-get COUNT SIZE
    bench.py URL obj-put MEGABYTES 0
Prints messages (or requests, or MB) per second; obj-put prints the get rate and the peak
resident memory to standard error."""
import asyncio
import os
import resource
import sys
import time

import nats
import nats.errors


async def main(url, mode, count, size):
    payload = b"x" * size
    if mode == "publish":
        nc = await nats.connect(url)
        start = time.perf_counter()
        for _ in range(count):
            await nc.publish("bench.publish", payload)
        await nc.flush(timeout=120)
        rate = count / (time.perf_counter() - start)
        await nc.close()
    elif mode == "pubsub":
        sub = await nats.connect(url)
        pub = await nats.connect(url)
        done = asyncio.get_running_loop().create_future()
        received = 0

        async def handler(msg):
            nonlocal received
            received += 1
            if received == count:
                done.set_result(None)

        await sub.subscribe("bench.pubsub", cb=handler, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await sub.flush()
        start = time.perf_counter()
        for _ in range(count):
            await pub.publish("bench.pubsub", payload)
        await pub.flush(timeout=120)
        await asyncio.wait_for(done, 120)
        rate = count / (time.perf_counter() - start)
        await pub.close()
        await sub.close()
    elif mode == "request":
        responder = await nats.connect(url)
        requester = await nats.connect(url)

        async def respond(msg):
            await msg.respond(msg.data)

        await responder.subscribe("bench.request", cb=respond)
        await responder.flush()
        for _ in range(50):  # the responder's interest may take a moment to reach the requester's route
            try:
                await requester.request("bench.request", payload, timeout=5)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.02)
        start = time.perf_counter()
        for _ in range(count):
            await requester.request("bench.request", payload, timeout=5)
        rate = count / (time.perf_counter() - start)
        await requester.close()
        await responder.close()
    elif mode in ("js-publish", "js-publish-async"):
        # A file-stored stream of its own, created and deleted around the run.
        nc = await nats.connect(url)
        js = nc.jetstream(publish_async_max_pending=4000)
        name = f"BENCH_PY_{time.time_ns()}"
        await js.add_stream(name=name, subjects=[name + ".>"], storage="file")
        subject = name + ".x"
        start = time.perf_counter()
        if mode == "js-publish":
            for _ in range(count):
                await js.publish(subject, payload)
        else:
            for _ in range(count):
                await js.publish_async(subject, payload)
            await js.publish_async_completed()
        rate = count / (time.perf_counter() - start)
        await js.delete_stream(name)
        await nc.close()
    elif mode == "fetch":
        # COUNT messages stored first (not timed), then read in batches of 100 by a pull consumer.
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(url)
        js = nc.jetstream(publish_async_max_pending=4000)
        name = f"BENCH_PY_{time.time_ns()}"
        await js.add_stream(name=name, subjects=[name + ".>"], storage="file")
        for _ in range(count):
            await js.publish_async(name + ".x", payload)
        await js.publish_async_completed()
        sub = await js.pull_subscribe(name + ".x", "reader", config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        start = time.perf_counter()
        received = 0
        while received < count:
            received += len(await sub.fetch(100, timeout=5))
        rate = count / (time.perf_counter() - start)
        await js.delete_stream(name)
        await nc.close()
    elif mode in ("kv-put", "kv-get"):
        # Sequential puts of SIZE-byte values over 100 keys; or, after those puts, sequential gets.
        nc = await nats.connect(url)
        js = nc.jetstream()
        bucket = f"bench_py_{time.time_ns()}"
        kv = await js.create_key_value(bucket=bucket)
        keys = [f"key.{index}" for index in range(100)]
        for key in keys:
            await kv.put(key, payload)
        start = time.perf_counter()
        if mode == "kv-put":
            for index in range(count):
                await kv.put(keys[index % 100], payload)
        else:
            for index in range(count):
                await kv.get(keys[index % 100])
        rate = count / (time.perf_counter() - start)
        await js.delete_key_value(bucket)
        await nc.close()
    elif mode == "obj-put":
        # A file of COUNT MiB, stored and read back through an object store of its own.
        nc = await nats.connect(url)
        js = nc.jetstream()
        bucket = f"bench_py_{time.time_ns()}"
        store = await js.create_object_store(bucket)
        source, target = f"/tmp/{bucket}.in", f"/tmp/{bucket}.out"
        mebibyte = bytes((index * 31) & 0xFF for index in range(1 << 20))
        with open(source, "wb") as file:
            for _ in range(count):
                file.write(mebibyte)
        try:
            start = time.perf_counter()
            with open(source, "rb") as file:
                await store.put("bench", file)
            rate = count / (time.perf_counter() - start)
            start = time.perf_counter()
            with open(target, "wb") as file:
                await store.get("bench", writeinto=file)
            print(f"get MB/s: {round(count / (time.perf_counter() - start))}", file=sys.stderr)
            print(f"peak RSS MB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}", file=sys.stderr)
        finally:
            os.remove(source)
            if os.path.exists(target):
                os.remove(target)
        await js.delete_object_store(bucket)
        await nc.close()
    else:
        raise SystemExit(f"unknown workload {mode}")
    print(round(rate))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))

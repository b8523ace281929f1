"""nats-py on the same workloads as nats-bench:
    bench.py URL publish|pubsub|request COUNT SIZE
Prints messages (or requests) per second."""
import asyncio
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
    else:
        raise SystemExit(f"unknown workload {mode}")
    print(round(rate))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))

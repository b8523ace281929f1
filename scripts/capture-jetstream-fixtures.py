#!/usr/bin/env python3
"""Captures the JetStream API's JSON answers from a running nats-server into
Fixtures/jetstream/<server version>/: stream and consumer info, a PubAck, account info, an object
meta written by nats-py, and the API's errors. Each file is the reply's payload as the server sent it.

  scripts/capture-jetstream-fixtures.py nats://127.0.0.1:4222
"""
import asyncio
import json
import os
import sys

import nats


async def main(url):
    nc = await nats.connect(url)
    version = nc._server_info["version"]
    out = os.path.join(os.path.dirname(__file__), "..", "Fixtures", "jetstream", version)
    os.makedirs(out, exist_ok=True)

    async def api(name, subject, body=b""):
        reply = await nc.request("$JS.API." + subject, body, timeout=5)
        with open(os.path.join(out, name + ".json"), "wb") as f:
            f.write(reply.data)
        return reply

    config = {"name": "FIXTURE", "subjects": ["fixture.>"], "retention": "limits", "storage": "memory",
              "max_age": 3600 * 10**9, "num_replicas": 1, "allow_direct": True, "discard": "old"}
    await nc.request("$JS.API.STREAM.DELETE.FIXTURE", b"", timeout=5)
    await api("stream-create", "STREAM.CREATE.FIXTURE", json.dumps(config).encode())
    reply = await nc.request("fixture.a", b"hello", timeout=5, headers={"Nats-Msg-Id": "fixture-1"})
    with open(os.path.join(out, "puback.json"), "wb") as f:
        f.write(reply.data)
    reply = await nc.request("fixture.a", b"hello", timeout=5, headers={"Nats-Msg-Id": "fixture-1"})
    with open(os.path.join(out, "puback-duplicate.json"), "wb") as f:
        f.write(reply.data)
    await api("stream-info", "STREAM.INFO.FIXTURE", json.dumps({"subjects_filter": ">"}).encode())
    consumer = {"stream_name": "FIXTURE", "config": {"durable_name": "worker", "ack_policy": "explicit", "ack_wait": 30 * 10**9,
                                                     "max_deliver": 5, "filter_subject": "fixture.a"}}
    await api("consumer-create", "CONSUMER.DURABLE.CREATE.FIXTURE.worker", json.dumps(consumer).encode())
    await api("consumer-info", "CONSUMER.INFO.FIXTURE.worker")
    await api("account-info", "INFO")
    await api("error-stream-not-found", "STREAM.INFO.NOSUCHSTREAM")
    await api("error-consumer-not-found", "CONSUMER.INFO.FIXTURE.nosuch")
    await api("error-no-message", "STREAM.MSG.GET.FIXTURE", json.dumps({"seq": 999}).encode())
    changed = dict(config, max_msgs=1)
    await api("error-stream-name-in-use", "STREAM.CREATE.FIXTURE", json.dumps(changed).encode())
    reply = await nc.request("fixture.a", b"x", timeout=5, headers={"Nats-Expected-Last-Sequence": "99"})
    with open(os.path.join(out, "error-wrong-last-sequence.json"), "wb") as f:
        f.write(reply.data)
    await nc.request("$JS.API.STREAM.DELETE.FIXTURE", b"", timeout=5)

    js = nc.jetstream()
    store = await js.create_object_store("FIXTURE_OBJ")
    await store.put("hello.txt", b"hello, object store")
    info = await js.get_msg("OBJ_FIXTURE_OBJ", subject="$O.FIXTURE_OBJ.M.aGVsbG8udHh0", direct=False)
    with open(os.path.join(out, "object-meta.json"), "wb") as f:
        f.write(info.data)
    await js.delete_object_store("FIXTURE_OBJ")
    await nc.close()
    print("captured into", os.path.normpath(out))


asyncio.run(main(sys.argv[1]))

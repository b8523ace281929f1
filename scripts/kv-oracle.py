#!/usr/bin/env python3
"""nats-py's view of a KV bucket, for the Swift KV tests: the reference client reads what Swift
wrote and writes what Swift reads.

  kv-oracle.py URL BUCKET read KEY...      prints {"KEY": {"value": ..., "revision": ..., "operation": ...} or null}
  kv-oracle.py URL BUCKET write KEY VALUE  puts VALUE under KEY; prints {"revision": ...}
  kv-oracle.py URL BUCKET keys             prints the keys nats-py lists
  kv-oracle.py URL BUCKET create           creates the bucket as nats-py does; prints the stream config it sent
"""
import asyncio
import json
import sys

import nats
from nats.js.errors import KeyNotFoundError, KeyDeletedError, NoKeysError


async def main(url, bucket, verb, args):
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        if verb == "create":
            kv = await js.create_key_value(bucket=bucket, history=5)
            info = await js.stream_info("KV_" + bucket)
            config = info.config.as_dict()
            print(json.dumps(config, sort_keys=True))
            return
        kv = await js.key_value(bucket)
        if verb == "read":
            out = {}
            for key in args:
                try:
                    entry = await kv.get(key)
                    out[key] = {"value": entry.value.decode(), "revision": entry.revision, "operation": entry.operation}
                except (KeyNotFoundError, KeyDeletedError):
                    out[key] = None
            print(json.dumps(out))
        elif verb == "write":
            revision = await kv.put(args[0], args[1].encode())
            print(json.dumps({"revision": revision}))
        elif verb == "keys":
            try:
                keys = await kv.keys()
            except NoKeysError:
                keys = []
            print(json.dumps(sorted(keys)))
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))

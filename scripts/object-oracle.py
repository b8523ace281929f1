#!/usr/bin/env python3
"""nats-py's view of an object-store bucket, for the Swift Object Store tests.

  object-oracle.py URL BUCKET put NAME FILE   stores FILE as NAME; prints its info as JSON
  object-oracle.py URL BUCKET get NAME FILE   writes NAME to FILE (nats-py checks the digest); prints its info
"""
import asyncio
import json
import sys

import nats


def info_dict(info):
    return {"name": info.name, "size": info.size, "chunks": info.chunks, "digest": info.digest, "nuid": info.nuid}


async def main(url, bucket, verb, name, path):
    nc = await nats.connect(url)
    try:
        store = await nc.jetstream().object_store(bucket)
        if verb == "put":
            with open(path, "rb") as source:
                info = await store.put(name, source)
            print(json.dumps(info_dict(info)))
        elif verb == "get":
            with open(path, "wb") as target:
                result = await store.get(name, writeinto=target)
            print(json.dumps(info_dict(result.info)))
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))

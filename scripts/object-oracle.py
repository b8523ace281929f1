#!/usr/bin/env python3
"""nats-py's view of an object-store bucket, for the Swift Object Store tests.

  object-oracle.py URL BUCKET put NAME FILE   stores FILE as NAME; prints its info as JSON
  object-oracle.py URL BUCKET get NAME FILE   writes NAME to FILE (nats-py checks the digest, follows links); prints its info
  object-oracle.py URL BUCKET info NAME       prints NAME's meta as nats-py reads it, with description, headers and link
  object-oracle.py URL BUCKET describe NAME TEXT  sets NAME's description with nats-py's update_meta
"""
import asyncio
import json
import sys

import nats


def info_dict(info):
    return {"name": info.name, "size": info.size, "chunks": info.chunks, "digest": info.digest, "nuid": info.nuid}


def full_dict(info):
    described = info_dict(info)
    described["description"] = info.description
    described["headers"] = dict(info.headers) if info.headers else None
    described["deleted"] = bool(info.deleted)
    link = info.options.link if info.options else None
    described["link"] = {"bucket": link.bucket, "name": link.name} if link else None
    return described


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
                # Through a link nats-py returns the bytes instead of writing them.
                if result.data:
                    target.write(result.data)
            print(json.dumps(info_dict(result.info)))
        elif verb == "info":
            print(json.dumps(full_dict(await store.get_info(name, show_deleted=True))))
        elif verb == "describe":
            # nats-py's update_meta cannot rename (it refuses any new name), so only the description.
            from nats.js.api import ObjectMeta
            await store.update_meta(name, ObjectMeta(name=name, description=path))
    finally:
        await nc.close()


if __name__ == "__main__":
    arguments = sys.argv[1:6]
    asyncio.run(main(*(arguments + [None] * (5 - len(arguments)))))

"""The pg-bench workloads with asyncpg and psycopg 3 (binary), the Python peers.

    bench.py asyncpg|psycopg HOST PORT USER PASSWORD DATABASE MODE COUNT

Prints operations (or rows) per second, like pg-bench. The pool mode (asyncpg only): 50 tasks doing
SELECT 1 through asyncpg's pool of 10 for COUNT seconds; the acquire wait's p50 and p99 go to
standard error.
"""
import asyncio
import sys
import time


async def run_asyncpg(host, port, user, password, database, mode, count):
    import asyncpg

    async def connect():
        return await asyncpg.connect(host=host, port=port, user=user, password=password, database=database, ssl=False)

    if mode == "connect":
        start = time.perf_counter()
        for _ in range(count):
            connection = await connect()
            await connection.close()
        return count / (time.perf_counter() - start)
    if mode == "pool":
        pool = await asyncpg.create_pool(
            host=host, port=port, user=user, password=password, database=database, ssl=False, min_size=10, max_size=10)
        waits = []
        stop = time.perf_counter() + count

        async def worker():
            while time.perf_counter() < stop:
                asked = time.perf_counter()
                async with pool.acquire() as connection:
                    waits.append(time.perf_counter() - asked)
                    await connection.fetchval("SELECT 1")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(50)))
        rate = len(waits) / (time.perf_counter() - start)
        await pool.close()
        waits.sort()
        p50 = round(waits[len(waits) // 2] * 1e6)
        p99 = round(waits[min(len(waits) - 1, len(waits) * 99 // 100)] * 1e6)
        print(f"acquire wait p50 us: {p50} p99 us: {p99}", file=sys.stderr)
        return rate
    connection = await connect()
    try:
        start = time.perf_counter()
        if mode == "select1":
            for _ in range(count):
                await connection.execute("SELECT 1")  # simple protocol when there are no arguments
        elif mode == "prepared":
            statement = await connection.prepare("SELECT $1::int")
            start = time.perf_counter()
            for index in range(count):
                await statement.fetchval(index)
        elif mode == "fetch":
            total = 0
            for number, _, _ in await connection.fetch("SELECT g, g::text, now() FROM generate_series(1, $1::int) g", count):
                total += number
        elif mode == "insert":
            await connection.execute("DROP TABLE IF EXISTS bench_asyncpg; CREATE UNLOGGED TABLE bench_asyncpg (id int, name text)")
            start = time.perf_counter()
            await connection.executemany("INSERT INTO bench_asyncpg VALUES ($1, $2)", [(i, f"name-{i}") for i in range(count)])
        elif mode == "copy":
            await connection.execute("DROP TABLE IF EXISTS bench_asyncpg; CREATE UNLOGGED TABLE bench_asyncpg (id int, name text)")
            start = time.perf_counter()
            await connection.copy_records_to_table("bench_asyncpg", records=[(i, f"name-{i}") for i in range(count)])
        else:
            raise SystemExit(f"unknown mode {mode}")
        return count / (time.perf_counter() - start)
    finally:
        await connection.close()


def run_psycopg(host, port, user, password, database, mode, count):
    import psycopg

    def connect():
        return psycopg.connect(host=host, port=port, user=user, password=password, dbname=database, sslmode="disable", autocommit=True)

    if mode == "connect":
        start = time.perf_counter()
        for _ in range(count):
            connect().close()
        return count / (time.perf_counter() - start)
    with connect() as connection:
        cursor = connection.cursor(binary=True)
        start = time.perf_counter()
        if mode == "select1":
            for _ in range(count):
                connection.execute("SELECT 1", prepare=False)
        elif mode == "prepared":
            for index in range(count):
                cursor.execute("SELECT %s::int", (index,), prepare=True)
                cursor.fetchone()
        elif mode == "fetch":
            total = 0
            cursor.execute("SELECT g, g::text, now() FROM generate_series(1, %s::int) g", (count,))
            for number, _, _ in cursor:
                total += number
        elif mode == "insert":
            cursor.execute("DROP TABLE IF EXISTS bench_psycopg")
            cursor.execute("CREATE UNLOGGED TABLE bench_psycopg (id int, name text)")
            start = time.perf_counter()
            with connection.pipeline():
                cursor.executemany("INSERT INTO bench_psycopg VALUES (%s, %s)", [(i, f"name-{i}") for i in range(count)])
        elif mode == "copy":
            cursor.execute("DROP TABLE IF EXISTS bench_psycopg")
            cursor.execute("CREATE UNLOGGED TABLE bench_psycopg (id int, name text)")
            start = time.perf_counter()
            with cursor.copy("COPY bench_psycopg (id, name) FROM STDIN") as copy:
                for i in range(count):
                    copy.write_row((i, f"name-{i}"))
        else:
            raise SystemExit(f"unknown mode {mode}")
        return count / (time.perf_counter() - start)


def main():
    client, host, port, user, password, database, mode, count = sys.argv[1:9]
    port, count = int(port), int(count)
    if client == "asyncpg":
        rate = asyncio.run(run_asyncpg(host, port, user, password, database, mode, count))
    else:
        rate = run_psycopg(host, port, user, password, database, mode, count)
    print(round(rate))


if __name__ == "__main__":
    main()

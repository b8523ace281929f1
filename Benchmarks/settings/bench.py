"""Python's side of the settings benchmark, on the same inputs.
    bench.py toml FILE ITERATIONS    -> MB/s with tomllib
    bench.py load FOLDER ITERATIONS  -> Dynaconf loads/s (the workers' configuration, forced with as_dict)
"""
import os
import sys
import time
import tomllib

mode, target, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "toml":
    data = open(target, "rb").read()
    text = data.decode("utf-8")
    tomllib.loads(text)
    start = time.perf_counter()
    for _ in range(iterations):
        tomllib.loads(text)
    print(f"{len(data) * iterations / 1e6 / (time.perf_counter() - start):.1f}")
else:
    os.chdir(target)
    from dynaconf import Dynaconf

    def load():
        settings = Dynaconf(
            envvar_prefix="TRANSCRIPTION",
            settings_files=["settings.toml", ".secrets.toml"],
            environments=True,
            load_dotenv=True,
        )
        return settings.as_dict()

    load()
    start = time.perf_counter()
    for _ in range(iterations):
        load()
    print(f"{iterations / (time.perf_counter() - start):.1f}")

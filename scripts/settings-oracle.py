"""What Dynaconf (and the python-dotenv copy it bundles) make of a folder: the oracle the Swift
settings loader is compared with.

    settings-oracle.py dotenv FILE        -> {"bindings": [[key, value|null], ...], "resolved": {key: value}}
    settings-oracle.py settings FOLDER    -> the resolved settings as a type-tagged tree

Values are tagged like toml-test's JSON ({"type": ..., "value": ...}), so types are compared too.
"""
import datetime
import json
import os
import sys


def tag(value):
    if isinstance(value, bool):
        return {"type": "bool", "value": "true" if value else "false"}
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if value is None:
        return {"type": "null", "value": ""}
    if isinstance(value, datetime.datetime):
        kind = "datetime" if value.tzinfo is not None else "datetime-local"
        return {"type": kind, "value": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"type": "date-local", "value": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"type": "time-local", "value": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): tag(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tag(v) for v in value]
    return {"type": "unknown", "value": repr(value)}


def dotenv(path):
    from dynaconf.vendor.dotenv.main import DotEnv
    from dynaconf.vendor.dotenv.parser import parse_stream

    with open(path, encoding="utf-8") as stream:
        bindings = [[b.key, b.value] for b in parse_stream(stream) if b.key is not None]
    return {"bindings": bindings, "resolved": dict(DotEnv(path).dict())}


def settings(folder):
    os.chdir(folder)
    from dynaconf import Dynaconf

    loaded = Dynaconf(
        envvar_prefix="TRANSCRIPTION",
        settings_files=["settings.toml", ".secrets.toml"],
        environments=True,
        load_dotenv=True,
    )
    return {"settings": tag(loaded.as_dict()), "env": loaded.current_env}


if __name__ == "__main__":
    mode, target = sys.argv[1], sys.argv[2]
    try:
        result = dotenv(target) if mode == "dotenv" else settings(target)
    except Exception as error:  # the loader refused the input: report it, do not crash
        result = {"error": f"{type(error).__name__}: {error}"}
    json.dump(result, sys.stdout, sort_keys=True)

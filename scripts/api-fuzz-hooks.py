"""Schemathesis hooks for scripts/api-fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

- A serializer for `application/x-ndjson`, which Schemathesis does not know: the produce
  operation documents one record object per line, so a generated object is sent as one line
  and a generated array as one line per item.
- Long-polls are kept short: `wait_ms` is capped at 50 ms so a read of an empty partition does
  not hold a worker for up to 30 s (the gateway clamps it to 30 000 anyway). Values that are not
  whole numbers that fit a u64 are sent unchanged, so the parameter is still fuzzed. The same
  for the `wait_ms` field of a queue receive's body.
"""

import json

import schemathesis

MAX_WAIT_MS = 50


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


def _capped(wait):
    """`wait` as at most MAX_WAIT_MS when it is a whole number (int or decimal text), else as is."""
    if isinstance(wait, bool):
        return wait
    try:
        n = int(wait) if isinstance(wait, int) else int(str(wait), 10)
    except ValueError:
        return wait
    if n <= MAX_WAIT_MS or n >= 2**64:  # beyond u64 it is a 400, not a wait
        return wait
    return MAX_WAIT_MS if isinstance(wait, int) else str(MAX_WAIT_MS)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Every phase passes here (a `map_query` hook misses the coverage phase's boundary values).
    if isinstance(case.query, dict) and "wait_ms" in case.query:
        case.query["wait_ms"] = _capped(case.query["wait_ms"])
    # A queue receive's long-poll is in its body.
    if isinstance(case.body, dict) and "wait_ms" in case.body:
        case.body["wait_ms"] = _capped(case.body["wait_ms"])

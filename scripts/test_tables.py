"""DuckDB reads a topic's Parquet table from a `sluice dev` folder: the rows are exactly the
records the REST API returns for the same offsets (run by scripts/test-tables.sh).

Usage: test_tables.py BASE_URL DATA_DIR
"""

import base64
import glob
import json
import os
import shutil
import sys
import time
import urllib.request
from datetime import datetime, timezone

import duckdb

BASE, DATA = sys.argv[1], sys.argv[2]
TOPIC = "events"
PARTITIONS = 3


def call(method, path, body=None):
    req = urllib.request.Request(BASE + path, method=method)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, data, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def wait_healthy():
    for _ in range(200):
        try:
            urllib.request.urlopen(BASE + "/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("sluice dev did not become healthy")


def newest_manifest():
    paths = sorted(glob.glob(f"{DATA}/tables/{TOPIC}/_manifest/*.json"))
    if not paths:
        return None
    with open(paths[-1]) as f:
        return json.load(f)


def main():
    wait_healthy()
    topic = call("POST", "/v1/topics", {"name": TOPIC, "partitions": PARTITIONS, "parquet": True})
    assert topic["parquet"] is True, topic
    sent = 0
    for batch in range(20):
        records = []
        for i in range(25):
            n = batch * 25 + i
            r = {"headers": {"batch": str(batch), "n": str(n)}}
            if n % 3 == 0:
                r["value_b64"] = base64.b64encode(bytes([0, 255, n % 256]) + b"\x80bin").decode()
            else:
                r["value"] = f"value-{n} \u00e9"
            if n % 4 == 0:
                r["key_b64"] = base64.b64encode(b"\xffkey%d" % (n % 7)).decode()
            elif n % 4 == 1:
                r["key"] = f"user-{n % 11}"
            records.append(r)
        call("POST", f"/v1/topics/{TOPIC}/records", {"records": records})
        sent += len(records)

    detail = call("GET", f"/v1/topics/{TOPIC}")
    hw = {p["partition"]: p["next_offset"] for p in detail["partition_info"]}
    assert sum(hw.values()) == sent, (hw, sent)

    # The table catches up within a few compaction intervals (1 s each in `sluice dev`).
    deadline = time.time() + 60
    while True:
        m = newest_manifest()
        nxt = {n["partition"]: n["offset"] for n in (m or {}).get("next", [])}
        if all(nxt.get(p, 0) == hw[p] for p in range(PARTITIONS)):
            break
        if time.time() > deadline:
            sys.exit(f"table did not catch up: manifest next {nxt}, log {hw}")
        time.sleep(0.2)

    # A staged file outside tables/ and the manifest's JSON must not change what the glob sees.
    first = os.path.join(f"{DATA}/tables/{TOPIC}", m["files"][0]["path"])
    os.makedirs(f"{DATA}/tables-staging", exist_ok=True)
    shutil.copy(first, f"{DATA}/tables-staging/01JDC0000000000000000000AA")

    con = duckdb.connect()
    pattern = f"{DATA}/tables/{TOPIC}/**/*.parquet"
    rows = con.execute(
        "SELECT \"partition\", \"offset\", epoch_ms(timestamp), key, value, map_entries(headers), "
        "CAST(date AS VARCHAR), typeof(timestamp) "
        f"FROM read_parquet('{pattern}', hive_partitioning = true) ORDER BY \"partition\", \"offset\""
    ).fetchall()
    assert len(rows) == sent, f"{len(rows)} rows, {sent} records sent"
    keys = {(r[0], r[1]) for r in rows}
    assert len(keys) == len(rows), "(partition, offset) is unique"
    assert rows[0][7] == "TIMESTAMP WITH TIME ZONE", rows[0][7]
    table = {(r[0], r[1]): r for r in rows}

    checked = 0
    for p in range(PARTITIONS):
        got = call("GET", f"/v1/topics/{TOPIC}/partitions/{p}/records?offset=0&limit=1000")
        assert len(got["records"]) == hw[p]
        for rec in got["records"]:
            row = table[(p, rec["offset"])]
            assert row[2] == rec["timestamp_ms"], (row, rec)
            if rec.get("key_b64"):
                key = base64.b64decode(rec["key_b64"])
            elif rec["key"] is not None:
                key = rec["key"].encode()
            else:
                key = None
            assert row[3] == key, (row, rec)
            value = base64.b64decode(rec["value_b64"]) if rec.get("value_b64") else rec["value"].encode()
            assert row[4] == value, (row, rec)
            headers = {e["key"]: e["value"] for e in row[5]}
            assert headers == rec["headers"], (headers, rec["headers"])
            day = datetime.fromtimestamp(rec["timestamp_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
            assert row[6] == day, (row[6], day)
            checked += 1
    assert checked == sent

    # The manifest's offset ranges are exactly the table's rows.
    ranged = set()
    for f in m["files"]:
        for r in f["partitions"]:
            ranged.update((r["partition"], o) for o in range(r["start"], r["end"]))
    assert ranged == keys, "manifest ranges = rows"
    print(f"test_tables: {len(rows)} rows in {len(m['files'])} files match the REST API")


main()

"""The web console in headless Chromium (Playwright for Python, the system browser).

Run by scripts/test-console.sh, which starts the gateways and passes, in the environment:
CONSOLE_BASE (an open `sluice dev`), CONSOLE_AUTH_BASE and CONSOLE_AUTH_TOKEN (one with bearer
tokens), CONSOLE_ARTIFACTS (screenshots go there), CONSOLE_CHROMIUM, CONSOLE_PROFILE (a fresh
--user-data-dir).

Every page of the console is checked for JavaScript errors: uncaught exceptions, console errors
(other than the browser's own log line for an API answer >= 400 that the console shows as a
problem), and any console file that fails to load or any 5xx from the API.
"""

import base64
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["CONSOLE_BASE"]
AUTH_BASE = os.environ["CONSOLE_AUTH_BASE"]
AUTH_TOKEN = os.environ["CONSOLE_AUTH_TOKEN"]
OUT = os.environ["CONSOLE_ARTIFACTS"]
CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
PROFILE = os.environ["CONSOLE_PROFILE"]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)


def api(method, path, body=None, base=BASE, token=None, ok=True):
    """Call the REST API; returns (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read()
        status = e.code
    if ok and status >= 400:
        raise AssertionError(f"{method} {path}: {status} {text[:300]!r}")
    return status, (json.loads(text) if text else None)


def produce(topic, records):
    return api("POST", f"/v1/topics/{topic}/records", {"records": records})[1]


class Watch:
    """Collects the JavaScript errors and failed loads of one browser page."""

    def __init__(self, page, base):
        self.errors = []
        self.base = base
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", self.on_console)
        page.on("requestfailed", self.on_failed)
        page.on("response", self.on_response)

    def on_console(self, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        # Chromium logs every answer >= 400 as "Failed to load resource"; for API calls the
        # console handles them (problem details, 404 empty states) and on_response checks them.
        if msg.text.startswith("Failed to load resource") and "/v1/" in url:
            return
        self.errors.append(f"console error: {msg.text} ({url})")

    def on_failed(self, req):
        # Polls cut short by a navigation are aborted by the browser, not failures.
        if req.failure and "ERR_ABORTED" in req.failure:
            return
        self.errors.append(f"request failed: {req.method} {req.url} {req.failure}")

    def on_response(self, resp):
        path = resp.url[len(self.base):] if resp.url.startswith(self.base) else resp.url
        if resp.status >= 500:
            self.errors.append(f"{resp.status} from {resp.request.method} {path}")
        elif resp.status >= 400 and not path.startswith("/v1/"):
            self.errors.append(f"{resp.status} loading {path}")


RESULTS = []


def step(name):
    def wrap(fn):
        def run(*a, **k):
            t = time.time()
            try:
                out = fn(*a, **k)
            except Exception:
                RESULTS.append((name, False))
                print(f"FAIL {name} ({time.time() - t:.1f} s)", flush=True)
                traceback.print_exc()
                raise
            RESULTS.append((name, True))
            print(f"ok   {name} ({time.time() - t:.1f} s)", flush=True)
            return out

        return run

    return wrap


def shot(page, name):
    """Screenshots of the current page at 1280×800 and at 400 px wide; no sideways scrolling."""
    for label, size in (("1280x800", WIDE), ("400px", NARROW)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.screenshot(path=os.path.join(OUT, f"{name}-{label}.png"), full_page=label != "1280x800")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} at {label}: {overflow} px wider than the window"
    page.set_viewport_size(WIDE)


def goto(page, hash_):
    page.evaluate("h => { location.hash = h }", hash_)
    page.wait_for_function("h => location.hash.startsWith(h)", arg=hash_)


def field_error(page, input_name):
    """The error slot of the form field holding the input named `input_name`."""
    return page.locator(f".field:has([name='{input_name}']) .field-error")


# --- the checks ----------------------------------------------------------------------------------


@step("formatting helpers: separators, units, hex, rates, metrics")
def check_format(page):
    r = page.evaluate(
        """async () => {
        const f = await import('/console/format.js');
        const w = new f.Window(60000);
        w.push(0, 100); w.push(2000, 300); w.push(4000, 500);
        const old = new f.Window(60000);
        old.push(0, 0); old.push(30000, 10); old.push(70000, 10); old.push(100000, 10);
        return {
          num: f.num(1234567), bytes: f.bytes(1536), big: f.bytes(5 * 1024 ** 3), small: f.bytes(10),
          dur: f.duration(90061000), sec: f.duration(1500), ms: f.duration(250),
          hex: f.hex(new Uint8Array([0, 1, 171, 255])), cut: f.hex(new Uint8Array(10), 2),
          dump: f.hexdump(new Uint8Array([72, 105, 0, 255])),
          rate: w.perSecond(), windowed: old.perSecond(),
          size: f.recordBytes({key: 'k', value: 'héllo', headers: {a: 'bc'}, value_b64: null}),
          b64size: f.recordBytes({key: null, value: null, value_b64: 'AAEC'}),
          iso: f.iso(0), local: f.toLocalInput(f.parseLocal('2026-03-04T05:06:07')),
          metrics: f.parseMetrics('# HELP x\\nsluice_a_total{route="/v1/x",status="2xx"} 3\\nsluice_b 1.5\\n'),
          retention: f.retention(null),
        };
    }"""
    )
    assert r["num"] == "1,234,567", r
    assert (r["bytes"], r["big"], r["small"]) == ("1.5 KiB", "5 GiB", "10 B"), r
    assert (r["dur"], r["sec"], r["ms"]) == ("1 d 1 h", "1.5 s", "250 ms"), r
    assert r["hex"] == "00 01 ab ff" and r["cut"] == "00 00 …", r
    assert r["dump"] == "00000000  48 69 00 ff" + " " * 36 + "  Hi..", repr(r["dump"])
    assert r["rate"] == 100, r
    assert r["windowed"] == 0, r  # the sample older than a minute left the window
    assert r["size"] == 1 + 6 + 3 and r["b64size"] == 3, r
    assert r["iso"] == "1970-01-01T00:00:00.000Z" and r["local"] == "2026-03-04T05:06:07", r
    assert r["metrics"] == [
        {"name": "sluice_a_total", "labels": {"route": "/v1/x", "status": "2xx"}, "value": 3},
        {"name": "sluice_b", "labels": {}, "value": 1.5},
    ], r
    assert r["retention"] == "forever"


@step("topics: empty state, then create a topic in the UI")
def check_create(page):
    goto(page, "#/topics")
    expect(page.locator(".empty")).to_contain_text("No topics yet")
    shot(page, "topics-empty")
    page.fill("input[name=name]", "orders")
    page.fill("input[name=partitions]", "3")
    page.fill("#create-retention", "7")
    page.click("form.create button[type=submit]")
    expect(page.locator(".form-result")).to_contain_text("Created orders with 3 partitions")
    expect(page.locator("table.grid")).to_contain_text("orders")
    _, t = api("GET", "/v1/topics/orders")
    assert t["partitions"] == 3 and t["retention_ms"] == 7 * 86_400_000, t
    # The same name again: the API's problem shows by the name field.
    page.fill("input[name=name]", "orders")
    page.click("form.create button[type=submit]")
    expect(field_error(page, "name")).to_contain_text("topic_exists")


def value_b64(b):
    return base64.b64encode(bytes(b)).decode()


@step("produce through the API; the topics page updates live")
def check_live(page, stamps):
    page.evaluate("window.__noReload = 1")
    batch_a = [
        {"key": f"user-{i}", "value": json.dumps({"n": i, "kind": "created"}), "headers": {"type": "created"}, "partition": 0}
        for i in range(60)
    ]
    batch_a[7] = {"key": "bin", "value_b64": value_b64([*range(0, 8), *range(0x80, 0x8C)]), "headers": {"type": "binary"}, "partition": 0}
    a = produce("orders", batch_a)
    # Batch B starts at a later whole second, so a seek by time (second precision) splits them.
    wait = 1.0 - (a["append_timestamp_ms"] % 1000) / 1000 + 0.05
    time.sleep(wait)
    b = produce("orders", [{"key": f"user-{i}", "value": f"paid {i}", "headers": {"type": "paid"}, "partition": 0} for i in range(60, 120)])
    stamps["b"] = b["append_timestamp_ms"]
    assert b["offsets"][0] == {"partition": 0, "offset": 60}, b["offsets"][0]
    # 1,200 records in partition 1, for paging past 500.
    produce("orders", [{"value": f"bulk {i}", "partition": 1} for i in range(1200)])
    row = page.locator("table.grid tr", has_text="orders")
    expect(row.locator("td[data-label=Records]")).to_have_text("1,320")
    expect(row.locator("td[data-label='Records/s']")).not_to_have_text("—")
    expect(row.locator("td[data-label='Bytes/s']")).to_contain_text("/s")
    assert page.evaluate("window.__noReload") == 1, "the page was reloaded"
    shot(page, "topics")


@step("topic page: partitions, offsets, retention, delayed records")
def check_topic(page):
    goto(page, "#/topics/orders")
    parts = page.locator("section:has(#parts-h) table.grid tbody tr")
    expect(parts).to_have_count(3)
    expect(parts.nth(0).locator("td[data-label='Next offset']")).to_have_text("120")
    expect(parts.nth(1).locator("td[data-label='Next offset']")).to_have_text("1,200")
    expect(page.locator(".cards")).to_contain_text("7 d")
    # Delayed records: none yet; the list itself is on the Delayed page (check_delayed).
    expect(page.locator("section:has(#delayed-h) .empty")).to_contain_text("No delayed records pending")
    shot(page, "topic")
    # Change the retention in the UI; shrinking partitions is refused by the API, shown by the field.
    form = page.locator("form[aria-label='Change the topic']")
    form.locator("#edit-retention").fill("36")
    form.locator("select").select_option("hours")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".form-result")).to_contain_text("retention 1 d 12 h")
    assert api("GET", "/v1/topics/orders")[1]["retention_ms"] == 36 * 3_600_000
    expect(page.locator(".cards")).to_contain_text("1 d 12 h")
    form = page.locator("form[aria-label='Change the topic']")
    form.locator("input[type=number]").nth(1).fill("2")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".field-error .problem")).to_contain_text("400")


HOUR_MS = 3_600_000


def delayed_rows(page):
    return page.locator("section[aria-label='Pending delayed records'] table.grid tbody tr")


@step("delayed page: two pending records live, cancel one in the UI with a confirmation")
def check_delayed(page):
    goto(page, "#/topics/orders")
    page.get_by_role("link", name="Delayed", exact=True).click()
    page.wait_for_function("() => location.hash === '#/topics/orders/delayed'")
    expect(page.locator("main h1")).to_have_text("Delayed records")
    expect(page.locator("select[name=delayed-topic]")).to_have_value("orders")
    expect(page.locator("main .empty")).to_contain_text("No delayed records pending on orders")
    expect(page.locator("main .empty")).to_contain_text("delay_ms")
    shot(page, "delayed-empty")
    # Two records due in an hour, produced through the API; the page shows them without a reload.
    page.evaluate("window.__noReload = 1")
    ids = []
    for key in ("later-a", "later-b"):
        out = produce("orders", [{"key": key, "value": f"remind {key}", "headers": {"kind": "reminder"}, "delay_ms": HOUR_MS}])
        ids.append(out["offsets"][0]["delayed_id"])
        time.sleep(0.02)  # b is due after a: the list is soonest first
    rows = delayed_rows(page)
    expect(rows).to_have_count(2)
    assert page.evaluate("window.__noReload") == 1, "the page was reloaded"
    assert rows.locator("td[data-label=Key]").all_inner_texts() == ["later-a", "later-b"]
    assert rows.locator("td[data-label='Delayed id']").all_inner_texts() == ids
    expect(rows.nth(0).locator("td[data-label=Headers]")).to_contain_text("kind=reminder")
    expect(rows.nth(0).locator("td[data-label=Due]")).to_contain_text(re.compile(r"in (59 min|1 h)"))
    title = rows.nth(0).locator("time.due").get_attribute("title")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", title), title
    _, listed = api("GET", "/v1/topics/orders/delayed")
    due = listed["delayed"][0]["deliver_at_ms"]
    local = page.evaluate("async t => (await import('/console/format.js')).localTime(t)", due)
    expect(rows.nth(0).locator("td[data-label=Due]")).to_contain_text(local)  # the browser's zone
    expect(page.locator("main table.grid caption")).to_contain_text("2 records pending")
    shot(page, "delayed")
    # Cancel "later-a" from the keyboard; the dialog's own Cancel keeps it.
    btn = rows.nth(0).get_by_role("button", name=f"Cancel delayed record {ids[0]}")
    btn.focus()
    page.keyboard.press("Enter")
    dlg = page.locator("dialog.confirm")
    expect(dlg).to_contain_text("Cancel this delayed record?")
    expect(dlg).to_contain_text("later-a")
    dlg.get_by_role("button", name="Cancel", exact=True).click()
    result = page.locator("main .form-result")
    expect(result).to_contain_text("Kept")
    expect(rows).to_have_count(2)
    btn.click()
    shot(page, "delayed-cancel-confirm")
    page.locator("dialog.confirm").get_by_role("button", name="Cancel delivery").click()
    expect(result).to_contain_text(f"Cancelled delayed record {ids[0]}")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator("td[data-label=Key]")).to_have_text("later-b")
    _, left = api("GET", "/v1/topics/orders/delayed")
    assert [d["delayed_id"] for d in left["delayed"]] == [ids[1]], left
    assert api("DELETE", f"/v1/topics/orders/delayed/{ids[0]}", ok=False)[0] == 404
    # A record gone between the click and the confirmation: the API's problem, not a blank page.
    out = produce("orders", [{"key": "doomed", "value": "x", "delay_ms": 2 * HOUR_MS}])
    doomed = out["offsets"][0]["delayed_id"]
    expect(rows).to_have_count(2)
    rows.nth(1).get_by_role("button", name=f"Cancel delayed record {doomed}").click()
    api("DELETE", f"/v1/topics/orders/delayed/{doomed}")
    page.locator("dialog.confirm").get_by_role("button", name="Cancel delivery").click()
    expect(result.locator(".problem")).to_contain_text("delayed_not_found")
    expect(rows).to_have_count(1)
    # The topic page sums them up and links here.
    goto(page, "#/topics/orders")
    expect(page.locator("section:has(#delayed-h)")).to_contain_text("1 record pending")


def records(page):
    return page.locator(".records details.rec")


def offsets_shown(page):
    return [int(x.replace(",", "")) for x in page.locator(".records details.rec .off").all_inner_texts()]


@step("message browser: newest first, seek by offset, page both ways, past 500")
def check_browser(page):
    goto(page, "#/topics/orders/messages")
    expect(records(page).first.locator(".off")).to_have_text("119")
    assert offsets_shown(page)[:3] == [119, 118, 117], offsets_shown(page)[:3]
    shot(page, "messages")
    # Forward from offset 10, 20 a page.
    page.select_option("select[name=mode]", "offset")
    page.fill("input[name=offset]", "10")
    page.select_option("select[name=dir]", "fwd")
    page.select_option("select[name=n]", "20")
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".off")).to_have_text("10")
    assert offsets_shown(page) == list(range(10, 30)), offsets_shown(page)
    page.locator(".pager").first.get_by_role("button", name="Newer").click()
    expect(records(page).first.locator(".off")).to_have_text("30")
    page.locator(".pager").first.get_by_role("button", name="Older").click()
    expect(records(page).first.locator(".off")).to_have_text("10")
    assert "fwd" in page.evaluate("location.hash") and "offset=10" in page.evaluate("location.hash")
    # Backward from 50: 50, 49, … then older pages.
    page.fill("input[name=offset]", "50")
    page.select_option("select[name=dir]", "back")
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".off")).to_have_text("50")
    assert offsets_shown(page) == list(range(50, 30, -1)), offsets_shown(page)
    page.locator(".pager").first.get_by_role("button", name="Older").click()
    expect(records(page).first.locator(".off")).to_have_text("30")
    # Partition 1: 500 a page, three pages forward reach offsets past 1,000.
    page.select_option("select[name=partition]", "1")
    page.fill("input[name=offset]", "earliest")
    page.select_option("select[name=dir]", "fwd")
    page.select_option("select[name=n]", "500")
    page.click("form.seek button[type=submit]")
    expect(records(page)).to_have_count(500)
    page.locator(".pager").first.get_by_role("button", name="Newer").click()
    expect(records(page).first.locator(".off")).to_have_text("500")
    page.locator(".pager").first.get_by_role("button", name="Newer").click()
    expect(records(page).first.locator(".off")).to_have_text("1,000")
    expect(records(page)).to_have_count(200)
    expect(records(page).last.locator(".val")).to_have_text("bulk 1199")


@step("message browser: seek by time")
def check_time(page, stamps):
    goto(page, "#/topics/orders/messages?p=0&offset=0&dir=fwd&n=20")
    expect(records(page).first.locator(".off")).to_have_text("0")
    page.select_option("select[name=mode]", "time")
    # The whole second batch B was appended in, in the browser's zone.
    local = page.evaluate("async t => (await import('/console/format.js')).toLocalInput(t)", stamps["b"])
    page.fill("input[name=time]", local)
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".off")).to_have_text("60")
    expect(records(page).first.locator(".val")).to_have_text("paid 60")
    assert "ts=" in page.evaluate("location.hash")
    # Backward from the same time: the records before it, newest first.
    page.select_option("select[name=dir]", "back")
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".off")).to_have_text("59")
    # Times show in the browser's zone with ISO 8601 on hover.
    title = records(page).first.locator("time.ts").get_attribute("title")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", title), title


@step("message browser: key, headers, JSON and binary values as hex, keyboard")
def check_record_view(page):
    goto(page, "#/topics/orders/messages?p=0&offset=5&dir=fwd&n=20")
    expect(records(page).first.locator(".off")).to_have_text("5")
    binary = page.locator("details.rec[data-offset='7']")
    expect(binary.locator(".val")).to_contain_text("binary · 20 B")
    expect(binary.locator(".val")).to_contain_text("00 01 02 03")
    # Keyboard: focus the record's summary, Enter opens it.
    binary.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(binary.locator("pre.hexdump")).to_contain_text("00000000  00 01 02 03 04 05 06 07 80 81 82")
    expect(binary.locator("table.kv")).to_contain_text("binary")
    first = page.locator("details.rec[data-offset='5']")
    first.locator("summary").click()
    expect(first.locator("pre.value").last).to_contain_text('"kind": "created"')
    expect(first.locator(".rec-body")).to_contain_text("user-5")
    shot(page, "messages-record")
    # The 2 s refresh keeps opened records open.
    page.wait_for_timeout(2500)
    expect(binary).to_have_attribute("open", "")
    expect(first).to_have_attribute("open", "")


@step("bad offset and bad filter: the API's problem next to the field")
def check_problems(page):
    goto(page, "#/topics/orders/messages?p=0&offset=0&dir=fwd&n=20")
    expect(records(page).first.locator(".off")).to_have_text("0")
    page.select_option("select[name=mode]", "offset")
    page.fill("input[name=offset]", "abc")
    page.click("form.seek button[type=submit]")
    err = field_error(page, "offset")
    expect(err.locator(".problem")).to_contain_text("invalid_offset")
    expect(err.locator(".problem")).to_contain_text('"abc"')
    page.fill("input[name=offset]", "99999")
    page.click("form.seek button[type=submit]")
    expect(err.locator(".problem")).to_contain_text("offset_out_of_range")
    expect(err).to_contain_text("holds offsets 0 to 119")
    page.fill("input[name=offset]", "0")
    page.fill("input[name=filter]", "type = ")
    page.click("form.seek button[type=submit]")
    ferr = field_error(page, "filter").locator(".problem")
    expect(ferr).to_contain_text("400")
    detail = ferr.inner_text()
    print(f"     filter problem shown: {' '.join(detail.split())[:160]}")
    assert "filter" in detail.lower(), detail
    expect(page.locator("main")).to_contain_text("Messages")  # never a blank page
    shot(page, "messages-problem")
    expect(ferr).to_contain_text("invalid_filter")
    caret = field_error(page, "filter").locator(".caret")
    expect(caret).to_be_visible()
    assert caret.text_content() == "type =\n      ^", repr(caret.text_content())
    # A good filter selects by header, forward and backward (past the records it drops).
    page.fill("input[name=filter]", "type = 'paid'")
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".val")).to_have_text("paid 60")
    expect(field_error(page, "filter").locator(".problem")).to_have_count(0)
    page.fill("input[name=offset]", "latest")
    page.fill("input[name=filter]", "type = 'created' AND key LIKE 'user-%'")
    page.select_option("select[name=dir]", "back")
    page.click("form.seek button[type=submit]")
    expect(records(page).first.locator(".off")).to_have_text("59")
    shown = offsets_shown(page)
    assert shown == [o for o in range(59, -1, -1) if o != 7][:20], shown


@step("delete a topic in the UI, with a confirmation")
def check_delete(page):
    api("POST", "/v1/topics", {"name": "scratch", "partitions": 1})
    goto(page, "#/topics")
    row = page.locator("table.grid tr", has_text="scratch")
    expect(row).to_be_visible()
    # Keyboard focus survives the 2 s refresh of the table.
    row.get_by_role("button", name="Delete topic scratch").focus()
    page.wait_for_timeout(2500)
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Delete topic scratch"
    page.keyboard.press("Enter")
    dlg = page.locator("dialog.confirm")
    expect(dlg).to_contain_text("Delete topic scratch?")
    shot(page, "topics-delete-confirm")
    dlg.get_by_role("button", name="Delete topic").click()
    expect(page.locator("table.grid tr", has_text="scratch")).to_have_count(0)
    assert api("GET", "/v1/topics/scratch", ok=False)[0] == 404


@step("groups: members, committed offsets, lag per partition; reset offsets in the UI")
def check_groups(page):
    goto(page, "#/groups")
    expect(page.locator("main .list .empty")).to_contain_text("No consumer groups yet")
    shot(page, "groups-empty")
    _, m = api("POST", "/v1/groups/billing/members", {"topics": ["orders"], "session_timeout_ms": 300_000})
    offsets = [{"topic": "orders", "partition": 0, "offset": 100}, {"topic": "orders", "partition": 1, "offset": 1000}]
    api("POST", "/v1/groups/billing/offsets", {"member_id": m["member_id"], "generation": m["generation"], "offsets": offsets})
    row = page.locator("table.grid tr", has_text="billing")
    expect(row.locator("td[data-label=Lag]")).to_have_text("220 records")
    expect(row.locator("td[data-label=Members]")).to_have_text("1")
    shot(page, "groups")
    row.get_by_role("link", name="billing").click()
    parts = page.locator("section:has(#gparts-h) table.grid tbody tr")
    expect(parts).to_have_count(3)
    expect(parts.nth(0).locator("td[data-label=Lag]")).to_have_text("20 records")
    expect(parts.nth(1).locator("td[data-label=Lag]")).to_have_text("200 records")
    expect(parts.nth(1).locator("td[data-label=Committed]")).to_have_text("1,000")
    expect(parts.nth(2).locator("td[data-label=Committed]")).to_have_text("none")
    expect(parts.nth(0).locator("td[data-label=Member]")).to_have_text(m["member_id"])
    expect(page.locator("section:has(#members-h)")).to_contain_text(m["member_id"])
    shot(page, "group")
    # Reset partition 0 to earliest, confirmed in a dialog.
    page.select_option("select[name=reset-topic]", "orders")
    page.select_option("select[name=reset-partition]", "0")
    page.select_option("select[name=reset-to]", "earliest")
    page.get_by_role("button", name="Reset offsets…").click()
    dlg = page.locator("dialog.confirm")
    expect(dlg).to_contain_text("Partition 0 of orders goes to offset earliest")
    dlg.get_by_role("button", name="Reset offsets").click()
    expect(page.locator("form:has(select[name=reset-to]) .form-result")).to_contain_text("Reset")
    expect(parts.nth(0).locator("td[data-label=Lag]")).to_have_text("120 records")
    _, g = api("GET", "/v1/groups/billing")
    assert [p["committed_offset"] for p in g["partitions"]][:2] == [0, 1000], g["partitions"]
    # A bad offset: the API's problem by the field.
    page.select_option("select[name=reset-to]", "offset")
    page.fill("input[name=reset-offset]", "-5")
    page.get_by_role("button", name="Reset offsets…").click()
    page.locator("dialog.confirm").get_by_role("button", name="Reset offsets").click()
    expect(page.locator(".field:has([name=reset-offset]) .problem")).to_contain_text("400")


@step("queues: backlog, dead letters with reason and source offset, redrive with dry run + confirmation")
def check_queues(page):
    goto(page, "#/queues")
    expect(page.locator("main .list .empty")).to_contain_text("No queues yet")
    api("POST", "/v1/topics", {"name": "jobs", "partitions": 1})
    produce("jobs", [{"key": f"job-{i}", "value": f"job {i}", "headers": {"kind": "resize"}} for i in range(3)])
    api("PUT", "/v1/queues/work", {"topic": "jobs", "max_deliveries": 1, "visibility_timeout_ms": 60_000})
    _, got = api("POST", "/v1/queues/work/receive", {"max": 10})
    msgs = sorted(got["messages"], key=lambda x: x["offset"])
    assert [x["offset"] for x in msgs] == [0, 1, 2], got
    api("POST", "/v1/queues/work/nack", {"receipts": [msgs[0]["receipt"], msgs[2]["receipt"]], "reason": "bad input"})
    api("POST", "/v1/queues/work/ack", {"receipts": [msgs[1]["receipt"]]})
    row = page.locator("table.grid tr", has_text="work")
    expect(row.locator("td[data-label=Dead-lettered]")).to_have_text("2")
    expect(row.locator("td[data-label=Acked]")).to_have_text("1")
    shot(page, "queues")
    row.get_by_role("link", name="work").click()
    dead = page.locator("section:has(#dlq-h) table.grid tbody tr")
    expect(dead).to_have_count(2)
    expect(dead.nth(0).locator("td[data-label=Reason]")).to_have_text("bad input")
    sources = sorted(dead.locator("td[data-label=Source]").all_inner_texts())
    assert sources == ["jobs/0 @ 0", "jobs/0 @ 2"], sources
    expect(dead.nth(0).locator("td[data-label=Deliveries]")).to_have_text("1")
    expect(dead.nth(0).locator("td[data-label=Now]")).to_have_text("dead-lettered")
    expect(page.locator(".cards")).to_contain_text("Dead-lettered")
    shot(page, "queue")
    # Dry run: counts, changes nothing; with a filter over the dead letters' headers and key.
    page.fill("input[name=redrive-filter]", "key = 'job-0' AND \"sluice.reason\" = 'bad input'")
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("form[aria-label='Redrive dead letters'] .form-result")
    expect(result).to_contain_text("Dry run: 1 dead-lettered record would be redriven")
    page.fill("input[name=redrive-filter]", "key = ")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".field:has([name=redrive-filter]) .problem")).to_contain_text("invalid_filter")
    page.fill("input[name=redrive-filter]", "")
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("form[aria-label='Redrive dead letters'] .form-result")
    expect(result).to_contain_text("Dry run: 2 dead-lettered records would be redriven")
    assert api("GET", "/v1/queues/work")[1]["dead_lettered"] == 2
    # Redrive, cancelled first, then confirmed.
    page.get_by_role("button", name="Redrive…").click()
    dlg = page.locator("dialog.confirm")
    expect(dlg).to_contain_text("Redrive 2 records?")
    dlg.get_by_role("button", name="Cancel").click()
    expect(result).to_contain_text("Cancelled")
    assert api("GET", "/v1/queues/work")[1]["dead_lettered"] == 2
    page.get_by_role("button", name="Redrive…").click()
    shot(page, "queue-redrive-confirm")
    page.locator("dialog.confirm").get_by_role("button", name="Redrive 2").click()
    expect(result).to_contain_text("Redriven: 2 records ready again")
    _, q = api("GET", "/v1/queues/work")
    assert (q["dead_lettered"], q["ready"]) == (0, 2), q
    expect(page.locator(".cards .card", has_text="Ready").first).to_contain_text("2")
    expect(dead.nth(0).locator("td[data-label=Now]")).to_have_text("ready (redriven)")
    # One record's delivery history.
    form = page.locator("form[aria-label='Delivery history']")
    form.locator("input").nth(1).fill("0")
    form.get_by_role("button", name="Look up").click()
    expect(form).to_contain_text("dead_lettered")
    expect(form).to_contain_text("redriven")


def txn_rows(page):
    return page.locator("section[aria-label='Transactions in progress'] table.grid tbody tr")


@step("transactions: in progress live with staged counts; roll back and commit in the UI with a confirmation; look up by id")
def check_transactions(page):
    api("POST", "/v1/topics", {"name": "ledger", "partitions": 1})
    goto(page, "#/transactions")
    expect(page.locator("main h1")).to_have_text("Transactions")
    expect(page.locator("main .empty")).to_contain_text("No transactions in progress")
    shot(page, "transactions-empty")
    # Two begun and staged through the API; the page shows them without a reload.
    page.evaluate("window.__noReload = 1")
    ids = []
    for n in (2, 1):
        _, t = api("POST", "/v1/transactions", {"timeout_ms": 600000})
        ids.append(t["transaction_id"])
        api("POST", f"/v1/topics/ledger/records?transaction={ids[-1]}", {"records": [{"value": f"v{i}"} for i in range(n)]})
        time.sleep(0.01)  # ids are ULIDs: the list is oldest first
    rows = txn_rows(page)
    expect(rows).to_have_count(2)
    assert page.evaluate("window.__noReload") == 1, "the page was reloaded"
    assert rows.locator("td[data-label=Transaction]").all_inner_texts() == ids
    assert rows.locator("td[data-label=Staged]").all_inner_texts() == ["2", "1"]
    expect(rows.nth(0).locator("td[data-label=State]")).to_have_text("open")
    expect(rows.nth(0).locator("td[data-label=Expires]")).to_contain_text(re.compile(r"in (9|10) min"))
    expect(page.locator("main table.grid caption")).to_contain_text("2 transactions in progress")
    shot(page, "transactions")
    # Roll back the second: the dialog's Cancel keeps it open, its confirm rolls it back.
    result = page.locator("main .form-result")
    rollback = rows.nth(1).get_by_role("button", name=f"Roll back transaction {ids[1]}")
    rollback.click()
    dlg = page.locator("dialog.confirm")
    expect(dlg).to_contain_text("Roll back this transaction?")
    expect(dlg).to_contain_text("1 staged record")
    dlg.get_by_role("button", name="Cancel", exact=True).click()
    expect(result).to_contain_text("Kept open")
    expect(rows).to_have_count(2)
    rollback.click()
    page.locator("dialog.confirm").get_by_role("button", name="Roll back", exact=True).click()
    expect(result).to_contain_text(f"Rolled back {ids[1]}")
    expect(rows).to_have_count(1)
    # Commit the first: both its records become readable.
    rows.nth(0).get_by_role("button", name=f"Commit transaction {ids[0]}").click()
    shot(page, "transactions-commit-confirm")
    page.locator("dialog.confirm").get_by_role("button", name="Commit", exact=True).click()
    expect(result).to_contain_text(f"Committed {ids[0]}: 2 records readable")
    expect(page.locator("main .empty")).to_contain_text("No transactions in progress")
    _, read = api("GET", "/v1/topics/ledger/partitions/0/records?offset=0")
    assert [r["value"] for r in read["records"]] == ["v0", "v1"], read
    # Look up by id: the committed one, the rolled-back one, then an unknown id's problem.
    lookup = page.locator("section[aria-label='Look up a transaction']")
    for tid, state in ((ids[0], "committed (client)"), (ids[1], "rolled back (client)")):
        page.fill("input[name=transaction-id]", tid)
        lookup.get_by_role("button", name="Look up").click()
        expect(lookup.locator("td[data-label=Transaction]")).to_have_text(tid)
        expect(lookup.locator("td[data-label=State]")).to_have_text(state)
    page.fill("input[name=transaction-id]", "01JDC0000000000000000000AA")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.locator(".problem")).to_contain_text("transaction_not_found")


@step("health: liveness, readiness, metrics")
def check_health(page):
    goto(page, "#/health")
    expect(page.locator(".cards").first).to_contain_text("up")
    expect(page.locator(".cards").first).to_contain_text("ready")
    expect(page.locator("main")).to_contain_text("Records produced")
    expect(page.locator("section:has(#all-h) table")).to_contain_text("sluice_produced_records_total")
    page.fill("input[type=search]", "sluice_flush")
    expect(page.locator("section:has(#all-h) table")).not_to_contain_text("sluice_produced_records_total")
    expect(page.locator("main")).to_contain_text("rec/s")
    shot(page, "health")


@step("unknown page: says so, links back")
def check_unknown(page):
    goto(page, "#/nowhere")
    expect(page.locator("main h1")).to_have_text("Not found")


@step("auth: the console asks for a token on 401 and sends it as Bearer")
def check_auth(browser_ctx):
    page = browser_ctx.new_page()
    watch = Watch(page, AUTH_BASE)
    page.set_viewport_size(WIDE)
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/v1/topics" in r.url else None)
    api("POST", "/v1/topics", {"name": "secured", "partitions": 2}, base=AUTH_BASE, token=AUTH_TOKEN)
    page.goto(AUTH_BASE + "/#/topics")
    dlg = page.locator("#token-dialog")
    expect(dlg).to_be_visible()
    shot(page, "auth-token")
    # Cancelled: the page says why it shows nothing, and stops asking until "Token" is clicked.
    dlg.get_by_role("button", name="Cancel").click()
    expect(page.locator("main .problem")).to_contain_text("401")
    page.wait_for_timeout(2500)
    expect(dlg).to_be_hidden()
    page.click("#token-btn")
    expect(dlg).to_be_visible()
    page.fill("#token-input", "wrong-token")
    page.keyboard.press("Enter")
    expect(dlg).to_be_visible()  # a wrong token is asked again
    expect(page.locator("#token-reason")).to_contain_text("not valid")
    page.fill("#token-input", AUTH_TOKEN)
    dlg.get_by_role("button", name="Use token").click()
    expect(page.locator("table.grid")).to_contain_text("secured")
    assert f"Bearer {AUTH_TOKEN}" in sent, sent
    expect(page.locator("#token-btn")).to_be_visible()
    page.close()
    return watch


def main():
    os.makedirs(OUT, exist_ok=True)
    stamps = {}
    watches = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            PROFILE,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            locale="en-US",
            viewport=WIDE,
        )
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        watches.append(Watch(page, BASE))
        page.goto(BASE + "/")
        expect(page.locator("#live")).to_contain_text("Live")
        failed = False
        checks = [
            lambda: check_format(page),
            lambda: check_create(page),
            lambda: check_live(page, stamps),
            lambda: check_topic(page),
            lambda: check_delayed(page),
            lambda: check_browser(page),
            lambda: check_time(page, stamps),
            lambda: check_record_view(page),
            lambda: check_problems(page),
            lambda: check_delete(page),
            lambda: check_groups(page),
            lambda: check_queues(page),
            lambda: check_transactions(page),
            lambda: check_health(page),
            lambda: check_unknown(page),
            lambda: watches.append(check_auth(ctx)),
        ]
        for c in checks:
            try:
                c()
            except Exception:
                failed = True
                page.screenshot(path=os.path.join(OUT, "failure.png"), full_page=True)
                break
        ctx.close()
    errors = [e for w in watches for e in w.errors]
    RESULTS.append(("no JavaScript errors or failed loads on any page", not errors))
    for e in errors:
        print(f"  {e}")
    passed = sum(1 for _, ok in RESULTS if ok)
    failed_n = len(RESULTS) - passed
    print(f"screenshots: {OUT}")
    print(f"{passed} passed, {failed_n} failed")
    sys.exit(1 if failed or failed_n else 0)


if __name__ == "__main__":
    main()

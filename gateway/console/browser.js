// The message browser of one topic partition: seek by offset or time, an optional filter,
// forward (oldest first) or backward (newest first), and paging either way with no cap on how
// far. Every read is a plain `GET …/partitions/{p}/records`; a bad offset, time or filter shows
// the API's problem document next to the field it concerns.

import { api, ApiError } from "./api.js";
import { empty, field, gone, h, problemBox, put, showFor } from "./dom.js";
import { b64bytes, bytes, hex, hexdump, iso, localTime, num, parseLocal, recordBytes, toLocalInput } from "./format.js";
import { headerChips } from "./topic.js";

const enc = encodeURIComponent;
const SIZES = [20, 50, 100, 200, 500, 1000];
const READ_MAX = 1000;

/** The browser's state, from and to the hash's query. */
export function stateFrom(q) {
  const n = Number(q.get("n"));
  return {
    p: Math.max(0, Number(q.get("p")) || 0),
    mode: q.has("ts") ? "time" : "offset",
    offset: q.get("offset") ?? "latest",
    ts: q.has("ts") ? Number(q.get("ts")) : null,
    filter: q.get("filter") ?? "",
    dir: q.get("dir") === "fwd" ? "fwd" : q.get("dir") === "back" ? "back" : q.has("ts") || (q.has("offset") && q.get("offset") !== "latest") ? "fwd" : "back",
    n: SIZES.includes(n) ? n : 50,
  };
}

export function queryOf(s) {
  const q = new URLSearchParams();
  q.set("p", String(s.p));
  if (s.mode === "time" && s.ts !== null) q.set("ts", String(s.ts));
  else q.set("offset", s.offset);
  if (s.filter) q.set("filter", s.filter);
  q.set("dir", s.dir);
  q.set("n", String(s.n));
  return q.toString();
}

/** All records in [from, to) that pass the filter, reading forward. */
async function readRange(topic, p, from, to, filter) {
  const out = [];
  let cur = from;
  for (let i = 0; i < 50 && cur < to; i++) {
    const r = await api.read(topic, p, { offset: cur, limit: Math.min(to - cur, READ_MAX), filter });
    for (const rec of r.records) if (rec.offset < to) out.push(rec);
    if (r.next_offset <= cur) break;
    cur = r.next_offset;
  }
  return out;
}

/**
 * The last `n` records before `end` (exclusive) passing the filter, ascending, and the offset
 * the page covers from. Reads windows backward, growing them while a filter drops records.
 */
async function loadBackward(topic, p, end, n, filter, earliest) {
  let collected = [];
  let lo = end;
  let w = filter ? Math.max(n * 4, 200) : n;
  for (let i = 0; i < 12 && collected.length < n && lo > earliest; i++) {
    const start = Math.max(earliest, lo - w);
    const recs = await readRange(topic, p, start, lo, filter);
    collected = recs.concat(collected);
    lo = start;
    if (filter) w = Math.min(w * 2, 100_000);
  }
  if (collected.length > n) {
    collected = collected.slice(-n);
    lo = collected[0].offset;
  }
  return { records: collected, lo, hi: end };
}

async function loadForward(topic, p, query, n, filter) {
  const r = await api.read(topic, p, { ...query, limit: n, filter });
  const lo = r.records.length ? r.records[0].offset : r.next_offset;
  return { records: r.records, lo, hi: r.next_offset, hwm: r.high_watermark };
}

/** A value's preview and full view: text, pretty JSON, or hex for binary. */
export function valueView(text, b64, full) {
  if (b64 !== undefined && b64 !== null) {
    const b = b64bytes(b64);
    if (full) return h("pre.hexdump", { "aria-label": `binary, ${b.length} bytes, as hex` }, hexdump(b));
    return h("span.bin", h("span.badge", `binary · ${bytes(b.length)}`), " ", h("code", hex(b, 24)));
  }
  if (text === null || text === undefined) return h("span.muted", "none");
  if (!full) return h("span.text", text.length > 160 ? text.slice(0, 160) + "…" : text);
  let shown = text;
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object") shown = JSON.stringify(v, null, 2);
  } catch {
    /* not JSON */
  }
  return h("pre.value", shown);
}

function recordView(topic, p, r) {
  const headersB64 = Object.entries(r.headers_b64 || {});
  return h(
    "details.rec",
    { dataset: { offset: String(r.offset) } },
    h(
      "summary",
      h("span.off", num(r.offset)),
      h("time.ts", { datetime: iso(r.timestamp_ms), title: iso(r.timestamp_ms) }, localTime(r.timestamp_ms)),
      h("span.key", valueView(r.key, r.key_b64, false)),
      h("span.val", valueView(r.value, r.value_b64, false)),
      h("span.hdrs", headerChips(r.headers)),
    ),
    h(
      "div.rec-body",
      h(
        "dl",
        h("dt", "Offset"),
        h("dd", `${num(r.offset)} (partition ${p})`),
        h("dt", "Appended"),
        h("dd", h("time", { datetime: iso(r.timestamp_ms), title: iso(r.timestamp_ms) }, `${localTime(r.timestamp_ms)} · ${iso(r.timestamp_ms)}`)),
        r.producer_timestamp_ms != null ? [h("dt", "Producer time"), h("dd", h("time", { datetime: iso(r.producer_timestamp_ms), title: iso(r.producer_timestamp_ms) }, localTime(r.producer_timestamp_ms)))] : null,
        h("dt", "Size"),
        h("dd", bytes(recordBytes(r))),
        h("dt", "Key"),
        h("dd", valueView(r.key, r.key_b64, true)),
        h("dt", "Headers"),
        h("dd", Object.keys(r.headers || {}).length || headersB64.length ? headerTable(r.headers, headersB64) : h("span.muted", "none")),
        h("dt", "Value"),
        h("dd", valueView(r.value, r.value_b64, true)),
      ),
      h("a.permalink", { href: `#/topics/${enc(topic)}/messages?p=${p}&offset=${r.offset}&dir=fwd` }, "Link to this record"),
    ),
  );
}

function headerTable(headers, b64) {
  return h(
    "table.kv",
    h(
      "tbody",
      Object.entries(headers || {}).map(([k, v]) => h("tr", h("th", { scope: "row" }, k), h("td", v))),
      b64.map(([k, v]) => h("tr", h("th", { scope: "row" }, k), h("td", valueView(null, v, false)))),
    ),
  );
}

export function mount(root, ctx) {
  const topic = ctx.name;
  ctx.title(`${topic} · messages`);
  let s = stateFrom(ctx.query);
  let page = null;
  let info = null;
  let loading = false;

  const partSel = h("select", { name: "partition" }, h("option", { value: String(s.p) }, String(s.p)));
  const modeSel = h("select", { name: "mode" }, h("option", { value: "offset" }, "Offset"), h("option", { value: "time" }, "Time"));
  const offsetIn = h("input", { name: "offset", autocomplete: "off", spellcheck: "false", placeholder: "earliest, latest or a number", value: s.offset });
  const timeIn = h("input", { name: "time", type: "datetime-local", step: "1" });
  const filterIn = h("input", { name: "filter", autocomplete: "off", spellcheck: "false", placeholder: "type = 'created' AND key LIKE 'user-%'", value: s.filter });
  const dirSel = h("select", { name: "dir" }, h("option", { value: "back" }, "Backward (newest first)"), h("option", { value: "fwd" }, "Forward (oldest first)"));
  const sizeSel = h("select", { name: "n" }, SIZES.map((n) => h("option", { value: String(n) }, `${n} per page`)));
  modeSel.value = s.mode;
  dirSel.value = s.dir;
  sizeSel.value = String(s.n);
  timeIn.value = toLocalInput(s.ts ?? Date.now() - 3_600_000);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const fPart = field("Partition", partSel);
  const fMode = field("Seek by", modeSel);
  const fOffset = field("Offset", offsetIn);
  const fTime = field("Time", timeIn, `In your time zone (${zone})`);
  const fFilter = field("Filter", filterIn, "Headers and key, SQL-like; empty shows every record");
  const fDir = field("Direction", dirSel);
  const fSize = field("Page size", sizeSel);
  const general = h("div.form-result", { "aria-live": "polite" });
  const seekBtn = h("button.primary", { type: "submit" }, "Seek");
  showFor(modeSel, { offset: fOffset, time: fTime });
  const form = h(
    "form.card.seek",
    { novalidate: true, "aria-label": "Seek" },
    h("div.row", fPart, fMode, fOffset, fTime, fDir, fSize),
    h("div.row", fFilter, h("div.field.submit", seekBtn)),
    general,
  );
  const olderBtn = h("button", { type: "button" }, "◀ Older");
  const newerBtn = h("button", { type: "button" }, "Newer ▶");
  const range = h("span.range", { role: "status" });
  const pager = () => h("div.pager", olderBtn, range, newerBtn);
  const pagerTop = pager();
  const list = h("div.records", { "aria-live": "polite", "aria-busy": "false" });
  const pagerBottom = h("div.pager");
  put(
    root,
    h(
      "div.head",
      h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/topics" }, "Topics"), " / ", h("a", { href: `#/topics/${enc(topic)}` }, topic), " / "),
      h("h1", "Messages"),
    ),
    form,
    pagerTop,
    list,
    pagerBottom,
  );

  function clearErrors() {
    for (const f of [fOffset, fTime, fFilter, fPart]) put(f.error);
    put(general);
  }

  function showProblem(e) {
    const code = e.code;
    const d = (e.problem?.detail || "").toLowerCase();
    let target = general;
    if (code === "invalid_filter" || d.includes("filter")) target = fFilter.error;
    else if (code === "invalid_offset" || code === "offset_out_of_range") target = s.mode === "time" ? fTime.error : fOffset.error;
    else if (d.includes("timestamp")) target = fTime.error;
    else if (code === "partition_not_found") target = fPart.error;
    put(target, problemBox(e));
    if (target === fFilter.error && Number.isInteger(e.problem?.position)) {
      // Point at the byte where parsing failed (the filter is ASCII in the common case).
      target.append(h("pre.caret", { "aria-label": `position ${e.problem.position}` }, `${s.filter}\n${" ".repeat(e.problem.position)}^`));
    }
    if (code === "offset_out_of_range" && e.problem.earliest_offset !== undefined) {
      target.append(h("p.hint", `This partition holds offsets ${num(e.problem.earliest_offset)} to ${num(e.problem.next_offset - 1)}.`));
    }
  }

  function readForm() {
    const next = {
      p: Number(partSel.value) || 0,
      mode: modeSel.value,
      offset: offsetIn.value.trim() || "latest",
      ts: modeSel.value === "time" ? parseLocal(timeIn.value) : null,
      filter: filterIn.value.trim(),
      dir: dirSel.value,
      n: Number(sizeSel.value),
    };
    return next;
  }

  async function partitionInfo() {
    const d = await api.topic(topic);
    const p = d.partition_info.find((x) => x.partition === s.p);
    if (partSel.options.length !== d.partitions) {
      put(partSel, d.partition_info.map((x) => h("option", { value: String(x.partition) }, `${x.partition}  (${num(x.next_offset - x.earliest_offset)} records)`)));
      partSel.value = String(s.p);
    }
    info = { earliest: p ? p.earliest_offset : 0, next: p ? p.next_offset : 0, exists: !!p, partitions: d.partitions };
    return info;
  }

  /** Run the seek `s` describes. */
  async function seek() {
    const { earliest, next, exists } = await partitionInfo();
    if (!exists) {
      put(fPart.error, problemBox(new ApiError({ title: "No such partition", detail: `The topic has ${info.partitions} partitions (0 to ${info.partitions - 1}).`, code: "partition_not_found" }, 404)));
      page = null;
      return;
    }
    const f = s.filter || undefined;
    if (s.mode === "time") {
      if (s.ts === null) {
        put(fTime.error, problemBox(new ApiError({ title: "Give a date and time.", code: "invalid_time" }, 0)));
        return;
      }
      if (s.dir === "fwd") page = await loadForward(topic, s.p, { timestamp_ms: s.ts }, s.n, f);
      else {
        // Validate the filter and time through the API first: its problem shows by the field.
        await api.read(topic, s.p, { timestamp_ms: s.ts, limit: 1, filter: f });
        const { offset } = await api.offsetAt(topic, s.p, s.ts);
        page = await loadBackward(topic, s.p, offset, s.n, f, earliest);
      }
    } else if (s.dir === "fwd") {
      page = await loadForward(topic, s.p, { offset: s.offset }, s.n, f);
    } else {
      // The API validates the offset (and filter); then read backward from it.
      const probe = await api.read(topic, s.p, { offset: s.offset, limit: 1, filter: f });
      const at = s.offset === "latest" ? next : s.offset === "earliest" ? Math.min(next, earliest + s.n) : Math.min(next, Number(s.offset) + 1);
      page = await loadBackward(topic, s.p, Number.isFinite(at) ? at : probe.next_offset, s.n, f, earliest);
    }
    page.live = s.mode === "offset" && s.offset === "latest" && s.dir === "back";
    page.head = page.hi >= next;
  }

  async function run(action) {
    if (loading) return;
    loading = true;
    list.setAttribute("aria-busy", "true");
    seekBtn.disabled = true;
    clearErrors();
    try {
      await action();
      draw();
    } catch (e) {
      showProblem(e);
      if (!page) {
        put(pagerTop);
        put(pagerBottom);
        put(list, empty("Nothing to show for this seek.", "Fix the field marked above and seek again."));
      }
    } finally {
      loading = false;
      seekBtn.disabled = false;
      list.setAttribute("aria-busy", "false");
    }
  }

  function draw() {
    if (!page) return;
    const shown = s.dir === "back" ? [...page.records].reverse() : page.records;
    if (!shown.length) {
      put(
        list,
        empty(
          s.filter ? "No record in this range passes the filter." : "No records here.",
          page.head
            ? "This is the end of the partition: new records appear here as they are produced (the view updates every 2 s)."
            : "Page on, or seek to another offset or time.",
          `Partition ${s.p} holds offsets ${num(info.earliest)} to ${num(Math.max(info.earliest, info.next) - 1)} (${num(info.next - info.earliest)} records).`,
        ),
      );
    } else {
      // Records the person opened stay open when the page is drawn again.
      const same = list.dataset.p === String(s.p);
      const open = new Set(same ? [...list.querySelectorAll("details.rec[open]")].map((d) => d.dataset.offset) : []);
      list.dataset.p = String(s.p);
      put(list, h("div.rec-head", { "aria-hidden": "true" }, h("span", "Offset"), h("span", "Appended"), h("span", "Key"), h("span", "Value"), h("span", "Headers")), shown.map((r) => {
          const v = recordView(topic, s.p, r);
          v.open = open.has(String(r.offset));
          return v;
        }),
      );
    }
    drawPager(shown);
  }

  /** The range line and the paging buttons (also redrawn on a refresh that changed nothing). */
  function drawPager(shown = s.dir === "back" ? [...page.records].reverse() : page.records) {
    const newAvailable = info.next > page.hi ? info.next - page.hi : 0;
    range.textContent = `${shown.length ? `Offsets ${num(page.records[0].offset)}–${num(page.records[page.records.length - 1].offset)}` : "No records"} · partition ${s.p} holds ${num(info.earliest)}–${num(Math.max(info.earliest, info.next - 1))}${newAvailable ? ` · ${num(newAvailable)} newer` : ""}`;
    olderBtn.disabled = page.lo <= info.earliest;
    newerBtn.disabled = page.hi >= info.next;
    // In backward mode "older" is further down the list, so the buttons swap sides.
    const [first, last] = s.dir === "back" ? [newerBtn, olderBtn] : [olderBtn, newerBtn];
    first.textContent = s.dir === "back" ? "◀ Newer" : "◀ Older";
    last.textContent = s.dir === "back" ? "Older ▶" : "Newer ▶";
    put(pagerTop, first, range, last);
    const b1 = h("button", { type: "button", disabled: first.disabled, on: { click: () => first.click() } }, first.textContent);
    const b2 = h("button", { type: "button", disabled: last.disabled, on: { click: () => last.click() } }, last.textContent);
    put(pagerBottom, shown.length > 10 ? [b1, h("span.range", range.textContent), b2] : null);
  }

  function sync() {
    ctx.replaceQuery(`#/topics/${enc(topic)}/messages?${queryOf(s)}`);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    s = readForm();
    sync();
    page = null;
    run(seek);
  });
  olderBtn.addEventListener("click", () =>
    run(async () => {
      await partitionInfo();
      page = await loadBackward(topic, s.p, page.lo, s.n, s.filter || undefined, info.earliest);
      page.head = false;
    }),
  );
  newerBtn.addEventListener("click", () =>
    run(async () => {
      await partitionInfo();
      page = await loadForward(topic, s.p, { offset: page.hi }, s.n, s.filter || undefined);
      page.head = page.hi >= info.next;
    }),
  );

  let first = true;
  return {
    async refresh() {
      if (loading) return;
      if (first) {
        first = false;
        let found = true;
        try {
          await partitionInfo();
        } catch (e) {
          if (e.code !== "topic_not_found") throw e;
          found = false;
        }
        if (!found) {
          gone(root, topic, "topic", "#/topics");
          return;
        }
        return run(seek);
      }
      if (!page) return;
      await partitionInfo();
      // Live: at the head, keep showing what arrives without a reload.
      if (page.live && info.next > page.hi) return run(seek);
      if (page.head && s.dir === "fwd" && page.records.length < s.n && info.next > page.hi) {
        return run(async () => {
          page = await loadForward(topic, s.p, { offset: page.lo }, s.n, s.filter || undefined);
          page.head = page.hi >= info.next;
        });
      }
      drawPager();
    },
    showError: showProblem,
    clearError: () => {},
  };
}

// Topics: the list with offsets and throughput, create and delete.
//
// Records/s and bytes/s are computed here, in the browser, over the last minute of polling:
// records/s from the growth of the partitions' next offsets; bytes/s from that growth times the
// mean size of the newest records (read back as a sample of up to 20 per partition that grew),
// so bytes/s is an estimate when more than 20 records arrive between two polls.

import { api, ApiError } from "./api.js";
import { confirmDialog, empty, field, h, problemBox, put, snippet, table } from "./dom.js";
import { Window, ago, bytes, iso, localTime, num, rate, recordBytes, retention } from "./format.js";

const SAMPLE = 20;
const MAX_SAMPLE_READS = 8;

/** Per topic incarnation: sliding windows of its record count and (estimated) bytes. */
const trackers = new Map();

function trackerOf(detail) {
  const key = `${detail.name}/${detail.id}`;
  let t = trackers.get(key);
  if (!t) {
    t = { records: new Window(), bytes: new Window(), bytesTotal: 0, avg: null, last: new Map(), parts: new Map() };
    trackers.set(key, t);
  }
  return t;
}

/** Feed one poll of a topic's detail into its rate windows. */
export async function track(detail, now = Date.now(), budget = { reads: MAX_SAMPLE_READS }) {
  const t = trackerOf(detail);
  let total = 0;
  for (const p of detail.partition_info) {
    total += p.next_offset;
    const before = t.last.get(p.partition);
    t.last.set(p.partition, p.next_offset);
    let w = t.parts.get(p.partition);
    if (!w) t.parts.set(p.partition, (w = new Window()));
    w.push(now, p.next_offset);
    if (before === undefined || p.next_offset <= before) continue;
    const grew = p.next_offset - before;
    if (budget.reads > 0) {
      budget.reads -= 1;
      const k = Math.min(grew, SAMPLE);
      try {
        const r = await api.read(detail.name, p.partition, { offset: p.next_offset - k, limit: k });
        if (r.records.length) {
          const sum = r.records.reduce((s, rec) => s + recordBytes(rec), 0);
          t.avg = sum / r.records.length;
        }
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
      }
    }
    if (t.avg !== null) t.bytesTotal += t.avg * grew;
  }
  t.records.push(now, total);
  t.bytes.push(now, t.bytesTotal);
  return t;
}

export function ratesOf(detail) {
  const t = trackers.get(`${detail.name}/${detail.id}`);
  return {
    records: t ? t.records.perSecond() : null,
    bytes: t ? t.bytes.perSecond() : null,
    span: t ? t.records.span() : 0,
    partition: (p) => t?.parts.get(p)?.perSecond() ?? null,
  };
}

/** Run `fn` over `items` with at most `n` at once. */
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const j = i++;
      out[j] = await fn(items[j], j);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export function timeCell(ms) {
  if (ms === null || ms === undefined) return "—";
  return h("time", { datetime: iso(ms), title: iso(ms) }, ago(ms));
}

export function absTime(ms) {
  if (ms === null || ms === undefined) return "—";
  return h("time", { datetime: iso(ms), title: iso(ms) }, localTime(ms));
}

const UNITS = [
  ["minutes", 60_000],
  ["hours", 3_600_000],
  ["days", 86_400_000],
];

/** A retention input: amount + unit; empty amount = keep forever. */
export function retentionInput(initialMs) {
  const amount = h("input", { type: "number", min: "1", step: "any", placeholder: "forever", inputmode: "decimal", "aria-label": "Retention amount" });
  const unit = h("select", { "aria-label": "Retention unit" }, UNITS.map(([u]) => h("option", { value: u }, u)));
  unit.value = "days";
  if (initialMs) {
    const [u, size] = [...UNITS].reverse().find(([, s]) => initialMs % s === 0) || UNITS[0];
    unit.value = u;
    amount.value = String(initialMs / size);
  }
  const wrap = h("div.inline", amount, unit);
  wrap.valueMs = () => {
    if (amount.value.trim() === "") return null;
    const size = UNITS.find(([u]) => u === unit.value)[1];
    return Math.round(Number(amount.value) * size);
  };
  wrap.amount = amount;
  return wrap;
}

function createForm(onCreated) {
  const name = h("input", { name: "name", required: true, maxlength: "249", autocomplete: "off", spellcheck: "false", placeholder: "orders" });
  const partitions = h("input", { name: "partitions", type: "number", min: "1", max: "10000", value: "3", required: true });
  const ret = retentionInput(null);
  const nameF = field("Name", name, "Letters, digits, . _ -");
  const partF = field("Partitions", partitions);
  const retF = field("Retention", ret, "Empty keeps records forever");
  retF.querySelector("label").htmlFor = ret.amount.id = "create-retention";
  const result = h("div.form-result", { "aria-live": "polite" });
  const submit = h("button.primary", { type: "submit" }, "Create topic");
  const form = h(
    "form.card.create",
    { "aria-label": "Create a topic", novalidate: true },
    h("h2", "Create a topic"),
    h("div.row", nameF, partF, retF, h("div.field.submit", submit)),
    result,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(result);
    for (const f of [nameF, partF, retF]) put(f.error);
    submit.disabled = true;
    try {
      const body = { name: name.value.trim(), partitions: Number(partitions.value) };
      const r = ret.valueMs();
      if (r !== null) body.retention_ms = r;
      const t = await api.createTopic(body);
      put(result, h("p.ok", "Created ", h("a", { href: `#/topics/${encodeURIComponent(t.name)}` }, t.name), ` with ${num(t.partitions)} partitions.`));
      name.value = "";
      onCreated();
    } catch (e) {
      const d = (e.problem?.detail || "").toLowerCase();
      const target = e.code === "topic_exists" || d.includes("name") ? nameF : d.includes("partition") ? partF : d.includes("retention") ? retF : null;
      put(target ? target.error : result, problemBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function deleteTopic(name, after) {
  const ok = await confirmDialog({
    title: `Delete topic ${name}?`,
    body: [h("p", "Its records become unreadable at once and are removed from the bucket later. This cannot be undone.")],
    confirm: "Delete topic",
    danger: true,
  });
  if (!ok) return false;
  await api.deleteTopic(name);
  after?.();
  return true;
}

export function mount(root, ctx) {
  ctx.title("Topics");
  const list = h("div.list", h("p.loading", "Loading topics…"));
  const count = h("span.count");
  const refreshNow = () => ctx.refresh();
  const form = createForm(() => refreshNow());
  put(
    root,
    h("div.head", h("h1", "Topics ", count), h("p.sub", "Records/s and bytes/s: computed in this browser over the last minute from polling (bytes/s estimated from a sample of the newest records).")),
    form,
    list,
  );
  return {
    async refresh() {
      const { topics } = await api.topics();
      const details = await pool(topics, 6, async (t) => {
        try {
          return await api.topic(t.name);
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) return null; // deleted meanwhile
          throw e;
        }
      });
      const live = details.filter(Boolean);
      const budget = { reads: MAX_SAMPLE_READS };
      const now = Date.now();
      for (const d of live) await track(d, now, budget);
      count.textContent = `(${num(live.length)})`;
      if (!live.length) {
        put(
          list,
          empty(
            "No topics yet.",
            "Create one with the form above, or through the API:",
            snippet(`curl -X POST ${location.origin}/v1/topics -H 'content-type: application/json' -d '{"name":"orders","partitions":3}'`),
          ),
        );
        return;
      }
      const cols = [
        { label: "Topic", cell: (d) => h("a.strong", { href: `#/topics/${encodeURIComponent(d.name)}` }, d.name) },
        { label: "Partitions", num: true, cell: (d) => num(d.partitions) },
        { label: "Records", num: true, cell: (d) => num(d.partition_info.reduce((s, p) => s + (p.next_offset - p.earliest_offset), 0)) },
        {
          label: "Offsets (earliest → next)",
          num: true,
          cell: (d) => `${num(d.partition_info.reduce((s, p) => s + p.earliest_offset, 0))} → ${num(d.partition_info.reduce((s, p) => s + p.next_offset, 0))}`,
        },
        { label: "Records/s", num: true, cell: (d) => rateCell(ratesOf(d).records, "rec/s", ratesOf(d).span) },
        { label: "Bytes/s", num: true, cell: (d) => rateCell(ratesOf(d).bytes, null, ratesOf(d).span) },
        { label: "Retention", cell: (d) => retention(d.retention_ms) },
        { label: "Last append", cell: (d) => timeCell(lastAppend(d)) },
        {
          label: "Actions",
          cell: (d) =>
            h(
              "div.actions-cell",
              h("a.button", { href: `#/topics/${encodeURIComponent(d.name)}/messages` }, "Browse"),
              h(
                "button.danger.small",
                {
                  type: "button",
                  "aria-label": `Delete topic ${d.name}`,
                  on: {
                    click: async () => {
                      try {
                        await deleteTopic(d.name, () => refreshNow());
                      } catch (e) {
                        showError(e);
                      }
                    },
                  },
                },
                "Delete",
              ),
            ),
        },
      ];
      put(list, table(cols, live, { caption: "Topics, refreshed every 2 s" }));
    },
  };
  function showError(e) {
    list.prepend(problemBox(e));
  }
}

/** The newest append time over a topic's partitions, or null when it holds nothing. */
export function lastAppend(d) {
  const times = d.partition_info.map((p) => p.last_append_ms).filter((t) => t !== null && t !== undefined);
  return times.length ? Math.max(...times) : null;
}

/** A rate with its unit; "—" with an explanation until two polls exist. */
export function rateCell(v, unit, span) {
  if (v === null) return h("span.muted", { title: "Needs two polls (2 s) to compute" }, "—");
  const text = unit ? `${rate(v)} ${unit}` : `${bytes(v)}/s`;
  return h("span", { title: `over the last ${Math.round(span / 1000)} s` }, text);
}

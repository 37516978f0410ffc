// Queues: backlog per queue (ready, in flight, delayed, dead-lettered, oldest ready age); one
// queue's config, its dead letters (read from the dead-letter topic, with the `sluice.*` headers
// the gateway adds: reason, source topic/partition/offset, deliveries), redrive with a dry run
// and a confirmation, and one record's delivery history.

import { api, ApiError } from "./api.js";
import { card, confirmDialog, empty, field, gone, h, problemBox, put, snippet, table, unavailable } from "./dom.js";
import { count, duration, iso, localTime, num } from "./format.js";
import { valueView } from "./browser.js";
import { pool } from "./topics.js";

const enc = encodeURIComponent;
const DLQ_SHOWN = 50;

/** The list answer's items as queue names (objects or plain names). */
export function queueNames(res) {
  const items = Array.isArray(res) ? res : res.queues || [];
  return items.map((q) => (typeof q === "string" ? q : q.queue || q.name)).filter(Boolean);
}

/** Age of the oldest ready record; "—" when none is ready (the API says 0 then). */
function oldest(q) {
  if (!q.ready || q.oldest_ready_age_ms == null) return h("span.muted", "—");
  return duration(q.oldest_ready_age_ms);
}

function countCell(v, cls) {
  if (v === null || v === undefined) return "—";
  return h("span", { class: v > 0 ? cls || "" : "muted" }, num(v));
}

export function mount(root, ctx) {
  ctx.title("Queues");
  const list = h("div.list", h("p.loading", "Loading queues…"));
  put(root, h("div.head", h("h1", "Queues"), h("p.sub", "Records leased one by one, acked on their own; failures end in a dead-letter topic.")), list);
  return {
    async refresh() {
      let res;
      try {
        res = await api.queues();
      } catch (e) {
        if (e.missingRoute) return put(list, unavailable("Queues", "GET /v1/queues"));
        throw e;
      }
      const names = queueNames(res);
      if (!names.length) {
        return put(
          list,
          empty(
            "No queues yet.",
            "Create one on a topic; its dead-letter topic is created with it:",
            snippet(`curl -X PUT ${location.origin}/v1/queues/jobs -H 'content-type: application/json' -d '{"topic":"orders","max_deliveries":5}'`),
          ),
        );
      }
      const qs = await pool(names, 6, async (n) => {
        try {
          return { queue: n, ...(await api.queue(n)) };
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) return null;
          throw e;
        }
      });
      put(
        list,
        table(
          [
            { label: "Queue", cell: (q) => h("a.strong", { href: `#/queues/${enc(q.queue)}` }, q.queue) },
            { label: "Topic", cell: (q) => h("a", { href: `#/topics/${enc(q.topic)}` }, q.topic) },
            { label: "Ready", num: true, cell: (q) => countCell(q.ready) },
            { label: "In flight", num: true, cell: (q) => countCell(q.in_flight) },
            { label: "Delayed", num: true, cell: (q) => countCell(q.delayed) },
            { label: "Dead-lettered", num: true, cell: (q) => countCell(q.dead_lettered, "lag") },
            { label: "Oldest ready", num: true, cell: (q) => oldest(q) },
            { label: "Acked", num: true, cell: (q) => countCell(q.acked) },
          ],
          qs.filter(Boolean),
          { caption: "Queues, refreshed every 2 s" },
        ),
      );
    },
  };
}

/** The dead letters of a queue: the newest records of its dead-letter topic, newest first. */
async function deadLetters(dlq) {
  let d;
  try {
    d = await api.topic(dlq);
  } catch (e) {
    if (e.code === "topic_not_found") return [];
    throw e;
  }
  const per = await pool(d.partition_info, 4, async (p) => {
    const from = Math.max(p.earliest_offset, p.next_offset - DLQ_SHOWN);
    if (from >= p.next_offset) return [];
    const r = await api.read(dlq, p.partition, { offset: from, limit: DLQ_SHOWN });
    return r.records.map((rec) => ({ ...rec, partition: p.partition }));
  });
  return per
    .flat()
    .sort((a, b) => b.timestamp_ms - a.timestamp_ms || b.offset - a.offset)
    .slice(0, DLQ_SHOWN);
}

const STATE_TTL_MS = 10_000;

/** Each dead letter's state in the queue now (a redriven one stays in the DLQ topic), looked up
 * through the record history endpoint and kept for 10 s. */
async function withStates(queue, letters, cache) {
  const now = Date.now();
  await pool(letters, 6, async (r) => {
    const hd = r.headers || {};
    const key = `${hd["sluice.source_partition"]}/${hd["sluice.source_offset"]}`;
    let c = cache.get(key);
    if (!c || now - c.at > STATE_TTL_MS) {
      try {
        const h = await api.queueRecord(queue, hd["sluice.source_partition"] ?? "0", hd["sluice.source_offset"] ?? "0");
        c = { state: h.state, at: now };
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        c = { state: null, at: now };
      }
      cache.set(key, c);
    }
    r.state = c.state;
  });
  return letters;
}

function stateCell(r) {
  if (!r.state) return h("span.muted", "—");
  return h("span", { class: r.state === "dead_lettered" ? "lag" : "muted" }, r.state === "dead_lettered" ? "dead-lettered" : `${r.state.replace("_", " ")} (redriven)`);
}

function sourceLink(r) {
  const hd = r.headers || {};
  const t = hd["sluice.source_topic"];
  const p = hd["sluice.source_partition"];
  const o = hd["sluice.source_offset"];
  if (t === undefined || o === undefined) return h("span.muted", "unknown");
  return h("a", { href: `#/topics/${enc(t)}/messages?p=${enc(p ?? "0")}&offset=${enc(o)}&dir=fwd` }, `${t}/${p ?? "?"} @ ${num(Number(o))}`);
}

function redriveForm(queue, onDone) {
  const filterIn = h("input", { name: "redrive-filter", autocomplete: "off", spellcheck: "false", placeholder: "optional, e.g. \"sluice.reason\" = 'timeout'" });
  const maxIn = h("input", { type: "number", min: "1", placeholder: "all" });
  const fFilter = field("Filter", filterIn);
  const fMax = field("At most", maxIn);
  const result = h("div.form-result", { "aria-live": "polite" });
  const dry = h("button", { type: "button" }, "Dry run");
  const go = h("button.primary", { type: "submit" }, "Redrive…");
  const body = () => {
    const b = {};
    if (filterIn.value.trim()) b.filter = filterIn.value.trim();
    if (maxIn.value.trim()) b.max = Number(maxIn.value);
    return b;
  };
  const fail = (e) => {
    const d = (e.problem?.detail || "").toLowerCase();
    if (e.missingRoute) put(result, unavailable("Redrive", `POST /v1/queues/${queue}/redrive`));
    else put(e.code === "invalid_filter" || d.includes("filter") ? fFilter.error : d.includes("max") ? fMax.error : result, problemBox(e));
  };
  const clear = () => {
    put(result);
    put(fFilter.error);
    put(fMax.error);
  };
  dry.addEventListener("click", async () => {
    clear();
    try {
      const r = await api.redrive(queue, { ...body(), dry_run: true });
      put(result, h("p.ok", `Dry run: ${count(r.would_redrive ?? 0, "dead-lettered record")} would be redriven. Nothing was changed.`));
    } catch (e) {
      fail(e);
    }
  });
  const form = h(
    "form.card",
    { novalidate: true, "aria-label": "Redrive dead letters" },
    h("h2", "Redrive"),
    h("p.sub", "Dead-lettered records become ready in this queue again, with their delivery count starting over. No other group or queue sees them twice."),
    h("div.row", fFilter, fMax, h("div.field.submit", h("div.inline", dry, go))),
    result,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    try {
      const b = body();
      const { would_redrive: n = 0 } = await api.redrive(queue, { ...b, dry_run: true });
      if (!n) {
        put(result, h("p.muted", "No dead-lettered record matches: nothing to redrive."));
        return;
      }
      const ok = await confirmDialog({
        title: `Redrive ${count(n, "record")}?`,
        body: h("p", `${count(n, "dead-lettered record")} of queue ${queue}${b.filter ? ` matching ${b.filter}` : ""} ${n === 1 ? "becomes" : "become"} ready again.`),
        confirm: `Redrive ${num(n)}`,
      });
      if (!ok) {
        put(result, h("p.muted", "Cancelled; nothing was changed."));
        return;
      }
      const r = await api.redrive(queue, { ...b, dry_run: false });
      put(result, h("p.ok", `Redriven: ${count(r.redriven ?? 0, "record")} ready again.`));
      onDone();
    } catch (e) {
      fail(e);
    }
  });
  return form;
}

function historyForm(queue) {
  const partIn = h("input", { type: "number", min: "0", value: "0", inputmode: "numeric" });
  const offIn = h("input", { type: "text", inputmode: "numeric", placeholder: "offset", autocomplete: "off" });
  const fPart = field("Partition", partIn);
  const fOff = field("Offset", offIn);
  const out = h("div", { "aria-live": "polite" });
  const form = h("form.card", { novalidate: true, "aria-label": "Delivery history" }, h("h2", "Delivery history of a record"), h("div.row", fPart, fOff, h("div.field.submit", h("button", { type: "submit" }, "Look up"))), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(out);
    put(fOff.error);
    try {
      const r = await api.queueRecord(queue, partIn.value || "0", offIn.value.trim() || "0");
      put(
        out,
        h("p", "State: ", h("strong", r.state), ` · ${num(r.delivery_count)} deliveries`),
        r.history?.length
          ? table(
              [
                { label: "When", cell: (e) => h("time", { datetime: iso(e.at_ms), title: iso(e.at_ms) }, localTime(e.at_ms)) },
                { label: "Event", cell: (e) => e.event },
                { label: "Gateway", cell: (e) => e.gateway ?? "—" },
                { label: "Reason", cell: (e) => e.reason ?? "—" },
              ],
              r.history,
            )
          : h("p.muted", "No deliveries yet."),
      );
    } catch (e) {
      if (e.missingRoute) put(out, unavailable("Delivery histories", `GET /v1/queues/${queue}/records/…`));
      else put(fOff.error, problemBox(e));
    }
  });
  return form;
}

function queueDetail(root, ctx) {
  const name = ctx.name;
  ctx.title(`Queue ${name}`);
  const stats = h("div.cards");
  const config = h("div");
  const dead = h("div", h("p.loading", "Loading…"));
  const states = new Map();
  const forms = h(
    "div",
    redriveForm(name, () => {
      states.clear();
      ctx.refresh();
    }),
    historyForm(name),
  );
  put(
    root,
    h("div.head", h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/queues" }, "Queues"), " / "), h("h1", name)),
    stats,
    config,
    h("section", { "aria-labelledby": "dlq-h" }, h("h2#dlq-h", "Dead letters"), dead),
    forms,
  );
  return {
    async refresh() {
      let q;
      try {
        q = await api.queue(name);
      } catch (e) {
        if (e.missingRoute) return put(root, h("h1", name), unavailable("Queues", `GET /v1/queues/${name}`));
        if (e.code === "queue_not_found") return gone(root, name, "queue", "#/queues");
        throw e;
      }
      put(
        stats,
        card("Ready", num(q.ready)),
        card("In flight", num(q.in_flight)),
        card("Delayed", num(q.delayed)),
        card("Dead-lettered", num(q.dead_lettered)),
        card("Oldest ready", oldest(q)),
        card("Acked", num(q.acked)),
      );
      const dlq = q.dead_letter_topic || `${name}.dlq`;
      put(
        config,
        h(
          "dl.config",
          h("dt", "Topic"),
          h("dd", h("a", { href: `#/topics/${enc(q.topic)}` }, q.topic)),
          h("dt", "Visibility timeout"),
          h("dd", duration(q.visibility_timeout_ms)),
          h("dt", "Max deliveries"),
          h("dd", num(q.max_deliveries)),
          h("dt", "Dead-letter topic"),
          h("dd", h("a", { href: `#/topics/${enc(dlq)}/messages` }, dlq)),
          h("dt", "Ordering"),
          h("dd", q.ordering || "none"),
          q.filter ? [h("dt", "Filter"), h("dd", h("code", q.filter))] : null,
        ),
      );
      const letters = await withStates(name, await deadLetters(dlq), states);
      put(
        dead,
        letters.length
          ? table(
              [
                { label: "Dead-lettered", cell: (r) => h("time", { datetime: iso(r.timestamp_ms), title: iso(r.timestamp_ms) }, localTime(r.timestamp_ms)) },
                { label: "Reason", cell: (r) => h("span.reason", r.headers?.["sluice.reason"] ?? "—") },
                { label: "Now", cell: stateCell },
                { label: "Source", cell: sourceLink },
                { label: "Deliveries", num: true, cell: (r) => num(Number(r.headers?.["sluice.delivery_count"])) },
                { label: "Key", cell: (r) => valueView(r.key, r.key_b64, false) },
                { label: "Value", cell: (r) => valueView(r.value, r.value_b64, false) },
                { label: "In DLQ", cell: (r) => h("a", { href: `#/topics/${enc(dlq)}/messages?p=${r.partition}&offset=${r.offset}&dir=fwd` }, `${r.partition} @ ${num(r.offset)}`) },
              ],
              letters,
              { caption: `The newest ${num(letters.length)} records of ${dlq}, newest first; "Now" is the source record's state in this queue (a redriven record stays in the dead-letter topic)` },
            )
          : empty("No dead letters.", `Records that fail ${num(q.max_deliveries)} deliveries land in ${dlq} and show here with their reason.`),
      );
    },
  };
}

export const detail = { mount: queueDetail };

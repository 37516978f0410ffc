// Health: liveness and readiness of this gateway, the figures of its /metrics (with rates over
// the last minute computed here from polling the counters), gateways seen and compactor lag when
// the gateway exports them, and every metric in a searchable table.

import { api } from "./api.js";
import { card, empty, field, h, problemBox, put, table } from "./dom.js";
import { Window, bytes, duration, num, parseMetrics, rate } from "./format.js";

const windows = new Map();

function sum(ms, name, pred = () => true) {
  const xs = ms.filter((m) => m.name === name && pred(m.labels));
  return xs.length ? xs.reduce((s, m) => s + m.value, 0) : null;
}

function perSecond(key, now, value) {
  if (value === null) return null;
  let w = windows.get(key);
  if (!w) windows.set(key, (w = new Window()));
  w.push(now, value);
  return w.perSecond();
}

/** Metrics whose name matches `re`, for the cards that depend on what the build exports. */
function matching(ms, re) {
  return ms.filter((m) => re.test(m.name));
}

function labelText(labels) {
  const e = Object.entries(labels);
  return e.length ? e.map(([k, v]) => `${k}="${v}"`).join(", ") : "";
}

function valueText(m) {
  if (/_bytes(_total)?$/.test(m.name) || /_bytes_/.test(m.name)) return bytes(m.value);
  if (/_seconds(_total|_sum)?$/.test(m.name)) return duration(m.value * 1000);
  return Number.isInteger(m.value) ? num(m.value) : rate(m.value);
}

export function mount(root, ctx) {
  ctx.title("Health");
  const status = h("div.cards");
  const figures = h("div.cards");
  const cluster = h("div");
  const search = h("input", { type: "search", placeholder: "sluice_produce", autocomplete: "off", spellcheck: "false" });
  const all = h("div");
  let last = [];
  const drawAll = () => {
    const q = search.value.trim().toLowerCase();
    const rows = last.filter((m) => !q || m.name.toLowerCase().includes(q) || labelText(m.labels).toLowerCase().includes(q));
    put(
      all,
      rows.length
        ? table(
            [
              { label: "Metric", cell: (m) => h("code", m.name) },
              { label: "Labels", cell: (m) => h("code.muted", labelText(m.labels)) },
              { label: "Value", num: true, cell: valueText },
            ],
            rows,
          )
        : empty("No metric matches.", "Clear the search to see every metric."),
    );
  };
  search.addEventListener("input", drawAll);
  put(
    root,
    h("div.head", h("h1", "Health"), h("p.sub", "This gateway's /healthz, /readyz and /metrics; rates are computed in this browser over the last minute.")),
    status,
    h("section", { "aria-labelledby": "fig-h" }, h("h2#fig-h", "Traffic"), figures),
    h("section", { "aria-labelledby": "cl-h" }, h("h2#cl-h", "Gateways and compactor"), cluster),
    h("section", { "aria-labelledby": "all-h" }, h("h2#all-h", "All metrics"), field("Search", search), all),
  );
  return {
    async refresh() {
      const now = Date.now();
      const check = async (fn) => {
        try {
          return { ok: true, text: await fn() };
        } catch (e) {
          return { ok: false, err: e };
        }
      };
      const [live, ready, text] = await Promise.all([check(api.healthz), check(api.readyz), api.metrics()]);
      const badge = (r, good) => (r.ok ? h("span.ok", `● ${good}`) : h("div", h("span.lag", "● not ready"), problemBox(r.err)));
      put(status, card("Process (/healthz)", badge(live, "up")), card("Object store (/readyz)", badge(ready, "ready")));
      const ms = parseMetrics(text);
      last = ms;
      const reqs = sum(ms, "sluice_http_requests_total");
      const errs = sum(ms, "sluice_http_requests_total", (l) => l.status === "5xx");
      const rec = sum(ms, "sluice_produced_records_total");
      const byt = sum(ms, "sluice_produced_bytes_total");
      const read = sum(ms, "sluice_read_records_total");
      const pending = sum(ms, "sluice_produce_pending_bytes");
      const flushes = sum(ms, "sluice_flushes_total");
      const fsum = sum(ms, "sluice_flush_duration_seconds_sum");
      const fcount = sum(ms, "sluice_flush_duration_seconds_count");
      const r = (k, v, unit) => {
        const ps = perSecond(k, now, v);
        return ps === null ? h("span.muted", "— (needs two polls)") : unit === "B" ? `${bytes(ps)}/s` : `${rate(ps)} ${unit}`;
      };
      put(
        figures,
        card("Requests", [num(reqs), h("div.stat-sub", r("req", reqs, "req/s"))]),
        card("Server errors (5xx)", h("span", { class: errs ? "lag" : "" }, num(errs ?? 0))),
        card("Records produced", [num(rec), h("div.stat-sub", r("rec", rec, "rec/s"))]),
        card("Bytes produced", [bytes(byt), h("div.stat-sub", r("byt", byt, "B"))]),
        card("Records read", [num(read), h("div.stat-sub", r("read", read, "rec/s"))]),
        card("Flushes", [num(flushes), h("div.stat-sub", fcount ? `mean ${duration((fsum / fcount) * 1000)}` : "")]),
        card("Produce bytes pending", bytes(pending)),
      );
      const gw = matching(ms, /gateway/i).filter((m) => !/^sluice_http_/.test(m.name));
      const comp = matching(ms, /compact/i);
      put(
        cluster,
        h(
          "div.cards",
          card("Gateways seen", gw.length ? gw.map((m) => h("div", `${valueText(m)} `, h("small.muted", m.name))) : h("span.muted", "not exported by this gateway")),
          card(
            "Compactor lag",
            comp.filter((m) => /lag|behind/.test(m.name)).length
              ? comp.filter((m) => /lag|behind/.test(m.name)).map((m) => h("div", `${valueText(m)} `, h("small.muted", m.name)))
              : h("span.muted", "not exported by this gateway"),
          ),
        ),
        !gw.length || !comp.length ? h("p.hint", "These cards fill in from /metrics once this build exports gateway and compactor metrics; everything /metrics has is in the table below.") : null,
      );
      drawAll();
    },
  };
}

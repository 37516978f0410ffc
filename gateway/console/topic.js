// One topic: config (retention and partitions editable), per-partition offsets and rates, and
// the delayed records still pending (contract "Delayed records").

import { api, ApiError } from "./api.js";
import { card, empty, field, gone, h, problemBox, put, snippet, table, unavailable } from "./dom.js";
import { ago, iso, num, retention } from "./format.js";
import { absTime, deleteTopic, lastAppend, rateCell, ratesOf, retentionInput, timeCell, track } from "./topics.js";

const enc = encodeURIComponent;

function editForm(initial, onSaved) {
  let detail = initial;
  const ret = retentionInput(detail.retention_ms);
  const parts = h("input", { type: "number", min: String(detail.partitions), max: "10000", value: String(detail.partitions) });
  const retF = field("Retention", ret, "Empty keeps records forever");
  retF.querySelector("label").htmlFor = ret.amount.id = "edit-retention";
  const partF = field("Partitions", parts, "Can only grow");
  const result = h("div.form-result", { "aria-live": "polite" });
  const submit = h("button.primary", { type: "submit" }, "Save");
  const form = h("form.card", { novalidate: true, "aria-label": "Change the topic" }, h("h2", "Change"), h("div.row", retF, partF, h("div.field.submit", submit)), result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(result);
    put(retF.error);
    put(partF.error);
    const body = {};
    const r = ret.valueMs();
    if (r !== detail.retention_ms) body.retention_ms = r;
    if (Number(parts.value) !== detail.partitions) body.partitions = Number(parts.value);
    if (!Object.keys(body).length) {
      put(result, h("p.muted", "Nothing changed."));
      return;
    }
    submit.disabled = true;
    try {
      const t = await api.patchTopic(detail.name, body);
      put(result, h("p.ok", `Saved: ${num(t.partitions)} partitions, retention ${retention(t.retention_ms)}.`));
      detail = { ...detail, retention_ms: t.retention_ms, partitions: t.partitions };
      parts.min = String(t.partitions);
      onSaved(t);
    } catch (e) {
      const d = (e.problem?.detail || "").toLowerCase();
      put(d.includes("partition") ? partF.error : d.includes("retention") ? retF.error : result, problemBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function delayedView(name, res, onCancel) {
  if (res instanceof ApiError) {
    if (res.status === 404 && res.code !== "topic_not_found") {
      return unavailable("Delayed records", `GET /v1/topics/${name}/delayed`);
    }
    return problemBox(res);
  }
  if (!res.delayed.length) {
    return empty(
      "No delayed records pending.",
      "Produce a record with \"delay_ms\" or \"deliver_at_ms\"; it waits here until it is due.",
      snippet(`curl -X POST ${location.origin}/v1/topics/${name}/records -H 'content-type: application/json' -d '{"records":[{"value":"later","delay_ms":60000}]}'`),
    );
  }
  return table(
    [
      { label: "Delayed id", cell: (d) => h("code", d.delayed_id) },
      { label: "Deliver at", cell: (d) => h("time", { datetime: iso(d.deliver_at_ms), title: iso(d.deliver_at_ms) }, `${ago(d.deliver_at_ms)}`) },
      { label: "Key", cell: (d) => d.key ?? h("span.muted", "none") },
      { label: "Headers", cell: (d) => headerChips(d.headers) },
      {
        label: "Cancel",
        cell: (d) => h("button.small", { type: "button", "aria-label": `Cancel delayed record ${d.delayed_id}`, on: { click: () => onCancel(d.delayed_id) } }, "Cancel"),
      },
    ],
    res.delayed,
    { caption: `${num(res.delayed.length)} pending, soonest first` },
  );
}

export function headerChips(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return h("span.muted", "none");
  return h("ul.chips", entries.map(([k, v]) => h("li.chip", h("span.k", k), "=", h("span.v", v))));
}

export function mount(root, ctx) {
  const name = ctx.name;
  ctx.title(name);
  const summary = h("div.cards");
  const partsBox = h("div", h("p.loading", "Loading…"));
  const editBox = h("div");
  const delayedBox = h("div");
  const delayedErr = h("div");
  let edited = null;
  put(
    root,
    h(
      "div.head",
      h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/topics" }, "Topics"), " / "),
      h("h1", name),
      h(
        "div.actions",
        h("a.button.primary", { href: `#/topics/${enc(name)}/messages` }, "Browse messages"),
        h(
          "button.danger",
          {
            type: "button",
            on: {
              click: async () => {
                try {
                  if (await deleteTopic(name)) ctx.go("#/topics");
                } catch (e) {
                  root.prepend(problemBox(e));
                }
              },
            },
          },
          "Delete topic",
        ),
      ),
    ),
    summary,
    h("section", { "aria-labelledby": "parts-h" }, h("h2#parts-h", "Partitions"), partsBox),
    editBox,
    h("section", { "aria-labelledby": "delayed-h" }, h("h2#delayed-h", "Delayed records pending"), delayedErr, delayedBox),
  );
  const cancel = async (id) => {
    put(delayedErr);
    try {
      await api.cancelDelayed(name, id);
      ctx.refresh();
    } catch (e) {
      put(delayedErr, problemBox(e));
    }
  };
  return {
    async refresh() {
      let d;
      try {
        d = await api.topic(name);
      } catch (e) {
        if (e.code === "topic_not_found") {
          gone(root, name, "topic", "#/topics");
          return;
        }
        throw e;
      }
      await track(d);
      const rates = ratesOf(d);
      const total = d.partition_info.reduce((s, p) => s + (p.next_offset - p.earliest_offset), 0);
      put(
        summary,
        card("Records retained", num(total)),
        card("Partitions", num(d.partitions)),
        card("Records/s (1 min)", rateCell(rates.records, "rec/s", rates.span)),
        card("Bytes/s (1 min, est.)", rateCell(rates.bytes, null, rates.span)),
        card("Retention", retention(d.retention_ms)),
        card("Last append", timeCell(lastAppend(d))),
        card("Created", absTime(d.created_ms)),
        card("Shard · version", `${num(d.shard)} · v${num(d.version)}`),
      );
      put(
        partsBox,
        table(
          [
            { label: "Partition", num: true, cell: (p) => num(p.partition) },
            { label: "Earliest offset", num: true, cell: (p) => num(p.earliest_offset) },
            { label: "Next offset", num: true, cell: (p) => num(p.next_offset) },
            { label: "Records", num: true, cell: (p) => num(p.next_offset - p.earliest_offset) },
            { label: "Records/s", num: true, cell: (p) => rateCell(rates.partition(p.partition), "rec/s", rates.span) },
            { label: "Last append", cell: (p) => timeCell(p.last_append_ms) },
            { label: "Browse", cell: (p) => h("a.button.small", { href: `#/topics/${enc(name)}/messages?p=${p.partition}&offset=latest&dir=back`, "aria-label": `Browse partition ${p.partition}` }, "Newest") },
          ],
          d.partition_info,
        ),
      );
      // A new form for a config changed elsewhere, unless the person is editing this one.
      if (edited !== d.version && !editBox.contains(document.activeElement)) {
        edited = d.version;
        put(
          editBox,
          editForm(d, (t) => {
            edited = t.version;
            ctx.refresh();
          }),
        );
      }
      let delayed;
      try {
        delayed = await api.delayed(name);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        delayed = e;
      }
      put(delayedBox, delayedView(name, delayed, cancel));
    },
  };
}

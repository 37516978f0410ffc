// One topic: config (retention and partitions editable), per-partition offsets and rates, and
// how many delayed records are pending (the list and cancelling are on the Delayed page,
// delayed.js).

import { api, ApiError } from "./api.js";
import { card, empty, field, gone, h, problemBox, put, table, unavailable } from "./dom.js";
import { ago, count, iso, num, retention } from "./format.js";
import { absTime, deleteTopic, lastAppend, rateCell, ratesOf, retentionInput, timeCell, track } from "./topics.js";

const enc = encodeURIComponent;
const DELAYED_LIMIT = 100;

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

/** The delayed records in short: how many, the next due; the list is on the Delayed page. */
function delayedView(name, res) {
  if (res instanceof ApiError) {
    if (res.status === 404 && res.code !== "topic_not_found") {
      return unavailable("Delayed records", `GET /v1/topics/${name}/delayed`);
    }
    return problemBox(res);
  }
  const link = h("a", { href: `#/topics/${enc(name)}/delayed` }, "See and cancel them on the Delayed page");
  if (!res.delayed.length) {
    return empty(
      "No delayed records pending.",
      "Produce a record with \"delay_ms\" or \"deliver_at_ms\"; it waits until it is due.",
      h("a", { href: `#/topics/${enc(name)}/delayed` }, "Open the Delayed page"),
    );
  }
  const next = res.delayed[0].deliver_at_ms;
  return h(
    "p.delayed-summary",
    `${res.delayed.length >= DELAYED_LIMIT ? "At least " : ""}${count(res.delayed.length, "record")} pending; the next is due `,
    h("time", { datetime: iso(next), title: iso(next) }, ago(next)),
    ". ",
    link,
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
        h("a.button", { href: `#/topics/${enc(name)}/delayed` }, "Delayed"),
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
    h("section", { "aria-labelledby": "delayed-h" }, h("h2#delayed-h", "Delayed records pending"), delayedBox),
  );
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
        delayed = await api.delayed(name, DELAYED_LIMIT);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        delayed = e;
      }
      put(delayedBox, delayedView(name, delayed));
    },
  };
}

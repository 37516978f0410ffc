// The delayed records of one topic still pending (contract "Delayed records"): soonest first,
// with their due time, key and headers, each cancellable after a confirmation. A topic picker
// switches topics; the list refreshes with the rest of the console (app.js, every 2 s).

import { api, ApiError } from "./api.js";
import { confirmThen, empty, field, gone, h, put, snippet, table, unavailable } from "./dom.js";
import { ago, b64bytes, count, hex, iso, localTime, num } from "./format.js";
import { headerChips } from "./topic.js";

const enc = encodeURIComponent;
/** How many pending records one poll asks for (the API takes 1 to 1000). */
export const LIMIT = 200;

/** The due time: local wall time, "in 4 min" beside it, ISO 8601 on hover. */
function dueCell(ms) {
  return h("time.due", { datetime: iso(ms), title: iso(ms) }, localTime(ms), h("span.muted", ` · ${ago(ms)}`));
}

/** A key as text, a non-UTF-8 key as hex, or "none". */
export function keyCell(d) {
  if (d.key !== null && d.key !== undefined) return h("code", d.key);
  if (d.key_b64) return h("code", { title: "Not UTF-8: shown as hex" }, hex(b64bytes(d.key_b64), 32));
  return h("span.muted", "none");
}

function keyText(d) {
  return d.key ?? (d.key_b64 ? `hex ${hex(b64bytes(d.key_b64), 16)}` : null);
}

function listView(topic, res, onCancel) {
  if (!res.delayed.length) {
    return empty(
      `No delayed records pending on ${topic}.`,
      "Produce a record with \"delay_ms\" or \"deliver_at_ms\"; it waits here until it is due, then appears in the message browser.",
      snippet(`curl -X POST ${location.origin}/v1/topics/${topic}/records -H 'content-type: application/json' -d '{"records":[{"value":"later","delay_ms":60000}]}'`),
      h("a", { href: `#/topics/${enc(topic)}/messages` }, "Browse the records already delivered"),
    );
  }
  const n = res.delayed.length;
  return table(
    [
      { label: "Due", cell: (d) => dueCell(d.deliver_at_ms) },
      { label: "Key", cell: keyCell },
      { label: "Headers", cell: (d) => headerChips(d.headers) },
      { label: "Partition", cell: (d) => (d.partition ?? null) === null ? h("span.muted", "by key") : num(d.partition) },
      { label: "Delayed id", cell: (d) => h("code.id", d.delayed_id) },
      {
        label: "Cancel",
        cell: (d) =>
          h("button.small.danger", { type: "button", "aria-label": `Cancel delayed record ${d.delayed_id}`, on: { click: () => onCancel(d) } }, "Cancel…"),
      },
    ],
    res.delayed,
    { caption: n >= LIMIT ? `The soonest ${num(n)} pending shown, soonest first` : `${count(n, "record")} pending, soonest first` },
  );
}

export function mount(root, ctx) {
  const topic = ctx.name;
  ctx.title(`${topic} · delayed`);
  const picker = h("select", { name: "delayed-topic" }, h("option", { value: topic }, topic));
  picker.addEventListener("change", () => {
    if (picker.value !== topic) ctx.go(`#/topics/${enc(picker.value)}/delayed`);
  });
  let names = [topic];
  const listBox = h("div", h("p.loading", "Loading…"));
  const result = h("div.form-result", { "aria-live": "polite" });
  const pick = field("Topic", picker);
  pick.classList.add("picker");
  put(
    root,
    h(
      "div.head",
      h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/topics" }, "Topics"), " / ", h("a", { href: `#/topics/${enc(topic)}` }, topic), " / "),
      h("h1", "Delayed records"),
      h("div.actions", pick),
      h("p.sub.muted", "Records produced with a delay that are not due yet. Once due they are appended to the topic; a cancelled one never is."),
    ),
    result,
    h("section", { "aria-label": "Pending delayed records" }, listBox),
  );

  const cancel = async (d) => {
    const dialog = {
      title: "Cancel this delayed record?",
      body: h(
        "p",
        `The record ${keyText(d) !== null ? `with key ${keyText(d)} ` : ""}due ${localTime(d.deliver_at_ms)} (${ago(d.deliver_at_ms)}) will never be delivered to ${topic}. This cannot be undone.`,
      ),
      confirm: "Cancel delivery",
      danger: true,
    };
    const ran = await confirmThen(result, dialog, "Kept; nothing was changed.", async () => {
      await api.cancelDelayed(topic, d.delayed_id);
      return `Cancelled delayed record ${d.delayed_id}: it will never be delivered.`;
    });
    if (ran) ctx.refresh();
  };

  return {
    async refresh() {
      let res;
      try {
        res = await api.delayed(topic, LIMIT);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (e.code === "topic_not_found") {
          gone(root, topic, "topic", "#/topics");
          return;
        }
        if (e.missingRoute) {
          put(listBox, unavailable("Delayed records", `GET /v1/topics/${topic}/delayed`));
          return;
        }
        throw e;
      }
      put(listBox, listView(topic, res, cancel));
      // The picker's topics, rebuilt only when they change (an open picker stays open).
      const { topics } = await api.topics();
      const now = [...new Set([topic, ...topics.map((t) => t.name)])].sort();
      if (now.join("\n") !== names.join("\n")) {
        names = now;
        picker.replaceChildren(...names.map((n) => h("option", { value: n, selected: n === topic }, n)));
        picker.value = topic;
      }
    },
  };
}

// Consumer groups: the list with total lag; one group's members, assignment, committed offsets
// and lag per partition, and resetting its committed offsets.

import { api } from "./api.js";
import { card, confirmDialog, empty, field, gone, h, problemBox, put, showFor, snippet, table, unavailable } from "./dom.js";
import { ago, count, duration, iso, num, parseLocal, toLocalInput } from "./format.js";

const enc = encodeURIComponent;

export function mount(root, ctx) {
  ctx.title("Consumer groups");
  const list = h("div.list", h("p.loading", "Loading groups…"));
  put(root, h("div.head", h("h1", "Consumer groups"), h("p.sub", "Lag = high watermark − committed offset, summed over the group's partitions.")), list);
  return {
    async refresh() {
      let res;
      try {
        res = await api.groups();
      } catch (e) {
        if (e.missingRoute) return put(list, unavailable("Consumer groups", "GET /v1/groups"));
        throw e;
      }
      if (!res.groups.length) {
        return put(
          list,
          empty(
            "No consumer groups yet.",
            "A group appears when its first member joins, for example:",
            snippet(`curl -X POST ${location.origin}/v1/groups/billing/members -H 'content-type: application/json' -d '{"topics":["orders"]}'`),
          ),
        );
      }
      put(
        list,
        table(
          [
            { label: "Group", cell: (g) => h("a.strong", { href: `#/groups/${enc(g.group)}` }, g.group) },
            { label: "Members", num: true, cell: (g) => num(Array.isArray(g.members) ? g.members.length : g.members) },
            { label: "Lag", num: true, cell: (g) => lagCell(g.lag) },
          ],
          res.groups,
          { caption: "Consumer groups, refreshed every 2 s" },
        ),
      );
    },
  };
}

function lagCell(lag) {
  if (lag === null || lag === undefined) return "—";
  return h("span", { class: lag > 0 ? "lag" : "ok" }, count(lag, "record"));
}

/** A bar showing committed/high-watermark, with the lag as the unfilled part. */
function lagBar(p) {
  const hw = p.high_watermark || 0;
  const done = hw ? Math.min(1, (p.committed_offset ?? 0) / hw) : 1;
  const bar = h("span.bar-fill");
  bar.style.width = `${(done * 100).toFixed(1)}%`;
  return h("span.bar", { role: "img", "aria-label": `${Math.round(done * 100)}% consumed` }, bar);
}

function resetForm(group, partsByTopic, onDone) {
  const topics = [...partsByTopic.keys()];
  const topicSel = h("select", { name: "reset-topic" }, topics.map((t) => h("option", { value: t }, t)));
  const partSel = h("select", { name: "reset-partition" });
  const fillParts = () => put(partSel, h("option", { value: "" }, "All partitions"), (partsByTopic.get(topicSel.value) || []).map((p) => h("option", { value: String(p) }, `Partition ${p}`)));
  fillParts();
  topicSel.addEventListener("change", fillParts);
  const toSel = h("select", { name: "reset-to" }, h("option", { value: "earliest" }, "Earliest"), h("option", { value: "latest" }, "Latest"), h("option", { value: "offset" }, "Offset"), h("option", { value: "time" }, "Time"));
  const offsetIn = h("input", { name: "reset-offset", type: "text", inputmode: "numeric", placeholder: "0", autocomplete: "off" });
  const timeIn = h("input", { name: "reset-time", type: "datetime-local", step: "1", value: toLocalInput(Date.now() - 3_600_000) });
  const fTopic = field("Topic", topicSel);
  const fPart = field("Partition", partSel);
  const fTo = field("Reset to", toSel);
  const fOffset = field("Offset", offsetIn);
  const fTime = field("Time", timeIn, "In your time zone");
  const result = h("div.form-result", { "aria-live": "polite" });
  const submit = h("button.danger", { type: "submit" }, "Reset offsets…");
  showFor(toSel, { offset: fOffset, time: fTime });
  const form = h("form.card", { novalidate: true, "aria-label": "Reset committed offsets" }, h("h2", "Reset committed offsets"), h("p.sub", "Members restart from the new offsets at their next poll."), h("div.row", fTopic, fPart, fTo, fOffset, fTime, h("div.field.submit", submit)), result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(result);
    put(fOffset.error);
    const body = { topic: topicSel.value };
    if (partSel.value !== "") body.partition = Number(partSel.value);
    if (toSel.value === "offset") body.to = offsetIn.value.trim();
    else if (toSel.value === "time") body.timestamp_ms = parseLocal(timeIn.value);
    else body.to = toSel.value;
    const what = body.timestamp_ms !== undefined ? `the first offset at ${timeIn.value}` : `offset ${body.to}`;
    const which = body.partition === undefined ? `Every partition of ${body.topic}` : `Partition ${body.partition} of ${body.topic}`;
    if (!(await confirmDialog({ title: `Reset group ${group}?`, body: h("p", `${which} goes to ${what}. Records may be consumed again or skipped.`), confirm: "Reset offsets", danger: true }))) return;
    submit.disabled = true;
    try {
      await api.resetGroup(group, body);
      put(result, h("p.ok", `Reset: ${which.toLowerCase()} now at ${what}.`));
      onDone();
    } catch (e) {
      if (e.missingRoute) put(result, unavailable("Offset resets", `POST /v1/groups/${group}/reset`));
      else put(toSel.value === "offset" ? fOffset.error : result, problemBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function groupDetail(root, ctx) {
  const name = ctx.name;
  ctx.title(`Group ${name}`);
  const summary = h("div.cards");
  const members = h("div");
  const parts = h("div", h("p.loading", "Loading…"));
  const reset = h("div");
  let resetKey = null;
  put(
    root,
    h("div.head", h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/groups" }, "Groups"), " / "), h("h1", name)),
    summary,
    h("section", { "aria-labelledby": "members-h" }, h("h2#members-h", "Members"), members),
    h("section", { "aria-labelledby": "gparts-h" }, h("h2#gparts-h", "Partitions"), parts),
    reset,
  );
  return {
    async refresh() {
      let g;
      try {
        g = await api.group(name);
      } catch (e) {
        if (e.missingRoute) return put(root, h("h1", name), unavailable("Consumer groups", `GET /v1/groups/${name}`));
        if (e.code === "group_not_found") return gone(root, name, "group", "#/groups");
        throw e;
      }
      const owner = new Map();
      for (const m of g.members || []) for (const a of m.assignments || []) owner.set(`${a.topic}/${a.partition}`, m.member_id);
      for (const p of g.partitions || []) if (p.member_id) owner.set(`${p.topic}/${p.partition}`, p.member_id);
      const totalLag = (g.partitions || []).reduce((s, p) => s + (p.lag || 0), 0);
      put(summary, card("Generation", num(g.generation)), card("Members", num((g.members || []).length)), card("Total lag", lagCell(totalLag)), card("Partitions", num((g.partitions || []).length)));
      put(
        members,
        (g.members || []).length
          ? table(
              [
                { label: "Member", cell: (m) => h("code", m.member_id) },
                { label: "Topics", cell: (m) => (m.topics || []).join(", ") || "—" },
                { label: "Last heartbeat", cell: (m) => (m.last_seen_ms ? h("time", { datetime: iso(m.last_seen_ms), title: iso(m.last_seen_ms) }, ago(m.last_seen_ms)) : "—") },
                { label: "Session timeout", num: true, cell: (m) => (m.session_timeout_ms ? duration(m.session_timeout_ms) : "—") },
                { label: "Assigned partitions", cell: (m) => ((m.assignments || []).length ? h("ul.chips", m.assignments.map((a) => h("li.chip", `${a.topic}/${a.partition}`))) : h("span.muted", "none")) },
              ],
              g.members,
            )
          : empty("No live members.", "Committed offsets are kept; a member that joins starts from them."),
      );
      put(
        parts,
        (g.partitions || []).length
          ? table(
              [
                { label: "Topic", cell: (p) => h("a", { href: `#/topics/${enc(p.topic)}` }, p.topic) },
                { label: "Partition", num: true, cell: (p) => num(p.partition) },
                { label: "Committed", num: true, cell: (p) => (p.committed_offset === null || p.committed_offset === undefined ? h("span.muted", "none") : num(p.committed_offset)) },
                { label: "High watermark", num: true, cell: (p) => num(p.high_watermark) },
                { label: "Lag", num: true, cell: (p) => lagCell(p.lag) },
                { label: "Progress", cell: lagBar },
                { label: "Member", cell: (p) => (owner.get(`${p.topic}/${p.partition}`) ? h("code", owner.get(`${p.topic}/${p.partition}`)) : h("span.muted", "unassigned")) },
              ],
              g.partitions,
            )
          : empty("No partitions.", "The group's topics have no partitions yet."),
      );
      const partsByTopic = new Map();
      for (const p of g.partitions || []) {
        if (!partsByTopic.has(p.topic)) partsByTopic.set(p.topic, []);
        partsByTopic.get(p.topic).push(p.partition);
      }
      const key = [...partsByTopic].map(([t, ps]) => `${t}:${ps.length}`).join(",");
      if (partsByTopic.size && key !== resetKey) {
        resetKey = key;
        put(reset, resetForm(name, partsByTopic, () => ctx.refresh()));
      }
    },
  };
}

export const detail = { mount: groupDetail };

// Transactions not finished yet (contract "Transactions", GET /v1/transactions): open ones with
// their staged records, check-backs and expiry, oldest first; each can be committed or rolled
// back after a confirmation, and any transaction can be looked up by id. Refreshes with the
// rest of the console (app.js, every 2 s).

import { api, ApiError } from "./api.js";
import { confirmThen, empty, field, h, problemBox, put, snippet, table, unavailable } from "./dom.js";
import { ago, count, iso, localTime, num } from "./format.js";

/** How many transactions one poll asks for (the API takes 1 to 1000). */
export const LIMIT = 200;

const STATES = { open: "open", committed: "committed", rolled_back: "rolled back" };

function stateCell(t) {
  const label = STATES[t.state] ?? t.state;
  const how = t.decided_by ? ` (${t.decided_by.replace("_", " ")})` : "";
  const pending = t.state === "committed" && !t.visible ? ", being applied" : "";
  return h(`span.state.${t.state}`, `${label}${how}${pending}`);
}

function expiryCell(ms) {
  return h("time", { datetime: iso(ms), title: iso(ms) }, localTime(ms), h("span.muted", ` · ${ago(ms)}`));
}

/** The columns of a transaction, in the list and in a look-up. */
const COLUMNS = [
  { label: "Transaction", cell: (t) => h("code.id", t.transaction_id) },
  { label: "State", cell: stateCell },
  { label: "Staged", cell: (t) => num(t.staged) },
  { label: "Check-backs", cell: (t) => num(t.checks) },
  { label: "Expires", cell: (t) => expiryCell(t.expires_at_ms) },
];

function listView(res, onDecide) {
  if (!res.transactions.length) {
    return empty(
      "No transactions in progress.",
      "Begin one, stage records with ?transaction=ID, then commit or roll it back: staged records stay invisible until the commit.",
      snippet(`curl -X POST ${location.origin}/v1/transactions -H 'content-type: application/json' -d '{"timeout_ms":60000}'`),
    );
  }
  const n = res.transactions.length;
  const actions = (t) =>
    t.state !== "open"
      ? h("span.muted", "decided")
      : h(
          "span.buttons",
          h("button.small", { type: "button", "aria-label": `Commit transaction ${t.transaction_id}`, on: { click: () => onDecide(t, "commit") } }, "Commit…"),
          h("button.small.danger", { type: "button", "aria-label": `Roll back transaction ${t.transaction_id}`, on: { click: () => onDecide(t, "rollback") } }, "Roll back…"),
        );
  return table(
    [...COLUMNS, { label: "Decide", cell: actions }],
    res.transactions,
    { caption: n >= LIMIT ? `The oldest ${num(n)} shown` : `${count(n, "transaction")} in progress, oldest first` },
  );
}

function lookupView(t) {
  return table(COLUMNS, [t], { caption: "Looked up" });
}

export function mount(root, ctx) {
  ctx.title("Transactions");
  const listBox = h("div", h("p.loading", "Loading…"));
  const result = h("div.form-result", { "aria-live": "polite" });
  const idInput = h("input", { name: "transaction-id", placeholder: "01JDC0000000000000000000AA", spellcheck: "false", autocomplete: "off" });
  const found = h("div.lookup-result", { "aria-live": "polite" });
  const form = h(
    "form.lookup",
    { "aria-label": "Look up a transaction", on: { submit: (e) => { e.preventDefault(); lookup(); } } },
    field("Transaction id", idInput),
    h("button", { type: "submit" }, "Look up"),
  );
  put(
    root,
    h(
      "div.head",
      h("h1", "Transactions"),
      h("p.sub.muted", "Half messages with check-back: staged records are invisible to every read until their transaction commits; those of a rolled-back one never appear."),
    ),
    result,
    h("section", { "aria-label": "Transactions in progress" }, listBox),
    h("section", { "aria-label": "Look up a transaction" }, h("h2", "Look up"), form, found),
  );

  async function lookup() {
    const id = idInput.value.trim();
    if (!id) {
      put(found, h("p.muted", "Give a transaction id."));
      return;
    }
    try {
      put(found, lookupView(await api.transaction(id)));
    } catch (e) {
      put(found, problemBox(e));
    }
  }

  const decide = async (t, how) => {
    const commit = how === "commit";
    const dialog = {
      title: commit ? "Commit this transaction?" : "Roll back this transaction?",
      body: h(
        "p",
        commit
          ? `Its ${count(t.staged, "staged record")} become readable at once, all together. This cannot be undone.`
          : `Its ${count(t.staged, "staged record")} will never be visible. This cannot be undone.`,
      ),
      confirm: commit ? "Commit" : "Roll back",
      danger: !commit,
    };
    const ran = await confirmThen(result, dialog, "Kept open; nothing was changed.", async () => {
      if (commit) {
        const res = await api.commitTransaction(t.transaction_id);
        return `Committed ${t.transaction_id}: ${count(res.offsets.length, "record")} readable.`;
      }
      await api.rollbackTransaction(t.transaction_id);
      return `Rolled back ${t.transaction_id}: its records will never be visible.`;
    });
    if (ran) ctx.refresh();
  };

  return {
    async refresh() {
      let res;
      try {
        res = await api.transactions(LIMIT);
      } catch (e) {
        if (e instanceof ApiError && e.missingRoute) {
          put(listBox, unavailable("Transactions", "GET /v1/transactions"));
          return;
        }
        throw e;
      }
      put(listBox, listView(res, decide));
    },
  };
}

// Building DOM nodes without innerHTML: every text from the API goes in as a text node, so a
// record's key, value or header can never inject markup.

/** h("tag.class#id", {attrs, on: {event: fn}}, ...children) → Element. */
export function h(spec, attrs, ...children) {
  if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || "div");
  for (const part of (m && m[2] ? m[2].match(/[.#][\w-]+/g) : []) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "class") {
      for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k in el && typeof v !== "string") {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace all children of `el`. A control that had the keyboard focus inside `el` gets it back
 * in the new content (the same kind of control with the same label, link or name), so the 2 s
 * refresh never throws a keyboard user out of a table. */
export function put(el, ...children) {
  const active = document.activeElement;
  const key = active && active !== el && el.contains(active) ? focusKey(active) : null;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = [...el.querySelectorAll("a, button, input, select, summary, textarea")].find((n) => focusKey(n) === key);
    again?.focus({ preventScroll: true });
  }
  return el;
}

function focusKey(n) {
  return `${n.tagName}|${n.getAttribute("aria-label") || n.getAttribute("href") || n.getAttribute("name") || n.textContent}`;
}

/** A message box saying what is (not) there and what to do next. */
export function empty(title, ...next) {
  return h("div.empty", { role: "status" }, h("p.empty-title", title), ...next.map((n) => h("p", n)));
}

/** A figure with its label, for the rows of cards atop a page. */
export function card(label, value) {
  return h("div.card.stat", h("div.stat-label", label), h("div.stat-value", value));
}

/** The empty state of a feature the gateway answers 404 for (a route this build lacks). */
export function unavailable(what, path) {
  return empty(`${what} are not available on this gateway.`, `The API answered 404 for ${path}: this build does not serve them yet.`);
}

/** The page of something that does not exist (any more): `kind` "topic", `section` "#/topics". */
export function gone(root, name, kind, section) {
  put(root, h("h1", name), empty(`This ${kind} does not exist (any more).`, h("a", { href: section }, `Back to the ${kind}s`)));
}

/** Show only the fields whose key is the select's value ({offset: field, time: field}). */
export function showFor(select, fields) {
  const show = () => {
    for (const [value, f] of Object.entries(fields)) f.hidden = select.value !== value;
  };
  show();
  select.addEventListener("change", show);
}

/** A code snippet the reader can copy. */
export function snippet(text) {
  return h("pre.snippet", h("code", text));
}

/** A problem document (or any error) as an inline alert next to the control it concerns. */
export function problemBox(err) {
  if (!err) return null;
  // No problem document: a bug in the console, not an answer of the API. Shown, and reported to
  // the browser's console (where the browser test looks for errors).
  if (!err.problem) console.error(err);
  const p = err.problem || {};
  return h(
    "div.problem",
    { role: "alert" },
    h("strong", p.title || err.message || "Error"),
    p.status ? h("span.badge", `${p.status}${p.code ? " · " + p.code : ""}`) : null,
    p.detail ? h("div.problem-detail", p.detail) : null,
    p.position !== undefined && p.position !== null ? h("div.problem-pos", `at position ${p.position}`) : null,
  );
}

/** A labelled form field: <label> + control + a slot for its error. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const err = h("div.field-error", { "aria-live": "polite" });
  const wrap = h("div.field", h("label", { for: id }, label), control, hint ? h("small.hint", hint) : null, err);
  wrap.error = err;
  return wrap;
}

/** A table from column specs [{label, cell: row => node|string, num?: bool}] and rows. */
export function table(columns, rows, opts = {}) {
  return h(
    "table.grid",
    opts.caption ? h("caption", opts.caption) : null,
    h("thead", h("tr", columns.map((c) => h(c.num ? "th.num" : "th", { scope: "col" }, c.label)))),
    h(
      "tbody",
      rows.map((r) =>
        h(
          "tr",
          columns.map((c) => h(c.num ? "td.num" : "td", { dataset: { label: c.label } }, c.cell(r))),
        ),
      ),
    ),
  );
}

/**
 * A confirmed action: clear `result`, ask with `dialog` (as confirmDialog takes it); if declined,
 * show `kept` and resolve false; else run `act`, show the message it resolves with (or the
 * problem it throws) and resolve true.
 */
export async function confirmThen(result, dialog, kept, act) {
  put(result);
  if (!(await confirmDialog(dialog))) {
    put(result, h("p.muted", kept));
    return false;
  }
  try {
    put(result, h("p.ok", await act()));
  } catch (e) {
    put(result, problemBox(e));
  }
  return true;
}

/** Wire a <dialog> confirmation; resolves true when confirmed. */
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const ok = h(danger ? "button.danger" : "button.primary", { type: "submit", value: "ok" }, confirm);
    const cancel = h("button", { type: "button" }, "Cancel");
    const dlg = h(
      "dialog.confirm",
      { "aria-labelledby": "confirm-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2#confirm-title", title),
        h("div", body),
        h("div.actions", cancel, ok),
      ),
    );
    cancel.addEventListener("click", () => dlg.close("cancel"));
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok");
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

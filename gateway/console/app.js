// The console's shell: hash routing, the 2 s refresh loop (live updates without reloading),
// the token dialog, and the error boundary that keeps a failing page from going blank.

import { onTokenNeeded, setToken, token } from "./api.js";
import { h, problemBox, put } from "./dom.js";
import { iso } from "./format.js";
import * as topics from "./topics.js";
import * as topic from "./topic.js";
import * as browser from "./browser.js";
import * as delayed from "./delayed.js";
import * as groups from "./groups.js";
import * as queues from "./queues.js";
import * as transactions from "./transactions.js";
import * as health from "./health.js";

export const POLL_MS = 2000;
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** "#/topics/orders/messages?p=1" (or "…/delayed") → {parts: ["topics","orders","messages"], query}. */
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(qs || "") };
}

function route(parts) {
  const [section, name, sub] = parts;
  switch (section || "topics") {
    case "topics":
      if (!name) return { page: topics, nav: "topics" };
      if (sub === "messages") return { page: browser, nav: "topics", name };
      if (sub === "delayed") return { page: delayed, nav: "topics", name };
      return { page: topic, nav: "topics", name };
    case "groups":
      return { page: name ? groups.detail : groups, nav: "groups", name };
    case "queues":
      return { page: name ? queues.detail : queues, nav: "queues", name };
    case "transactions":
      return { page: transactions, nav: "transactions" };
    case "health":
      return { page: health, nav: "health" };
    default:
      return null;
  }
}

const main = document.getElementById("main");
const live = document.getElementById("live");
let current = null;
let generation = 0;
let timer = null;
let busy = false;

/** Navigate within the console (pushes history). */
export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

/** Replace the current hash without a new history entry and without re-mounting. */
export function replaceQuery(hash) {
  history.replaceState(null, "", hash);
}

function setLive(ok, err) {
  const now = Date.now();
  live.classList.toggle("stale", !ok);
  live.textContent = ok ? `Live · ${clock.format(now)}` : "Not updating";
  live.title = ok ? `Last updated ${iso(now)}; updates every ${POLL_MS / 1000} s while this tab is visible` : String(err?.message || err);
}

async function refresh(gen) {
  if (!current || busy || gen !== generation) return;
  if (document.visibilityState === "hidden") return;
  busy = true;
  try {
    await current.refresh?.();
    if (gen === generation) {
      setLive(true);
      current.clearError?.();
    }
  } catch (e) {
    if (gen === generation) {
      setLive(false, e);
      current.showError?.(e);
    }
  } finally {
    busy = false;
  }
}

function render() {
  generation += 1;
  const gen = generation;
  clearInterval(timer);
  current?.unmount?.();
  current = null;
  busy = false;
  const { parts, query } = parseHash(location.hash);
  const r = route(parts);
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (r && a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = h("div.page");
  put(main, root);
  if (!r) {
    put(root, h("h1", "Not found"), h("p", "No such page. ", h("a", { href: "#/topics" }, "Go to the topics.")));
    return;
  }
  const errSlot = h("div.page-error");
  const ctx = {
    query,
    name: r.name,
    go,
    replaceQuery,
    refresh: () => refresh(gen),
    title: (t) => {
      document.title = `${t} · Sluice console`;
    },
  };
  try {
    current = r.page.mount(root, ctx) || {};
  } catch (e) {
    put(root, problemBox(e));
    return;
  }
  current.showError ??= (e) => put(errSlot, problemBox(e));
  current.clearError ??= () => put(errSlot);
  root.prepend(errSlot);
  refresh(gen);
  timer = setInterval(() => refresh(gen), POLL_MS);
}

// --- token dialog --------------------------------------------------------------------------------

const dlg = document.getElementById("token-dialog");
const input = document.getElementById("token-input");
const tokenBtn = document.getElementById("token-btn");

/** Set when the person cancelled the token dialog: no more asking until they click "Token". */
let declined = false;

function showTokenButton() {
  tokenBtn.hidden = !token() && !declined;
}

onTokenNeeded((reason) =>
  declined
    ? Promise.resolve(null)
    : new Promise((resolve) => {
      document.getElementById("token-reason").textContent = reason;
      input.value = "";
      const done = () => {
        dlg.removeEventListener("close", done);
        const v = dlg.returnValue === "ok" ? input.value.trim() : "";
        declined = !v;
        resolve(v || null);
        setTimeout(showTokenButton);
      };
      dlg.addEventListener("close", done);
      dlg.returnValue = "";
      dlg.showModal();
      input.focus();
    }),
);

document.getElementById("token-cancel").addEventListener("click", () => dlg.close("cancel"));
document.getElementById("token-forget").addEventListener("click", () => {
  setToken(null);
  dlg.close("cancel");
  showTokenButton();
});
tokenBtn.addEventListener("click", () => {
  declined = false;
  input.value = "";
  dlg.returnValue = "";
  const done = () => {
    dlg.removeEventListener("close", done);
    if (dlg.returnValue === "ok" && input.value.trim()) setToken(input.value.trim());
    else declined = !token();
    showTokenButton();
    render();
  };
  dlg.addEventListener("close", done);
  dlg.showModal();
});

// --- start ----------------------------------------------------------------------------------------

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh(generation);
});
window.addEventListener("hashchange", () => {
  render();
  main.focus({ preventScroll: true });
});
showTokenButton();
if (!location.hash) history.replaceState(null, "", "#/topics");
render();

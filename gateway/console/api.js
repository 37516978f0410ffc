// The REST API client: the console calls only the public API (`/v1/…`, `/readyz`, `/metrics`),
// like any other client. Errors come back as ApiError carrying the problem document. When the
// API answers 401 the console asks for a bearer token (once, however many requests wait) and
// retries with it; the token lives in sessionStorage, for this tab only.

const TOKEN_KEY = "sluice.token";

export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.problem = { status, ...problem };
    this.status = status;
  }
  get code() {
    return this.problem.code;
  }
  /** The route does not exist on this gateway (a feature it does not have yet). */
  get missingRoute() {
    return this.status === 404 && this.problem.code === "not_found";
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let asking = null;
let askHandler = async () => null;

/** The function that asks the person for a token: `async (reason) => token | null`. */
export function onTokenNeeded(fn) {
  askHandler = fn;
}

function askToken(reason) {
  if (!asking) {
    asking = askHandler(reason).finally(() => {
      asking = null;
    });
  }
  return asking;
}

async function problemOf(resp) {
  const type = resp.headers.get("content-type") || "";
  const text = await resp.text();
  if (type.includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      /* fall through */
    }
  }
  return { title: resp.statusText || `HTTP ${resp.status}`, detail: text.slice(0, 500) };
}

/**
 * Call the API. `opts`: {method, query: {k: v} (null/undefined/"" left out), body (JSON),
 * text: true (answer as text), headers}.
 */
export async function call(path, opts = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: opts.text ? "text/plain" : "application/json", ...(opts.headers || {}) };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let resp;
    try {
      resp = await fetch(url, { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError({ title: "The gateway did not answer", detail: String(e.message || e), code: "network" }, 0);
    }
    if (resp.status === 401 && attempt < 3) {
      const problem = await problemOf(resp);
      const fresh = await askToken(problem.detail || "This gateway needs a bearer token.");
      if (fresh) {
        setToken(fresh);
        continue;
      }
      throw new ApiError(problem, 401);
    }
    if (!resp.ok) throw new ApiError(await problemOf(resp), resp.status);
    if (resp.status === 204) return null;
    if (opts.text) return resp.text();
    return resp.json();
  }
}

const enc = encodeURIComponent;

// --- one function per endpoint the console uses -----------------------------------------------

export const api = {
  topics: () => call("/v1/topics"),
  topic: (t) => call(`/v1/topics/${enc(t)}`),
  createTopic: (body) => call("/v1/topics", { method: "POST", body }),
  patchTopic: (t, body) => call(`/v1/topics/${enc(t)}`, { method: "PATCH", body }),
  deleteTopic: (t) => call(`/v1/topics/${enc(t)}`, { method: "DELETE" }),
  read: (t, p, query) => call(`/v1/topics/${enc(t)}/partitions/${p}/records`, { query }),
  offsetAt: (t, p, ts) => call(`/v1/topics/${enc(t)}/partitions/${p}/offsets`, { query: { timestamp_ms: ts } }),
  delayed: (t, limit = 100) => call(`/v1/topics/${enc(t)}/delayed`, { query: { limit } }),
  cancelDelayed: (t, id) => call(`/v1/topics/${enc(t)}/delayed/${enc(id)}`, { method: "DELETE" }),
  groups: () => call("/v1/groups"),
  group: (g) => call(`/v1/groups/${enc(g)}`),
  resetGroup: (g, body) => call(`/v1/groups/${enc(g)}/reset`, { method: "POST", body }),
  queues: () => call("/v1/queues"),
  queue: (q) => call(`/v1/queues/${enc(q)}`),
  queueRecord: (q, p, o) => call(`/v1/queues/${enc(q)}/records/${p}/${o}`),
  redrive: (q, body) => call(`/v1/queues/${enc(q)}/redrive`, { method: "POST", body }),
  transactions: (limit = 100) => call("/v1/transactions", { query: { limit } }),
  transaction: (id) => call(`/v1/transactions/${enc(id)}`),
  commitTransaction: (id) => call(`/v1/transactions/${enc(id)}/commit`, { method: "POST" }),
  rollbackTransaction: (id) => call(`/v1/transactions/${enc(id)}/rollback`, { method: "POST" }),
  readyz: () => call("/readyz", { text: true }),
  healthz: () => call("/healthz", { text: true }),
  metrics: () => call("/metrics", { text: true }),
};

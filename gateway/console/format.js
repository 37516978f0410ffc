// Pure formatting and arithmetic helpers (no DOM): numbers with thousands separators and units,
// times in the browser's zone, durations, binary values as hex, rates over a sliding window.
// The browser test calls these directly to check their output.

const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** 1234567 → "1,234,567" (in the browser's locale); null → "—". */
export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return nf.format(n);
}

/** 1 → "1 record", 1200 → "1,200 records". */
export function count(n, one, many = `${one}s`) {
  return `${num(n)} ${n === 1 ? one : many}`;
}

/** A rate with one decimal below 10, none above: 0.25 → "0.3", 1234.5 → "1,235". */
export function rate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Math.abs(n) < 10 ? nf1.format(n) : nf.format(n);
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 → "1.5 KiB", 10 → "10 B". */
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? nf.format(v) : nf1.format(v)} ${BYTE_UNITS[i]}`;
}

/** Milliseconds as a short human duration: 1500 → "1.5 s", 90061000 → "1 d 1 h". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const neg = ms < 0;
  let v = Math.abs(ms);
  let out;
  if (v < 1000) out = `${nf.format(v)} ms`;
  else if (v < 60_000) out = `${nf1.format(v / 1000)} s`;
  else {
    const parts = [];
    const units = [
      ["d", 86_400_000],
      ["h", 3_600_000],
      ["min", 60_000],
      ["s", 1000],
    ];
    for (const [u, size] of units) {
      const q = Math.floor(v / size);
      if (q > 0 || parts.length) {
        if (q > 0) parts.push(`${nf.format(q)} ${u}`);
        v -= q * size;
      }
      if (parts.length === 2) break;
    }
    out = parts.join(" ");
  }
  return neg ? `-${out}` : out;
}

/** ISO 8601 in UTC, for `title` and `datetime` attributes. */
export function iso(ms) {
  return new Date(ms).toISOString();
}

const dtf = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A time in the browser's zone, e.g. "Dec 2, 2026, 09:14:03". */
export function localTime(ms) {
  if (ms === null || ms === undefined) return "—";
  return dtf.format(new Date(ms));
}

/** "3 min ago" / "in 5 s" relative to `now`. */
export function ago(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return "—";
  const d = now - ms;
  if (Math.abs(d) < 1000) return "just now";
  return d > 0 ? `${duration(d)} ago` : `in ${duration(-d)}`;
}

/** The value of a `<input type="datetime-local">` (local wall time) → epoch ms, or null. */
export function parseLocal(value) {
  if (!value) return null;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? null : t;
}

/** Epoch ms → the value a `<input type="datetime-local" step="1">` shows (local wall time). */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Standard base64 → bytes. */
export function b64bytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Bytes → "de ad be ef" (at most `max` bytes, then "…"). */
export function hex(bytesArr, max = Infinity) {
  const n = Math.min(bytesArr.length, max);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(bytesArr[i].toString(16).padStart(2, "0"));
  return parts.join(" ") + (bytesArr.length > n ? " …" : "");
}

/** A classic hex dump: offset, 16 bytes in hex, their printable ASCII. */
export function hexdump(bytesArr, max = 4096) {
  const lines = [];
  const n = Math.min(bytesArr.length, max);
  for (let off = 0; off < n; off += 16) {
    const row = bytesArr.subarray(off, Math.min(off + 16, n));
    const hx = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const asc = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hx.padEnd(47)}  ${asc}`);
  }
  if (bytesArr.length > n) lines.push(`… ${num(bytesArr.length - n)} more bytes`);
  return lines.join("\n");
}

const enc = new TextEncoder();

/** Bytes of a record as stored, roughly: key + value + header names and values. */
export function recordBytes(r) {
  const len = (s, b64) => (b64 != null ? Math.floor((b64.length * 3) / 4) - (b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0) : s != null ? enc.encode(s).length : 0);
  let n = len(r.key, r.key_b64) + len(r.value, r.value_b64);
  for (const [k, v] of Object.entries(r.headers || {})) n += enc.encode(k).length + enc.encode(v).length;
  for (const [k, v] of Object.entries(r.headers_b64 || {})) n += enc.encode(k).length + len(null, v);
  return n;
}

/** Retention in ms → "7 d", or "forever" when null. */
export function retention(ms) {
  return ms === null || ms === undefined ? "forever" : duration(ms);
}

/**
 * A sliding window of counter samples → rate per second over the window.
 * `push(t, value)` records a cumulative counter at time t (ms); `perSecond()` is the increase
 * between the oldest and newest sample within `windowMs`, divided by their time apart.
 */
export class Window {
  constructor(windowMs = 60_000) {
    this.windowMs = windowMs;
    this.samples = [];
  }
  push(t, value) {
    const last = this.samples[this.samples.length - 1];
    // A counter that went down (topic re-created, gateway restarted) starts a new window.
    if (last && value < last.value) this.samples = [];
    this.samples.push({ t, value });
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();
  }
  perSecond() {
    if (this.samples.length < 2) return null;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    if (b.t <= a.t) return null;
    return ((b.value - a.value) * 1000) / (b.t - a.t);
  }
  span() {
    if (this.samples.length < 2) return 0;
    return this.samples[this.samples.length - 1].t - this.samples[0].t;
  }
}

/** Parse Prometheus text format into [{name, labels: {}, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

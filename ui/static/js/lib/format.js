// Formatting of times, durations and identifiers for display.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });

/** "3 min ago", "in 2 hr" */
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const diff = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return diff < 0 ? "just now" : "in a few sec";
  const units = [
    [60, "second", 1],
    [3600, "minute", 60],
    [86400, "hour", 3600],
    [86400 * 30, "day", 86400],
    [86400 * 365, "month", 86400 * 30],
    [Infinity, "year", 86400 * 365],
  ];
  for (const [limit, unit, div] of units) {
    if (abs < limit) return rtf.format(Math.round(diff / div), unit);
  }
  return "";
}

const full = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export function absolute(iso, timeZone) {
  if (!iso) return "";
  const d = new Date(iso);
  if (!timeZone) return full.format(d);
  try {
    return new Intl.DateTimeFormat(undefined, {
      weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      second: d.getUTCSeconds() ? "2-digit" : undefined, timeZone, timeZoneName: "short",
    }).format(d);
  } catch {
    return full.format(d);
  }
}

const short = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
export const shortTime = (iso) => (iso ? short.format(new Date(iso)) : "");

/** 850 ms, 4.2 s, 3 m 12 s, 2 h 5 m */
export function duration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return "";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

/** The same normalization as the server's CodeIdentifier::parse. */
export function slugify(raw) {
  let out = "";
  for (const ch of raw.trim().toLowerCase()) {
    let c = null;
    if (/[a-z0-9_]/.test(ch)) c = ch;
    else if (/[-./:\s]/.test(ch)) c = "-";
    if (c === null) continue;
    if (c === "-" && (out === "" || out.endsWith("-"))) continue;
    out += c;
  }
  return out.replace(/-+$/, "").slice(0, 100);
}

export const STATUS_LABEL = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  canceled: "Canceled",
  timed_out: "Timed out",
  skipped: "Skipped",
  stopped: "Stopped",
  connecting: "Connecting",
};

export const isActive = (status) => status === "queued" || status === "running";

export const TYPE_LABEL = { bash: "Bash", node: "Node.js", browser: "Browser" };
export const RUNNER_LABEL = { host: "host", isolated: "isolated", browser: "in page" };

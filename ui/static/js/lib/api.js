// The admin API, as the page uses it. Errors become ApiError with the server's code, message
// and field (e.g. "cron", "env[2].key"), so forms can show them next to the right input.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

const ADMIN = "/api/admin";
const BASE = `${ADMIN}/scripts`;

/** The response when it is a success; an ApiError with the server's message otherwise. */
async function send(method, url, body, { signal } = {}) {
  const opts = { method, headers: { Accept: "application/json" }, signal, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server could not be reached. Check the connection and try again.");
  }
  if (resp.ok) return resp;
  let err = null;
  try {
    err = JSON.parse(await resp.text())?.error;
  } catch {
    err = null;
  }
  throw new ApiError(resp.status, err?.code || "http_" + resp.status, err?.message || `Request failed (${resp.status})`, err?.field);
}

async function json(resp) {
  if (resp.status === 204) return null;
  const text = await resp.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

const request = async (method, path, body, opts) => json(await send(method, BASE + path, body, opts));

/** A download the server names (Content-Disposition), as a blob and that name. */
async function download(method, path, body, fallbackName) {
  const resp = await send(method, BASE + path, body);
  const named = /filename="?([^";]+)"?/.exec(resp.headers.get("Content-Disposition") || "");
  return { blob: await resp.blob(), name: named ? named[1] : fallbackName };
}

const qs = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
};

export const api = {
  listScripts: (q, type, signal) => request("GET", "" + qs({ q, type }), undefined, { signal }),
  getScript: (id) => request("GET", `/${encodeURIComponent(id)}`),
  createScript: (doc) => request("POST", "", doc),
  updateScript: (id, doc) => request("PUT", `/${encodeURIComponent(id)}`, doc),
  deleteScript: (id) => request("DELETE", `/${encodeURIComponent(id)}`),
  run: (id, input) => request("POST", `/${encodeURIComponent(id)}/run`, input === undefined ? {} : { input }),
  listRuns: (scriptId, before, limit = 20) => request("GET", "/runs" + qs({ scriptId, before, limit })),
  /** Every run matching `filters` ({scriptId, status, trigger, from, to}), newest first. */
  searchRuns: (filters, before, limit = 50) => request("GET", "/runs" + qs({ ...filters, before, limit })),
  listNodes: () => request("GET", "/nodes"),
  runStats: (hours) => request("GET", "/runs/stats" + qs({ hours })),
  getRun: (runId) => request("GET", `/runs/${encodeURIComponent(runId)}`),
  /** A page of a run's stored lines: {after} or {before}, and a limit. */
  runLines: (runId, query) => request("GET", `/runs/${encodeURIComponent(runId)}/lines` + qs(query)),
  searchLog: (runId, q, after, limit) => request("GET", `/runs/${encodeURIComponent(runId)}/log/search` + qs({ q, after, limit })),
  deliveries: (runId) => request("GET", `/runs/${encodeURIComponent(runId)}/deliveries`),
  testNotifications: (id) => request("POST", `/${encodeURIComponent(id)}/notifications/test`),
  cancelRun: (runId) => request("POST", `/runs/${encodeURIComponent(runId)}/cancel`),
  schedulePreview: (cron, timezone, signal) =>
    request("GET", "/schedule-preview" + qs({ cron, timezone, count: 5 }), undefined, { signal }),
  createToken: (id) => request("POST", `/${encodeURIComponent(id)}/api-token`),
  revokeToken: (id) => request("DELETE", `/${encodeURIComponent(id)}/api-token`),
  listVersions: (id, before, limit = 50) => request("GET", `/${encodeURIComponent(id)}/versions` + qs({ before, limit })),
  /** What changed from version `from` to `to` (the current one when left out). */
  diffVersions: (id, from, to) => request("GET", `/${encodeURIComponent(id)}/versions/diff` + qs({ from, to })),
  restoreVersion: (id, version, message) =>
    request("POST", `/${encodeURIComponent(id)}/versions/${version}/restore`, message ? { message } : undefined),
  /** A tar archive of the scripts (all when `scripts` is empty); a passphrase seals their secrets. */
  exportScripts: (scripts, passphrase) =>
    download("POST", "/export", { scripts, ...(passphrase ? { passphrase } : {}) }, "scriptd-scripts.tar"),
  /** files: [{name, content}]; what would change (dryRun) or what changed. */
  importScripts: (files, { dryRun, prune, passphrase }) =>
    request("POST", "/import", { files, dryRun, prune, ...(passphrase ? { passphrase } : {}) }),
  /** A page of the audit log, newest first; filters: {actor, action, target, from, to}. */
  audit: async (filters, before, limit = 50) => json(await send("GET", `${ADMIN}/audit` + qs({ ...filters, before, limit }))),
};

/** The message without a leading "field: ", for display next to that field. */
export function fieldMessage(err) {
  const prefix = err.field ? `${err.field}: ` : "";
  const msg = err.message || "";
  const text = prefix && msg.startsWith(prefix) ? msg.slice(prefix.length) : msg;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const streamUrl = (runId) => `${BASE}/runs/${encodeURIComponent(runId)}/stream`;
export const logUrl = (runId) => `${BASE}/runs/${encodeURIComponent(runId)}/log`;
export const eventsUrl = () => `${BASE}/events`;
export const exportUrl = (id) => `${BASE}/${encodeURIComponent(id)}/export`;
export const auditExportUrl = (filters) => `${ADMIN}/audit/export` + qs(filters);

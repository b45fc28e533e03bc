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

const BASE = "/api/admin/scripts";

async function request(method, path, body, { signal } = {}) {
  const opts = { method, headers: { Accept: "application/json" }, signal, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(BASE + path, opts);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server could not be reached. Check the connection and try again.");
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = data && data.error;
    throw new ApiError(resp.status, err?.code || "http_" + resp.status, err?.message || `Request failed (${resp.status})`, err?.field);
  }
  return data;
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

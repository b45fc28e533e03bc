// The audit log, newest first: who did what to which script, token or run, from where. Filters
// (action, actor, target, time range) are kept in the URL so a view can be shared; "Load older"
// follows the cursor; the export downloads every matching entry as JSON lines.
import { h, icon, mount, debounce } from "../lib/dom.js";
import { api, auditExportUrl } from "../lib/api.js";
import { absolute, relative, shortTime } from "../lib/format.js";
import { summaryText } from "./summary.js";

const root = document.getElementById("audit");
const scriptsPath = root.dataset.scriptsPath;
const PAGE = 50;
const ACTIONS = [
  "script.create", "script.update", "script.delete", "script.enable", "script.disable", "script.restore",
  "token.create", "token.rotate", "token.revoke", "run.start", "run.cancel", "scripts.import", "scripts.export",
  "notification.test", "master_key.rotate", "settings.change", "login.failed",
];

const state = { entries: [], next: null, ticket: 0, scripts: new Map() };

const controls = {
  action: h("select.input#filter-action", { name: "action", "aria-label": "Action" },
    h("option", { value: "" }, "All actions"), ACTIONS.map((a) => h("option", { value: a }, a))),
  actor: h("input.input#filter-actor", { type: "search", name: "actor", placeholder: "Actor (admin:admin)", "aria-label": "Actor", autocomplete: "off" }),
  target: h("input.input#filter-target", { type: "search", name: "target", placeholder: "Target (script:, script:backup)", "aria-label": "Target", autocomplete: "off" }),
  from: h("input.input#filter-from", { type: "datetime-local", name: "from", "aria-label": "From" }),
  to: h("input.input#filter-to", { type: "datetime-local", name: "to", "aria-label": "To" }),
};
const body = h("tbody");
const table = h("div.table-wrap.audit-wrap", h("table.table.audit-table", { "data-testid": "audit" },
  h("thead", h("tr", ["Time", "Actor", "Client", "Action", "Target", "Details"].map((t) => h("th", { scope: "col" }, t)))),
  body));
const moreBtn = h("button.btn.btn-ghost.btn-sm.more", { type: "button", hidden: true, onclick: () => more() }, "Load older entries");
const exportLink = h("a.btn.btn-sm", { href: auditExportUrl({}), download: "", "data-testid": "audit-export", title: "Every entry matching the filters, one JSON object per line" },
  icon("download"), "Export JSON lines");
const summary = h("span.muted", { "aria-live": "polite" });

/** The filters as the API takes them (datetime-local values are local times). */
function filters() {
  const iso = (v) => (v ? new Date(v).toISOString() : undefined);
  return {
    action: controls.action.value || undefined,
    actor: controls.actor.value.trim() || undefined,
    target: controls.target.value.trim() || undefined,
    from: iso(controls.from.value),
    to: iso(controls.to.value),
  };
}

/** A script target links to its script while it exists under that code identifier. */
function target(t) {
  const id = t.startsWith("script:") ? state.scripts.get(t.slice(7)) : null;
  return id ? h("a", { href: `${scriptsPath}#s/${encodeURIComponent(id)}` }, t) : t;
}

function row(e) {
  return h("tr", { "data-action": e.action, "data-id": e.id },
    h("td.audit-time", h("span", { title: absolute(e.at) }, shortTime(e.at)), h("div.sub", relative(e.at))),
    h("td.mono", e.actor),
    h("td.mono", e.client || "—"),
    h("td", h("code.audit-action", e.action)),
    h("td.audit-target.mono", target(e.target)),
    h("td.audit-summary", summaryText(e.summary),
      e.count > 1 ? h("span.pill.audit-count", { title: `${e.count} times` }, `×${e.count}`) : null));
}

function render() {
  moreBtn.hidden = !state.next;
  summary.textContent = state.entries.length ? `${state.entries.length}${state.next ? "+" : ""} entries` : "";
  mount(body, state.entries.length ? state.entries.map(row)
    : h("tr", h("td.empty-small", { colspan: 6 }, "No entry matches these filters.")));
}

/** Keeps the filters in the address, so the view can be bookmarked or shared. */
function remember() {
  const params = new URLSearchParams();
  for (const c of Object.values(controls)) if (c.value) params.set(c.name, c.value);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
  exportLink.href = auditExportUrl(filters());
}

async function load() {
  remember();
  // Filters change faster than answers come: only the latest request's answer is shown.
  const ticket = ++state.ticket;
  try {
    const page = await api.audit(filters(), null, PAGE);
    if (ticket !== state.ticket) return;
    state.entries = page.entries;
    state.next = page.nextBefore;
    render();
  } catch (e) {
    if (ticket === state.ticket) mount(body, h("tr", h("td.empty-small.error-text", { colspan: 6 }, e.message)));
  }
}

async function more() {
  if (!state.next) return;
  moreBtn.disabled = true;
  const ticket = state.ticket;
  try {
    const page = await api.audit(filters(), state.next, PAGE);
    if (ticket !== state.ticket) return;
    state.entries.push(...page.entries);
    state.next = page.nextBefore;
    render();
  } finally {
    moreBtn.disabled = false;
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  const typed = debounce(() => load(), 300);
  for (const c of Object.values(controls)) {
    if (params.has(c.name)) c.value = params.get(c.name);
    const text = c.type === "search";
    c.addEventListener(text ? "input" : "change", text ? typed : () => load());
  }
  mount(root,
    h("div.card.filters", icon("filter"), ...Object.values(controls),
      h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: () => {
        for (const c of Object.values(controls)) c.value = "";
        load();
      } }, "Clear"), summary, h("span.grow"), exportLink),
    h("section.card.audit-card", table, moreBtn));
  try {
    state.scripts = new Map((await api.listScripts()).map((s) => [s.codeIdentifier, s.id]));
  } catch { /* targets then show as plain text */ }
  await load();
}

start();

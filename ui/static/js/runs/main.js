// All runs across scripts, newest first: filters (script, status, trigger, time range) kept in
// the URL so a view can be shared, cursor pagination, and live updates from the run events
// stream. A row opens the run on its script's page, with its output.
import { h, icon, mount, debounce } from "../lib/dom.js";
import { api } from "../lib/api.js";
import { onRunChange } from "../lib/run-events.js";
import { absolute, duration, relative, STATUS_LABEL } from "../lib/format.js";

const root = document.getElementById("runs");
const scriptsPath = root.dataset.scriptsPath;
const PAGE = 50;
const STATUSES = ["queued", "running", "succeeded", "failed", "canceled", "timed_out", "skipped"];
const TRIGGERS = ["manual", "schedule", "api"];

const state = { runs: [], next: null, names: new Map(), ticket: 0, meanwhile: null };

const select = (name, label, options) =>
  h(`select.input#filter-${name}`, { name, "aria-label": label },
    h("option", { value: "" }, label), options.map(([value, text]) => h("option", { value }, text)));

const controls = {
  script: select("scriptId", "All scripts", []),
  status: select("status", "All statuses", STATUSES.map((s) => [s, STATUS_LABEL[s] || s])),
  trigger: select("trigger", "All triggers", TRIGGERS.map((t) => [t, t])),
  from: h("input.input#filter-from", { type: "datetime-local", name: "from", "aria-label": "From" }),
  to: h("input.input#filter-to", { type: "datetime-local", name: "to", "aria-label": "To" }),
};
const list = h("div.run-list.all-runs", { role: "list", "data-testid": "all-runs" });
const moreBtn = h("button.btn.btn-ghost.btn-sm.more", { type: "button", hidden: true }, "Load older runs");
const summary = h("span.muted", { "aria-live": "polite" });

/** The filters as the API takes them (datetime-local values are local times). */
function filters() {
  const iso = (v) => (v ? new Date(v).toISOString() : undefined);
  return {
    scriptId: controls.script.value || undefined,
    status: controls.status.value || undefined,
    trigger: controls.trigger.value || undefined,
    from: iso(controls.from.value),
    to: iso(controls.to.value),
  };
}

function matches(run) {
  const f = filters();
  if (f.scriptId && run.scriptId !== f.scriptId) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.trigger && run.trigger !== f.trigger) return false;
  if (f.from && run.queuedAt < f.from) return false;
  return !f.to;
}

function row(r) {
  const started = r.startedAt || r.queuedAt;
  const href = `${scriptsPath}#s/${encodeURIComponent(r.scriptId)}/runs/${encodeURIComponent(r.id)}`;
  return h("a.run-row.run-link", { role: "listitem", href, "data-run-id": r.id, "data-status": r.status },
    h(`span.badge.badge-${r.status}`, STATUS_LABEL[r.status] || r.status),
    h("span.run-script", state.names.get(r.scriptId) || r.scriptId),
    h("span.trigger", r.trigger),
    h("span.when", { title: absolute(started) }, relative(started)),
    h("span.mono", duration(r.durationMs)),
    h("span.mono", r.exitCode ?? (r.signal ? `sig ${r.signal}` : "—")));
}

function render() {
  moreBtn.hidden = !state.next;
  summary.textContent = state.runs.length ? `${state.runs.length}${state.next ? "+" : ""} runs` : "";
  mount(list, state.runs.length ? state.runs.map(row) : h("div.empty-small", "No run matches these filters."));
}

/** Keeps the filters in the address, so the view can be bookmarked or shared. */
function remember() {
  const params = new URLSearchParams();
  for (const c of Object.values(controls)) if (c.value) params.set(c.name, c.value);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

async function load() {
  remember();
  // Filters change faster than answers come: only the latest request's answer is shown.
  const ticket = ++state.ticket;
  // Changes that come while the page is asked for may be newer than its answer: they are
  // applied again on top of it.
  state.meanwhile = [];
  try {
    const page = await api.searchRuns(filters(), null, PAGE);
    if (ticket !== state.ticket) return;
    state.runs = page.runs;
    state.next = page.nextBefore;
    const meanwhile = state.meanwhile;
    state.meanwhile = null;
    for (const change of meanwhile) apply(change);
    render();
  } catch (e) {
    mount(list, h("div.empty-small.error-text", e.message));
  }
}

async function more() {
  if (!state.next) return;
  moreBtn.disabled = true;
  try {
    const ticket = state.ticket;
    const page = await api.searchRuns(filters(), state.next, PAGE);
    if (ticket !== state.ticket) return;
    state.runs.push(...page.runs);
    state.next = page.nextBefore;
    render();
  } finally {
    moreBtn.disabled = false;
  }
}

/** A run changed: update its row, or add it on top when it is new and matches. */
function changed(change) {
  if (!change) return load();
  state.meanwhile?.push(change);
  if (apply(change)) render();
}

/** Applies one change to the runs shown; whether anything changed. */
function apply(change) {
  const run = change.run;
  const at = state.runs.findIndex((r) => r.id === run.id);
  // A run only moves forward (queued, running, ended): an older change is no news.
  const stage = (status) => (status === "queued" ? 0 : status === "running" ? 1 : 2);
  if (at >= 0 && stage(run.status) < stage(state.runs[at].status)) return false;
  if (at >= 0) {
    if (matches(run)) state.runs[at] = run;
    else state.runs.splice(at, 1);
  } else if (matches(run) && (!state.runs.length || run.id > state.runs[0].id)) {
    state.runs.unshift(run);
  } else {
    return false;
  }
  return true;
}

async function start() {
  const params = new URLSearchParams(location.search);
  let scripts = [];
  try {
    scripts = await api.listScripts();
  } catch { /* the list below says what failed */ }
  state.names = new Map(scripts.map((s) => [s.id, s.name]));
  for (const s of [...scripts].sort((a, b) => a.name.localeCompare(b.name))) {
    controls.script.append(h("option", { value: s.id }, s.name));
  }
  for (const c of Object.values(controls)) {
    if (params.has(c.name)) c.value = params.get(c.name);
    c.addEventListener("change", () => load());
  }
  moreBtn.addEventListener("click", () => more());
  mount(root,
    h("div.card.filters", icon("filter"), ...Object.values(controls),
      h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: () => {
        for (const c of Object.values(controls)) c.value = "";
        load();
      } }, "Clear"), summary),
    h("section.card.all-runs-card",
      h("div.run-list-head.all-runs-head", h("span", "Status"), h("span", "Script"), h("span", "Trigger"),
        h("span", "Started"), h("span", "Duration"), h("span", "Exit")),
      list, moreBtn));
  await load();
  const refresh = debounce(() => load(), 250);
  onRunChange((change) => (change ? changed(change) : refresh()));
}

start();

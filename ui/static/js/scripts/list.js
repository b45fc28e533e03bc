// The list of scripts: search, type filter, schedule with next run, last run status. Rows are
// links, so they open with a click, Enter, or in a new tab; "/" focuses the search box, "n" starts
// a new script, arrow keys move between rows. Export and Import move scripts as TOML files.
import { h, icon, mount, debounce, toast } from "../lib/dom.js";
import { api } from "../lib/api.js";
import { onRunChange } from "../lib/run-events.js";
import { exportAll, importFiles } from "./transfer.js";
import { absolute, relative, STATUS_LABEL, TYPE_LABEL, RUNNER_LABEL, isActive } from "../lib/format.js";

const TYPE_ICON = { bash: "terminal", node: "brand-nodejs", browser: "world" };

export class ScriptList {
  constructor(root, { initialQuery = "", initialType = "" } = {}) {
    this.root = root;
    this.search = h("input.input.search#script-search", { type: "search", placeholder: "Search scripts…", value: initialQuery, "aria-label": "Search scripts", autocomplete: "off" });
    this.type = h("select.input.type-filter", { "aria-label": "Filter by type" },
      h("option", { value: "" }, "All types"), ["bash", "node", "browser"].map((t) => h("option", { value: t }, TYPE_LABEL[t])));
    this.type.value = initialType;
    this.count = h("span.count");
    this.body = h("div.card.list-card");
    this.el = h("div.list-view",
      h("div.page-head",
        h("div.crumbs", h("h1.title", "Scripts"), this.count),
        h("div.actions",
          h("label.search-box", icon("search"), this.search, h("kbd", "/")),
          this.type,
          h("button.btn", { type: "button", title: "Export every script as TOML files", "data-testid": "export-all", onclick: () => exportAll() }, icon("download"), "Export"),
          h("button.btn", { type: "button", title: "Import scripts from TOML files", "data-testid": "import", onclick: () => importFiles({ onImported: () => this.load(true) }) }, icon("file-text"), "Import"),
          h("a.btn.btn-primary#new-script", { href: "#new", title: "New script (N)" }, icon("plus"), "New script"))),
      this.body);
    mount(root, this.el);
    const reload = debounce(() => this.load(), 200);
    this.search.addEventListener("input", reload);
    this.type.addEventListener("change", () => this.load());
    this.onKey = (e) => this.keydown(e);
    document.addEventListener("keydown", this.onKey);
    this.load();
    // Last runs change as runs move; a slow poll covers an event stream that is down.
    const refresh = debounce(() => this.load(true), 200);
    this.stopEvents = onRunChange(() => refresh());
    this.poll = setInterval(() => { if (!document.hidden) this.load(true); }, 30000);
  }

  keydown(e) {
    if (e.target.closest?.("dialog")) return;
    const typing = e.target.closest?.("input, textarea, select, [contenteditable]");
    if (e.key === "/" && !typing) {
      e.preventDefault();
      this.search.focus();
      this.search.select();
    } else if ((e.key === "n" || e.key === "N") && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      location.hash = "#new";
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const links = [...this.body.querySelectorAll("a.row-link")];
      if (!links.length) return;
      const i = links.indexOf(document.activeElement);
      if (i < 0 && e.target !== this.search) return;
      e.preventDefault();
      const next = e.key === "ArrowDown" ? Math.min(links.length - 1, i + 1) : Math.max(0, i - 1);
      links[next].focus();
    } else if (e.key === "Escape" && e.target === this.search && this.search.value) {
      this.search.value = "";
      this.load();
    }
  }

  async load(background = false) {
    const q = this.search.value.trim();
    const type = this.type.value;
    this.abort?.abort();
    const ctrl = (this.abort = new AbortController());
    if (!background && !this.loaded) mount(this.body, h("div.loading-row", icon("loader-2", "spin"), "Loading scripts…"));
    try {
      const scripts = await api.listScripts(q, type, ctrl.signal);
      if (ctrl.signal.aborted) return;
      this.loaded = true;
      this.render(scripts, q || type);
    } catch (e) {
      if (e.name === "AbortError") return;
      if (!background) mount(this.body, h("div.empty-state", icon("alert-triangle", "big"), h("h2", "Could not load scripts"), h("p.muted", e.message)));
    }
  }

  render(scripts, filtered) {
    // Background refreshes redraw only when something changed (or relative times moved on).
    const sig = JSON.stringify([scripts, filtered, Math.floor(Date.now() / 30000)]);
    if (sig === this.sig) return;
    this.sig = sig;
    mount(this.count, scripts.length ? `${scripts.length}` : "");
    if (!scripts.length) {
      mount(this.body, filtered
        ? h("div.empty-state", icon("search", "big"), h("h2", "No scripts match"), h("p.muted", "Try another search or type."))
        : h("div.empty-state", icon("terminal-2", "big"), h("h2", "No scripts yet"),
            h("p.muted", "Scripts run Bash or Node.js on this server, or JavaScript in your browser — by hand, on a schedule or from an HTTP call."),
            h("a.btn.btn-primary", { href: "#new" }, icon("plus"), "Create your first script")));
      return;
    }
    const focusedId = document.activeElement?.closest?.("tr")?.dataset.id;
    const table = h("table.table.scripts-table",
      h("thead", h("tr", ["Name", "Type", "Schedule", "Last run", "Status"].map((t) => h("th", { scope: "col" }, t)), h("th", h("span.offscreen", "Actions")))),
      h("tbody", scripts.map((s) => this.row(s))));
    mount(this.body, table);
    if (focusedId) this.body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"] a.row-link`)?.focus();
  }

  row(s) {
    const sched = s.schedule;
    const last = s.lastRun;
    const when = last ? last.startedAt || last.queuedAt : null;
    return h("tr", { "data-id": s.id, class: s.enabled ? "" : "is-disabled" },
      h("td.name-cell",
        h("a.row-link", { href: `#s/${encodeURIComponent(s.id)}` }, h("span.name", s.name)),
        h("div.code-id.mono", s.codeIdentifier),
        s.description ? h("div.desc", s.description.split("\n")[0]) : null),
      h("td", h("span.type", icon(TYPE_ICON[s.type]), TYPE_LABEL[s.type], h("span.muted", ` · ${RUNNER_LABEL[s.runner]}`)),
        s.runner === "host" ? h("span.host-flag", { title: "Runs with the server's privileges" }, icon("alert-triangle")) : null),
      h("td", sched.enabled && sched.cron
        ? [h("code.cron", sched.cron), sched.timezone !== "UTC" ? h("span.muted.tz", sched.timezone) : null,
           sched.nextRunAt ? h("div.sub", { title: absolute(sched.nextRunAt) }, icon("clock"), "next ", relative(sched.nextRunAt)) : null]
        : h("span.muted", sched.cron ? "paused" : "—"),
        s.apiTrigger?.enabled ? h("div.sub", icon("api"), "API trigger") : null),
      h("td", last
        ? [h(`span.badge.badge-${last.status}`, isActive(last.status) ? icon("loader-2", "spin") : null, STATUS_LABEL[last.status] || last.status),
           h("div.sub", { title: absolute(when) }, relative(when), last.trigger !== "manual" ? ` · ${last.trigger}` : "")]
        : h("span.muted", "never")),
      h("td", s.enabled ? h("span.pill.pill-ok", icon("check"), "Enabled") : h("span.pill.pill-muted", "Disabled")),
      h("td.row-actions", s.type === "browser" || !s.enabled ? null
        : h("button.btn.btn-sm.row-run", { type: "button", title: `Run ${s.name} now`, "aria-label": `Run ${s.name}`, onclick: (e) => this.run(s, e.currentTarget) }, icon("player-play"), "Run")));
  }

  /** Starts a run from the list and opens it, so its output streams right away. */
  async run(s, button) {
    button.disabled = true;
    try {
      const { runId } = await api.run(s.id);
      location.hash = `#s/${encodeURIComponent(s.id)}/runs/${encodeURIComponent(runId)}`;
    } catch (e) {
      toast(e.message, "error");
      button.disabled = false;
    }
  }

  destroy() {
    clearInterval(this.poll);
    this.stopEvents?.();
    this.abort?.abort();
    document.removeEventListener("keydown", this.onKey);
  }
}

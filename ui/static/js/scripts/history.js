// Run history of one script: newest first, paginated with "Load more"; a row opens that run's
// output (replayed from the store) and links its full log.
import { h, icon, mount } from "../lib/dom.js";
import { api, logUrl } from "../lib/api.js";
import { absolute, duration, relative, STATUS_LABEL, isActive } from "../lib/format.js";

const PAGE = 20;
const TRIGGER_ICON = { manual: "player-play", schedule: "calendar-time", api: "api" };

export class RunHistory {
  constructor({ scriptId, onOpen, onChange }) {
    this.scriptId = scriptId;
    this.onOpen = onOpen;
    this.onChange = onChange;
    this.runs = [];
    this.ticket = 0;
    this.selected = null;
    this.list = h("div.run-list", { role: "list", "data-testid": "run-history" });
    this.moreBtn = h("button.btn.btn-ghost.btn-sm.more", { type: "button", hidden: true, onclick: () => this.more() }, "Load older runs");
    this.refreshBtn = h("button.btn.btn-icon.btn-ghost", { type: "button", title: "Refresh", "aria-label": "Refresh run history", onclick: () => this.load() }, icon("refresh"));
    this.el = h("section.card.history",
      h("header.card-head", h("h2.card-title", icon("history"), "Run history"), h("span.grow"), this.refreshBtn),
      h("div.run-list-head", h("span", "Status"), h("span", "Trigger"), h("span", "Started"), h("span", "Duration"), h("span", "Exit"), h("span")),
      this.list, this.moreBtn);
  }

  async load() {
    if (!this.scriptId) {
      mount(this.list, h("div.empty-small", "Runs appear here once the script is saved and run."));
      return;
    }
    // A refresh started before older runs were loaded would drop them: only the latest
    // request's answer counts.
    const ticket = ++this.ticket;
    try {
      // A refresh keeps the older pages the user loaded (up to the API's 200) in view.
      const limit = Math.min(200, Math.max(PAGE, this.runs.length));
      const res = await api.listRuns(this.scriptId, null, limit);
      if (ticket !== this.ticket) return;
      this.runs = res.runs;
      this.next = res.nextBefore;
      this.render();
    } catch (e) {
      mount(this.list, h("div.empty-small.error-text", e.message));
    }
  }

  async more() {
    if (!this.next) return;
    this.moreBtn.disabled = true;
    const ticket = ++this.ticket;
    try {
      const res = await api.listRuns(this.scriptId, this.next, PAGE);
      if (ticket !== this.ticket) return;
      this.runs.push(...res.runs);
      this.next = res.nextBefore;
      this.render();
    } finally {
      this.moreBtn.disabled = false;
    }
  }

  /** The most recent run that is still queued or running, if any. */
  activeRun() {
    return this.runs.find((r) => isActive(r.status)) || null;
  }

  select(runId) {
    this.selected = runId;
    for (const row of this.list.children) row.classList.toggle("selected", row.dataset.runId === runId);
  }

  render() {
    this.onChange?.();
    this.moreBtn.hidden = !this.next;
    if (!this.runs.length) {
      mount(this.list, h("div.empty-small", "No runs yet. Press Run (Ctrl+Enter) to start one."));
      return;
    }
    mount(this.list, this.runs.map((r) => {
      const started = r.startedAt || r.queuedAt;
      const row = h("div.run-row", { role: "listitem", "data-run-id": r.id, "data-status": r.status },
        h("button.run-open", { type: "button", title: `Open run ${r.id}`, onclick: () => this.onOpen(r.id) },
          h(`span.badge.badge-${r.status}`, isActive(r.status) ? icon("loader-2", "spin") : null, STATUS_LABEL[r.status] || r.status),
          // A retry shows its place in the chain where the trigger would be (the column is narrow).
          r.meta?.retry
            ? h("span.trigger", { title: `${r.trigger}: attempt ${r.meta.retry.attempt} of ${r.meta.retry.attempts}, a retry` },
              icon("rotate"), h("span.attempt", `${r.meta.retry.attempt}/${r.meta.retry.attempts}`))
            : h("span.trigger", icon(TRIGGER_ICON[r.trigger] || "bolt"), r.trigger),
          h("span.when", { title: absolute(started) }, relative(started)),
          h("span.mono", duration(r.durationMs)),
          h("span.mono", r.exitCode ?? (r.signal ? `sig ${r.signal}` : "—"))),
        h("a.btn.btn-icon.btn-ghost", { href: logUrl(r.id), download: "", title: "Download full log", "aria-label": "Download full log" }, icon("download")));
      if (r.id === this.selected) row.classList.add("selected");
      // Retries sit indented under the run they retry (rows are newest first).
      if (r.meta?.retry) row.classList.add("is-retry");
      return row;
    }));
  }
}

// The live output panel: a terminal-like view fed line by line. Lines are queued and drawn once
// per animation frame; only the last `cap` lines stay in the DOM (the full log is a download
// away); auto-scroll follows the end until the user scrolls up, and resumes at the bottom.
// Once a run has finished, the panel pages through its stored log instead: scrolling up loads
// earlier lines, a search match opens the log around it (see LogPager).
import { h, icon, mount } from "../lib/dom.js";
import { duration, STATUS_LABEL } from "../lib/format.js";
import { AnsiRenderer, lastSegment } from "./ansi.js";
import { LogPager } from "./log-pager.js";
import { LogSearch } from "./log-search.js";

export const DEFAULT_CAP = 5000;

export class OutputView {
  constructor({ cap = DEFAULT_CAP } = {}) {
    this.cap = cap;
    this.pending = [];
    this.frame = 0;
    this.stick = true;
    this.total = 0;
    this.unseen = 0;
    this.startedAt = null;
    this.finalDuration = null;
    this.ticker = 0;

    this.badge = h("span.badge.badge-idle", { "data-testid": "run-status" }, "Idle");
    this.meta = h("span.out-meta");
    this.conn = h("span.out-conn", { hidden: true });
    this.download = h("a.btn.btn-ghost.btn-xs", { hidden: true, download: "", title: "Download the full log" }, icon("download"), "Log");
    this.searchBtn = h("button.btn.btn-ghost.btn-xs", { type: "button", hidden: true, "aria-expanded": "false", onclick: () => this.toggleSearch() }, icon("search"), "Search");
    this.title = h("span.out-title", "Output");
    this.lines = h("div.out-lines", { role: "log", "aria-live": "off", "aria-label": "Script output" });
    this.empty = h("div.out-empty", "Run the script to see its output here.");
    this.scroller = h("div.out-scroll", { tabindex: "0" }, this.empty, this.lines);
    this.capNote = h("div.out-cap", { hidden: true });
    this.jump = h("button.out-jump", { type: "button", hidden: true, onclick: () => this.toBottom() }, icon("arrow-bar-to-down"), h("span", "New output"));
    this.el = h("section.output",
      h("header.out-head", this.title, this.badge, this.meta, this.conn, h("span.grow"),
        h("span.out-note", { title: "stdout and stderr come through two pipes: lines a script writes to both at the same instant can show in either order. A script run in a terminal (its Runtime settings) has one stream, in order.", "aria-label": "About the order of stdout and stderr", tabindex: "0" }, icon("info-circle")),
        this.searchBtn, this.download),
      this.capNote,
      h("div.out-body", this.scroller, this.jump),
    );
    this.pager = new LogPager(this);
    this.search = new LogSearch({
      onPick: (seq) => this.pager.jumpTo(seq),
      onToggle: (open) => this.searchBtn.setAttribute("aria-expanded", String(open)),
    });
    this.capNote.after(this.search.el);
    // Where following the end last put the view: a scroll event the page caused itself can be
    // reported after more lines arrived (the end then looks out of reach), so only a move up
    // from there means the reader wants the view to stay put.
    this.followedTo = 0;
    this.scroller.addEventListener("scroll", () => {
      const el = this.scroller;
      const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 6;
      const movedUp = el.scrollTop < this.followedTo - 1;
      this.stick = (atBottom || (this.stick && !movedUp)) && !this.pager.hasAfter;
      if (this.stick) {
        this.unseen = 0;
        this.jump.hidden = true;
      }
      this.pager.onScroll();
    }, { passive: true });
    this.scroller.addEventListener("keydown", (e) => {
      if (e.key === "End") { e.preventDefault(); this.toBottom(); }
    });
    // The panel shrinks when something opens above it (the input box, a notice): the end stays
    // in view while following.
    this.resized = new ResizeObserver(() => {
      if (this.stick) this.follow();
    });
    this.resized.observe(this.scroller);
  }

  /** Clears the panel for a new run or a replay. */
  reset({ title = "Output", downloadUrl = null, runId = null } = {}) {
    cancelAnimationFrame(this.frame);
    this.runId = runId;
    this.pager.stop();
    this.search.close();
    this.searchBtn.hidden = !runId;
    this.searchBtn.disabled = true;
    this.searchBtn.title = "Search is available once the run has finished";
    this.frame = 0;
    this.pending = [];
    this.total = 0;
    this.unseen = 0;
    this.stick = true;
    this.followedTo = 0;
    this.renderers = { stdout: new AnsiRenderer(), stderr: new AnsiRenderer() };
    this.lines.replaceChildren();
    this.empty.hidden = true;
    this.capNote.hidden = true;
    delete this.capNote.dataset.tailed;
    this.jump.hidden = true;
    mount(this.title, title);
    this.download.hidden = !downloadUrl;
    if (downloadUrl) this.download.href = downloadUrl;
    this.downloadUrl = downloadUrl;
    this.setConnection(null);
    this.setStatus("connecting");
  }

  /** Queues one line; `stream` is stdout, stderr or system; `seq` its number in the log. */
  push(stream, text, seq = 0) {
    this.pending.push(stream, text, seq);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** A line of our own (connection notes, browser-run notices), styled apart from output. */
  system(text) {
    this.push("system", text);
  }

  flush() {
    this.frame = 0;
    const batch = this.pending;
    this.pending = [];
    const n = batch.length / 3;
    if (!n) return;
    this.total += n;
    const first = Math.max(0, n - this.cap);
    const frag = document.createDocumentFragment();
    for (let i = 0; i < n; i++) {
      const stream = batch[3 * i];
      const text = batch[3 * i + 1];
      const renderer = this.renderers[stream];
      if (i < first) {
        // Never drawn, but colours set on it carry over to later lines.
        if (renderer && text.includes("\x1b")) renderer.render(document.createDocumentFragment(), text);
        continue;
      }
      frag.append(this.lineEl(stream, text, batch[3 * i + 2], renderer));
    }
    this.lines.append(frag);
    const excess = this.lines.childElementCount - this.cap;
    if (excess > 0) {
      // Keep a scrolled-up reader's view still while old lines leave the top.
      const before = this.stick ? 0 : this.scroller.scrollHeight;
      const range = document.createRange();
      range.setStartBefore(this.lines.firstChild);
      range.setEndAfter(this.lines.children[excess - 1]);
      range.deleteContents();
      if (!this.stick) this.scroller.scrollTop -= before - this.scroller.scrollHeight;
    }
    const shown = this.lines.childElementCount;
    if (this.total > shown && !this.capNote.dataset.tailed) {
      this.capNote.hidden = false;
      mount(this.capNote, icon("info-circle"),
        `Showing the last ${shown.toLocaleString()} of ${this.total.toLocaleString()} lines. `,
        this.downloadUrl ? h("a", { href: this.downloadUrl, download: "" }, "Download the full log") : "");
    }
    if (this.stick) {
      this.follow();
    } else {
      this.unseen += n;
      this.jump.hidden = false;
      mount(this.jump, icon("arrow-bar-to-down"), h("span", `${this.unseen.toLocaleString()} new line${this.unseen === 1 ? "" : "s"}`));
    }
  }

  /** One drawn line; `renderer` carries ANSI colours from line to line (none for our notes). */
  lineEl(stream, text, seq, renderer) {
    const line = document.createElement("div");
    line.className = `ln ln-${stream}`;
    if (seq) line.dataset.seq = seq;
    if (renderer) renderer.render(line, lastSegment(text));
    else line.textContent = text;
    return line;
  }

  /** The run has ended: its stored log can now be paged through and searched. */
  finished() {
    if (!this.runId) return;
    // Draw what is still queued, so paging starts from the lines really shown.
    cancelAnimationFrame(this.frame);
    this.flush();
    this.searchBtn.disabled = false;
    this.searchBtn.title = "Search this run's stored log";
    this.search.attach(this.runId);
    this.pager.start(this.runId);
  }

  toggleSearch() {
    if (this.search.el.hidden) this.search.open();
    else this.search.close();
  }

  toBottom() {
    if (this.pager.hasAfter) {
      this.pager.toEnd();
      return;
    }
    this.stick = true;
    this.unseen = 0;
    this.jump.hidden = true;
    this.follow();
  }

  /** Puts the end in view, remembering where that left the view. */
  follow() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.followedTo = this.scroller.scrollTop;
  }

  /** Status badge plus exit code, signal, error and duration. */
  setStatus(status, info = {}) {
    this.status = status;
    this.badge.className = `badge badge-${status}`;
    mount(this.badge, status === "running" || status === "connecting" ? icon("loader-2", "spin") : null, STATUS_LABEL[status] || status);
    if (info.startedAt) this.startedAt = new Date(info.startedAt).getTime();
    if (info.durationMs !== undefined && info.durationMs !== null) this.finalDuration = info.durationMs;
    this.info = { ...this.info, ...info };
    clearInterval(this.ticker);
    if (status === "running" && this.startedAt && this.finalDuration === null) {
      this.ticker = setInterval(() => this.renderMeta(), 1000);
    }
    this.renderMeta();
  }

  renderMeta() {
    const i = this.info || {};
    const parts = [];
    if (i.exitCode !== undefined && i.exitCode !== null) parts.push(h("span.meta-item", { "data-testid": "exit-code" }, `exit ${i.exitCode}`));
    if (i.signal) parts.push(h("span.meta-item", `signal ${i.signal}`));
    const ms = this.finalDuration ?? (this.status === "running" && this.startedAt ? Date.now() - this.startedAt : null);
    if (ms !== null && ms !== undefined) parts.push(h("span.meta-item", { title: "Duration" }, icon("clock"), duration(ms)));
    if (i.trigger) parts.push(h("span.meta-item", i.trigger));
    mount(this.meta, parts);
    if (i.error) this.errorNote(i.error);
  }

  errorNote(text) {
    if (this.lastError === text) return;
    this.lastError = text;
    this.system(`error: ${text}`);
  }

  /** null (hidden), "live", "reconnecting", "lost". */
  setConnection(state) {
    this.conn.hidden = !state || state === "live";
    if (state === "reconnecting") mount(this.conn, icon("refresh", "spin"), "Reconnecting…");
    if (state === "lost") {
      mount(this.conn, icon("alert-triangle"), "Connection lost");
      this.system("Lost the connection to this run's output. Open the run from the history to try again.");
    }
  }

  /** Starts a fresh run display, forgetting the last run's timing. */
  begin(opts) {
    this.startedAt = null;
    this.finalDuration = null;
    this.info = {};
    this.lastError = null;
    this.reset(opts);
  }

  /** The replay starts at the log's last `lines` lines: say so, with the full log's link. */
  tailed(lines) {
    this.capNote.hidden = false;
    this.capNote.dataset.tailed = "true";
    mount(this.capNote, icon("info-circle"),
      `Opened at the end: showing the last ${lines.toLocaleString()} lines of a large log. `,
      this.downloadUrl ? h("a", { href: this.downloadUrl, download: "" }, "Download the full log") : "");
  }

  idle() {
    this.pager.stop();
    this.search.close();
    this.searchBtn.hidden = true;
    this.lines.replaceChildren();
    this.empty.hidden = false;
    this.capNote.hidden = true;
    delete this.capNote.dataset.tailed;
    this.download.hidden = true;
    this.badge.className = "badge badge-idle";
    mount(this.badge, "Idle");
    mount(this.meta);
    mount(this.title, "Output");
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    clearInterval(this.ticker);
    this.resized.disconnect();
  }
}

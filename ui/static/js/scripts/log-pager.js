// Pages through a finished run's stored log in the output panel. Scrolling near the top loads
// the lines before the first one shown; near the bottom, the ones after the last (when the
// window does not reach the end); a search match opens the log around its line. The panel
// holds at most WINDOW lines: a load at one end drops lines at the other, so a 20 MB log is
// read a page at a time and never lands in the DOM whole.
import { api } from "../lib/api.js";
import { h, icon, mount } from "../lib/dom.js";
import { AnsiRenderer } from "./ansi.js";

const PAGE = 2000;
const WINDOW = 20000;
/** How close to an edge (px) the reader gets before the next page loads. */
const EDGE = 600;
/** "Before the end": the largest seq a query takes. */
const END = Number.MAX_SAFE_INTEGER;
/** Lines kept in view above a search match. */
const ABOVE_MATCH = 200;

export class LogPager {
  constructor(view) {
    this.view = view;
    this.stop();
  }

  /** Starts paging the shown run's log, from the lines the panel already shows. */
  start(runId) {
    this.stop();
    this.runId = runId;
    this.active = true;
    this.hasBefore = this.firstSeq() > 1;
    this.note();
  }

  stop() {
    this.active = false;
    this.generation = (this.generation || 0) + 1;
    this.loading = false;
    this.moved = false;
    this.hasBefore = false;
    this.hasAfter = false;
    this.ownsJump = false;
  }

  firstSeq() {
    const el = this.view.lines.querySelector("[data-seq]");
    return el ? Number(el.dataset.seq) : 0;
  }

  lastSeq() {
    const all = this.view.lines.children;
    for (let i = all.length - 1; i >= 0; i--) if (all[i].dataset.seq) return Number(all[i].dataset.seq);
    return 0;
  }

  onScroll() {
    if (!this.active || this.loading) return;
    const sc = this.view.scroller;
    if (this.hasBefore && sc.scrollTop < EDGE) this.earlier();
    else if (this.hasAfter && sc.scrollHeight - sc.scrollTop - sc.clientHeight < EDGE) this.later();
  }

  /** Runs one load at a time; its answer is dropped if another run opened meanwhile. */
  async load(query) {
    const generation = this.generation;
    this.loading = true;
    try {
      const page = await api.runLines(this.runId, query);
      return generation === this.generation ? page : null;
    } catch (e) {
      // Said in the note above the log: a line in the log itself would go through the live
      // view's trimming and land at the end, away from the edge that failed.
      if (generation === this.generation) {
        this.view.capNote.hidden = false;
        mount(this.view.capNote, icon("alert-triangle"), h("span", `Could not load more of the log: ${e.message}. Scroll again to retry.`));
      }
      return null;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  async earlier() {
    const first = this.firstSeq();
    const page = await this.load({ before: first, limit: PAGE });
    if (!page || this.firstSeq() !== first) return;
    const sc = this.view.scroller;
    const height = sc.scrollHeight;
    this.view.lines.prepend(this.render(page.lines));
    // Keep what the reader looks at still while lines arrive above it.
    sc.scrollTop += sc.scrollHeight - height;
    this.hasBefore = page.hasBefore;
    this.moved = true;
    this.trim(false);
    this.note();
  }

  async later() {
    const last = this.lastSeq();
    const page = await this.load({ after: last, limit: PAGE });
    if (!page || this.lastSeq() !== last) return;
    this.view.lines.append(this.render(page.lines));
    this.hasAfter = page.hasAfter;
    this.moved = true;
    this.trim(true);
    this.note();
  }

  /** Opens the log at line `seq` and marks it. */
  async jumpTo(seq) {
    if (!this.active) return;
    if (!this.view.lines.querySelector(`[data-seq="${seq}"]`)) {
      this.generation += 1;
      const page = await this.load({ after: Math.max(0, seq - 1 - ABOVE_MATCH), limit: PAGE });
      if (!page) return;
      this.view.lines.replaceChildren(this.render(page.lines));
      this.hasBefore = page.hasBefore;
      this.hasAfter = page.hasAfter;
      this.moved = true;
      this.note();
    }
    const line = this.view.lines.querySelector(`[data-seq="${seq}"]`);
    if (!line) return;
    for (const old of this.view.lines.querySelectorAll(".ln-hit")) old.classList.remove("ln-hit");
    line.classList.add("ln-hit");
    this.view.stick = false;
    line.scrollIntoView({ block: "center" });
  }

  /** Back to the log's last lines, following the end again. */
  async toEnd() {
    this.generation += 1;
    const page = await this.load({ before: END, limit: PAGE });
    if (!page) return;
    this.view.lines.replaceChildren(this.render(page.lines));
    this.hasBefore = page.hasBefore;
    this.hasAfter = false;
    this.note();
    this.view.stick = true;
    this.view.follow();
  }

  render(lines) {
    // Colours are followed within a page; one left open by a line on another page is not.
    const renderers = { stdout: new AnsiRenderer(), stderr: new AnsiRenderer() };
    const frag = document.createDocumentFragment();
    for (const l of lines) frag.append(this.view.lineEl(l.stream, l.line, l.seq, renderers[l.stream]));
    return frag;
  }

  /** Drops lines past WINDOW from the top (`fromTop`) or the bottom. */
  trim(fromTop) {
    const lines = this.view.lines;
    const excess = lines.childElementCount - WINDOW;
    if (excess <= 0) return;
    const sc = this.view.scroller;
    const height = sc.scrollHeight;
    const range = document.createRange();
    if (fromTop) {
      range.setStartBefore(lines.firstChild);
      range.setEndAfter(lines.children[excess - 1]);
    } else {
      range.setStartBefore(lines.children[lines.childElementCount - excess]);
      range.setEndAfter(lines.lastChild);
    }
    range.deleteContents();
    if (fromTop) {
      sc.scrollTop -= height - sc.scrollHeight;
      this.hasBefore = true;
    } else {
      this.hasAfter = true;
    }
  }

  /** Says which part of the log is shown and how to reach the rest. */
  note() {
    const v = this.view;
    // The jump button says "Go to the end" while the window stops short of it; otherwise it is
    // the live view's (its "new lines" count stays as it was).
    if (this.hasAfter) {
      this.ownsJump = true;
      v.jump.hidden = false;
      mount(v.jump, icon("arrow-bar-to-down"), h("span", "Go to the end"));
    } else if (this.ownsJump) {
      this.ownsJump = false;
      v.jump.hidden = true;
    }
    if (!this.hasBefore && !this.hasAfter) {
      if (this.moved) v.capNote.hidden = true;
      return;
    }
    const opened = v.capNote.dataset.tailed && !this.moved;
    const range = `lines ${this.firstSeq().toLocaleString()}–${this.lastSeq().toLocaleString()}`;
    v.capNote.hidden = false;
    mount(v.capNote, icon("info-circle"), h("span",
      `${opened ? "Opened at the end: showing" : "Showing"} ${range} of a large log. `,
      this.hasBefore ? "Scroll up for earlier lines" : "Scroll down for later lines",
      v.downloadUrl ? [", or ", h("a", { href: v.downloadUrl, download: "" }, "download the full log")] : "",
      "."));
  }
}

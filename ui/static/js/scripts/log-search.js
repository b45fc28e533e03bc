// Search through a finished run's stored log, on the server (a plain substring, any case): the
// matches list under the panel's head, each opening the log at its line. A huge log is searched
// a bounded part per request; "Search on" continues where the last one stopped.
import { api } from "../lib/api.js";
import { h, icon, mount } from "../lib/dom.js";

const LIMIT = 100;
/** Characters of a matching line shown around the match. */
const CONTEXT = 120;
// Escape sequences are shown as colours in the panel; in the list they would be noise.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

export class LogSearch {
  constructor({ onPick, onToggle }) {
    this.onPick = onPick;
    this.onToggle = onToggle;
    this.input = h("input.input.log-search-input", {
      type: "search", placeholder: "Search the stored log", "aria-label": "Search this run's log", maxlength: "200",
    });
    this.summary = h("span.log-search-summary", { role: "status" });
    this.list = h("ol.log-hits", { "aria-label": "Matching lines" });
    this.more = h("button.btn.btn-ghost.btn-xs", { type: "button", hidden: true, onclick: () => this.find(true) }, "Search on");
    const form = h("form.log-search-bar", { onsubmit: (e) => { e.preventDefault(); this.find(false); } },
      this.input,
      h("button.btn.btn-xs", { type: "submit" }, icon("search"), "Find"),
      this.summary, h("span.grow"),
      h("button.btn.btn-ghost.btn-xs.btn-icon", { type: "button", "aria-label": "Close the search", title: "Close the search", onclick: () => this.close() }, icon("x")));
    this.el = h("div.log-search", { hidden: true }, form, this.list, this.more);
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); this.close(); }
    });
  }

  attach(runId) {
    this.runId = runId;
  }

  open() {
    this.el.hidden = false;
    this.onToggle?.(true);
    this.input.focus();
    this.input.select();
  }

  close() {
    const wasOpen = !this.el.hidden;
    this.el.hidden = true;
    this.generation = (this.generation || 0) + 1;
    this.list.replaceChildren();
    mount(this.summary);
    this.more.hidden = true;
    if (wasOpen) this.onToggle?.(false);
  }

  async find(onward) {
    const q = onward ? this.q : this.input.value;
    if (!q) {
      mount(this.summary, "Type the text to find.");
      return;
    }
    if (!onward) {
      this.q = q;
      this.found = 0;
      this.next = 0;
      this.list.replaceChildren();
    }
    const generation = (this.generation = (this.generation || 0) + 1);
    this.more.hidden = true;
    mount(this.summary, "Searching…");
    // A call reads a bounded part of the log: go on until a page of matches or the end.
    let r;
    let found = 0;
    do {
      try {
        r = await api.searchLog(this.runId, q, this.next, LIMIT - found);
      } catch (e) {
        if (generation === this.generation) mount(this.summary, e.message);
        return;
      }
      if (generation !== this.generation) return;
      this.next = r.next;
      for (const m of r.matches) this.list.append(this.hit(m));
      found += r.matches.length;
      this.found += r.matches.length;
      if (r.next !== null) mount(this.summary, `Searching… (read to line ${r.next.toLocaleString()})`);
    } while (found < LIMIT && r.next !== null);
    this.more.hidden = r.next === null;
    const count = `${this.found.toLocaleString()} matching line${this.found === 1 ? "" : "s"}`;
    mount(this.summary, r.next === null ? (this.found ? count : "No line matches.") : `${count} so far`);
  }

  hit(m) {
    const text = m.line.replace(ANSI, "");
    const at = text.toLowerCase().indexOf(this.q.toLowerCase());
    let body = [text.slice(0, 2 * CONTEXT)];
    if (at >= 0) {
      const start = Math.max(0, at - CONTEXT);
      const end = at + this.q.length;
      body = [start ? "…" : "", text.slice(start, at), h("mark", text.slice(at, end)), text.slice(end, end + CONTEXT)];
    }
    return h("li", h("button.log-hit", { type: "button", "data-seq": m.seq, onclick: () => this.onPick(m.seq) },
      h("span.log-hit-seq", m.seq.toLocaleString()), h("span.log-hit-text", body)));
  }
}

// The Versions tab of a script: every saved definition, newest first (who, when, why, which
// secrets changed), a comparison of any two of them (or one and the current), and restoring an
// old one, which makes a new version equal to it: history is never rewritten.
import { h, icon, mount, toast } from "../lib/dom.js";
import { api } from "../lib/api.js";
import { Dialog } from "../lib/dialog.js";
import { absolute, relative } from "../lib/format.js";
import { DiffView } from "./diff-view.js";

const PAGE = 50;

export class VersionsPanel {
  /**
   * scriptId(), type(): the script's id and type now; isDirty(): the form has unsaved edits;
   * onSelect(n): version n was picked (for the address); onRestored(script, n): the server now
   * holds version n's definition as `script`.
   */
  constructor({ scriptId, type, isDirty, onSelect, onRestored }) {
    Object.assign(this, { scriptId, type, isDirty, onSelect, onRestored });
    this.versions = [];
    // Answers can come out of order: only the latest list and the latest comparison are shown.
    this.listTicket = 0;
    this.diffTicket = 0;
    this.list = h("div.version-list", { role: "list", "data-testid": "version-list" });
    this.moreBtn = h("button.btn.btn-ghost.btn-sm.more", { type: "button", hidden: true, onclick: () => this.more() }, "Load older versions");
    this.count = h("span.count");
    this.fromSel = h("select.input#compare-from", { "aria-label": "Compare version", onchange: () => this.compare(Number(this.fromSel.value), this.to) });
    this.toSel = h("select.input#compare-to", { "aria-label": "With version", onchange: () => this.compare(this.from, Number(this.toSel.value)) });
    this.diff = new DiffView();
    this.diffState = h("div.diff-state", { role: "status" });
    this.diffCard = h("section.card.diff-card", { hidden: true },
      h("header.card-head.compare-head", h("h2.card-title", icon("eye"), "Compare"), this.fromSel, h("span.muted", "with"), this.toSel),
      h("div.diff-card-body", this.diffState, this.diff.el));
    this.el = h("div.versions-panel", { hidden: true, "data-testid": "versions" },
      h("section.card.versions-card",
        h("header.card-head", h("h2.card-title", icon("history"), "Versions"), this.count, h("span.grow"),
          h("button.btn.btn-icon.btn-ghost", { type: "button", title: "Refresh", "aria-label": "Refresh versions", onclick: () => this.load() }, icon("refresh"))),
        this.list, this.moreBtn),
      this.diffCard);
  }

  get current() {
    return this.versions.find((v) => v.current)?.version ?? null;
  }

  /** Shows the tab: loads the list when needed, then compares `version` (if given) with the current one. */
  async show(version) {
    if (!this.loaded) await this.load();
    if (version && version !== this.picked) await this.pick(version);
  }

  /** The script changed (a save): the list is read again, now or when next shown. */
  invalidate() {
    this.loaded = false;
    if (!this.el.hidden) this.load();
  }

  async load() {
    const ticket = ++this.listTicket;
    if (!this.versions.length) mount(this.list, h("div.loading-row", icon("loader-2", "spin"), "Loading versions…"));
    try {
      const page = await api.listVersions(this.scriptId(), null, Math.max(PAGE, Math.min(200, this.versions.length)));
      if (ticket !== this.listTicket) return;
      this.versions = page.versions;
      this.next = page.nextBefore;
      this.loaded = true;
      this.render();
      // A new current version moves what "the current one" is: compare with it.
      if (this.from) this.compare(this.from, !this.to || this.toWasCurrent ? this.current : this.to, this.picked);
      else if (this.versions.length > 1) this.compare(this.versions[1].version, this.current);
      else this.diffCard.hidden = true;
    } catch (e) {
      if (ticket === this.listTicket) mount(this.list, h("div.empty-small.error-text", e.message));
    }
  }

  /** Loads the next older page; whether it did. */
  async more() {
    if (!this.next) return false;
    this.moreBtn.disabled = true;
    const ticket = ++this.listTicket;
    try {
      const page = await api.listVersions(this.scriptId(), this.next, PAGE);
      if (ticket !== this.listTicket) return false;
      this.versions.push(...page.versions);
      this.next = page.nextBefore;
      this.render();
      return true;
    } catch (e) {
      toast(e.message, "error");
      return false;
    } finally {
      this.moreBtn.disabled = false;
    }
  }

  /** Compares version n with the current one (the current one with the one before it). */
  async pick(n) {
    // An old version asked for by its number (a run's link) may be pages back.
    while (this.next && !this.versions.some((v) => v.version === n) && n < this.versions[this.versions.length - 1].version) {
      if (!(await this.more())) break;
    }
    const current = this.current;
    const before = this.versions.find((v) => v.version < n);
    if (n === current) this.compare(before ? before.version : n, current, n);
    else this.compare(n, current);
  }

  render() {
    this.moreBtn.hidden = !this.next;
    mount(this.count, this.versions.length ? `${this.versions.length}${this.next ? "+" : ""}` : "");
    mount(this.list, this.versions.length ? this.versions.map((v) => this.row(v)) : h("div.empty-small", "No versions yet."));
    const option = (v) => h("option", { value: v.version }, `Version ${v.version}${v.current ? " (current)" : ""}`);
    mount(this.fromSel, this.versions.map(option));
    mount(this.toSel, this.versions.map(option));
    this.mark();
  }

  row(v) {
    const restore = v.current ? null : h("button.btn.btn-sm.version-restore", {
      type: "button", title: `Make version ${v.version}'s definition the current one`, onclick: () => this.restore(v),
    }, icon("rotate"), "Restore");
    return h("div.version-row", { role: "listitem", "data-version": v.version },
      h("button.version-open", { type: "button", title: `Compare version ${v.version} with the current one`, onclick: () => this.pick(v.version) },
        h("span.version-no", `v${v.version}`),
        h("span.version-main",
          h("span.version-msg", v.message || h("span.muted", "no message"), v.current ? h("span.pill.pill-ok", "current") : null),
          h("span.version-meta", v.author, " · ", h("span", { title: absolute(v.createdAt) }, relative(v.createdAt)),
            v.secretsChanged.length
              ? h("span.version-secrets", { title: "Secret values changed (values are never shown)" }, icon("lock"), v.secretsChanged.join(", "))
              : null))),
      restore);
  }

  /** Highlights the version picked, and the one it is compared with. */
  mark() {
    for (const row of this.list.children) {
      const n = Number(row.dataset.version);
      row.classList.toggle("selected", n === this.picked);
      row.classList.toggle("compared", n !== this.picked && (n === this.from || n === this.to));
    }
  }

  label(n) {
    return `Version ${n}${n === this.current ? " (current)" : ""}`;
  }

  /** Shows what changed from `from` to `to`; `picked` is the version the user asked about. */
  async compare(from, to, picked = from) {
    this.from = from;
    this.to = to;
    this.picked = picked;
    this.toWasCurrent = to === this.current;
    this.fromSel.value = String(from);
    this.toSel.value = String(to);
    this.diffCard.hidden = false;
    this.mark();
    this.onSelect?.(picked);
    const ticket = ++this.diffTicket;
    mount(this.diffState, h("div.loading-row", icon("loader-2", "spin"), "Comparing…"));
    try {
      const diff = await api.diffVersions(this.scriptId(), from, to);
      if (ticket !== this.diffTicket) return;
      this.diffState.replaceChildren();
      this.diff.show(diff, { from: this.label(from), to: this.label(to) }, this.type());
    } catch (e) {
      if (ticket === this.diffTicket) mount(this.diffState, h("div.empty-small.error-text", e.message));
    }
  }

  /** Asks first (with an optional message for the new version), then restores. */
  restore(v) {
    const message = h("input.input#restore-message", { type: "text", maxlength: 500, placeholder: `restored version ${v.version}`, autocomplete: "off" });
    const go = h("button.btn.btn-primary", { type: "submit", "data-testid": "restore-confirm" }, icon("rotate"), `Restore version ${v.version}`);
    const dialog = new Dialog({
      title: `Restore version ${v.version}?`,
      testid: "restore-dialog",
      body: [
        h("p", `Its definition becomes a new version (${this.current + 1}); every version stays in the history. Secrets keep their current values.`),
        this.isDirty() ? h("div.callout.callout-warn", icon("alert-triangle"), h("div", "Your unsaved changes in the form will be discarded.")) : null,
        h("div.field", h("label", { for: "restore-message" }, "Message (optional)"), message),
      ],
      actions: [h("button.btn", { type: "button", onclick: () => dialog.close() }, "Cancel"), go],
      onSubmit: async () => {
        go.disabled = true;
        dialog.error(null);
        try {
          const script = await api.restoreVersion(this.scriptId(), v.version, message.value.trim());
          dialog.close();
          this.onRestored(script, v.version);
          // Then compare the restored version with the current one: the same, as they should be.
          this.from = this.picked = v.version;
          this.toWasCurrent = true;
          await this.load();
        } catch (e) {
          dialog.error(e.message);
        } finally {
          go.disabled = false;
        }
      },
    }).open();
    message.focus();
  }
}

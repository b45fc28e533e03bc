// One script: the form on the left (or, in its Versions tab, the script's versions); Run/Cancel,
// the live output panel and the run history on the right. Saving, running, opening past runs
// and restoring versions never reload the page.
import { h, icon, mount, toast } from "../lib/dom.js";
import { api, exportUrl, fieldMessage, logUrl } from "../lib/api.js";
import { onRunChange } from "../lib/run-events.js";
import { isActive, RUNNER_LABEL, TYPE_LABEL } from "../lib/format.js";
import { ScriptForm } from "./editor.js";
import { OutputView } from "./output.js";
import { RunStream } from "./run-stream.js";
import { BrowserRun } from "./browser-run.js";
import { RunHistory } from "./history.js";
import { RunDetails } from "./run-details.js";
import { InputForm } from "./input-form.js";
import { VersionsPanel } from "./versions.js";

const isMac = /Mac|iPhone|iPad/.test(navigator.platform);
const MOD = isMac ? "⌘" : "Ctrl";
/** The latest run's output is shown on opening a script only up to this size. */
const AUTO_REPLAY_BYTES = 1024 * 1024;
// A finished run's log above this size opens at its end: the last TAIL_LINES lines only.
const TAIL_FROM_BYTES = 2 * 1024 * 1024;
const TAIL_LINES = 5000;

export class ScriptDetail {
  /** opts: { id, runId, version (a number, or true for the Versions tab), navigate(hash, {replace}) , onDirty(bool) } */
  constructor(root, opts) {
    this.root = root;
    this.opts = opts;
    this.id = opts.id || null;
    this.dirty = false;
    this.onKey = (e) => this.keydown(e);
  }

  async init() {
    let script = null;
    if (this.id) {
      try {
        script = await api.getScript(this.id);
      } catch (e) {
        mount(this.root, h("div.card.empty-state", icon("alert-triangle", "big"), h("h2", e.status === 404 ? "Script not found" : "Could not load the script"),
          h("p.muted", e.status === 404 ? "It may have been deleted, or the link is wrong." : e.message), h("a.btn", { href: "#" }, icon("arrow-left"), "Back to scripts")));
        return;
      }
    }
    if (this.destroyed) return;
    this.build(script);
    if (this.opts.version) this.showTab("versions", this.opts.version);
    document.addEventListener("keydown", this.onKey, true);
    await this.history.load();
    if (this.destroyed) return;
    // Show what matters first: the run asked for, else one still going, else the latest
    // (unless its log is big: replaying it should be a choice, not a page-load cost).
    const latest = this.history.activeRun() || this.history.runs[0];
    if (this.opts.runId) this.openRun(this.opts.runId, false, true);
    else if (latest && (isActive(latest.status) || latest.logBytes <= AUTO_REPLAY_BYTES)) this.openRun(latest.id);
    // Runs started elsewhere (schedule, API, another node) show up in the history as their
    // events arrive; one that starts while the panel only shows an automatically opened,
    // finished run is followed live. A slow poll covers an event stream that is down.
    const refresh = async () => {
      if (this.destroyed) return;
      await this.history.load();
      const active = this.history.activeRun();
      if (active && !this.stream && !this.browserRun && !this.userPicked && active.id !== this.activeRunId) this.openRun(active.id);
    };
    this.stopEvents = onRunChange((change) => {
      if (!change || change.run.scriptId === this.id) refresh();
    });
    this.poll = setInterval(() => { if (!document.hidden && !this.stream) refresh(); }, 30000);
    if (!this.id) this.form.focusFirst();
  }

  build(script) {
    this.version = script?.version ?? null;
    this.form = new ScriptForm(script, { onChange: (d) => this.setDirty(d), scriptId: () => this.id });
    this.output = new OutputView();
    this.history = new RunHistory({
      scriptId: this.id,
      onOpen: (runId) => this.openRun(runId, true),
      onChange: () => this.updateButtons(),
    });

    this.titleEl = h("h1.title");
    this.badges = h("span.badges");
    this.dirtyPill = h("span.pill.pill-dirty", { hidden: true }, icon("circle-dashed"), "Unsaved changes");
    this.saveBtn = h("button.btn", { type: "button", title: `Save (${MOD}+S)`, onclick: () => this.save() }, icon("device-floppy"), "Save", h("kbd.kbd-inline", `${MOD} S`));
    this.runBtn = h("button.btn.btn-primary", { type: "button", "data-testid": "run", onclick: () => this.run() });
    this.runHint = h("div.run-hint", { hidden: true, role: "status", "data-testid": "run-blocked" });
    this.cancelBtn = h("button.btn.btn-danger", { type: "button", hidden: true, "data-testid": "cancel", onclick: () => this.cancel() }, icon("player-stop"), "Cancel");
    this.deleteBtn = h("button.btn.btn-icon.btn-ghost", { type: "button", title: "Delete script", "aria-label": "Delete script", hidden: !this.id, onclick: () => this.remove() }, icon("trash"));
    this.exportBtn = h("a.btn.btn-icon.btn-ghost", { href: this.id ? exportUrl(this.id) : "#", download: "", hidden: !this.id,
      title: "Export the saved script as a TOML file", "aria-label": "Export script", "data-testid": "export-script" }, icon("download"));
    this.versions = new VersionsPanel({
      scriptId: () => this.id,
      type: () => this.form.type,
      isDirty: () => this.dirty,
      onSelect: (n) => { if (this.tab === "versions") this.opts.navigate(`#s/${this.id}/versions/${n}`, { replace: true }); },
      onRestored: (script, n) => this.restored(script, n),
    });
    this.tabs = {};
    const tab = (name, label, iconName) => (this.tabs[name] = h("button.tab", { type: "button", role: "tab", "data-tab": name,
      onclick: () => this.switchTab(name) }, icon(iconName), label));
    this.tabBar = h("div.tabs", { role: "tablist", "aria-label": "Script", hidden: !this.id },
      tab("definition", "Definition", "file-text"), tab("versions", "Versions", "history"));

    this.input = h("textarea.input.mono#run-input", { rows: 3, spellcheck: "false", placeholder: '{"projectId": 42}' });
    this.inputError = h("div.field-error", { hidden: true });
    this.inputKind = h("span.muted", "(JSON, optional)");
    this.inputJson = h("div.field", this.input, this.inputError,
      h("div.hint", "Passed to the script as SCRIPTD_INPUT (host), the global input (isolated and browser)."));
    this.inputForm = new InputForm();
    this.inputBox = h("details.run-input", h("summary", icon("chevron-down"), "Input ", this.inputKind),
      this.inputJson, this.inputForm.el);
    this.setInputForm(script?.inputSchema);
    this.input.addEventListener("input", () => { this.inputError.hidden = true; });

    const head = h("div.page-head.detail-head",
      h("div.crumbs", h("a.crumb", { href: "#" }, icon("arrow-left"), "Scripts"), h("span.sep", "/"), this.titleEl, this.badges, this.dirtyPill),
      h("div.actions", this.exportBtn, this.deleteBtn, this.saveBtn, this.cancelBtn, this.runBtn));
    this.details = new RunDetails({ onRunAgain: (input) => this.runAgain(input), currentVersion: () => this.version });
    const runCard = h("section.card.run-card", this.runHint, this.inputBox, this.output.el, this.details.el);
    this.el = h("div.detail", head,
      h("div.detail-grid", h("div.main-col", this.tabBar, this.form.el, this.versions.el), h("aside.run-col", runCard, this.history.el)));
    mount(this.root, this.el);
    this.showTab("definition");
    this.refreshHead();
    this.updateButtons();
  }

  refreshHead() {
    const s = this.form.value();
    // Browser scripts run only in this page and leave no server runs to list.
    this.history.el.hidden = s.type === "browser" && !this.history.runs.length;
    mount(this.titleEl, s.name || (this.id ? "Untitled" : "New script"));
    document.title = `${s.name || "New script"} · Scripts · scriptd`;
    mount(this.badges,
      h("span.pill", icon(s.type === "bash" ? "terminal" : s.type === "node" ? "brand-nodejs" : "world"), TYPE_LABEL[s.type]),
      s.runner === "host"
        ? h("span.pill.pill-danger", { title: "Runs with the server's privileges" }, icon("alert-triangle"), "host runner")
        : h("span.pill", RUNNER_LABEL[s.runner]),
      this.form.script?.enabled === false ? h("span.pill.pill-muted", "Disabled") : null);
  }

  /** Shows the form or the versions (then compares `version` with the current one, if given). */
  showTab(name, version) {
    // Asked for before the script has loaded: init() opens it once the page is built.
    if (!this.form) {
      this.opts.version = name === "versions" ? version || true : null;
      return;
    }
    this.tab = name;
    for (const [n, b] of Object.entries(this.tabs)) {
      b.classList.toggle("active", n === name);
      b.setAttribute("aria-selected", String(n === name));
    }
    this.form.el.hidden = name !== "definition";
    this.versions.el.hidden = name !== "versions";
    if (name === "versions") this.versions.show(typeof version === "number" ? version : null);
  }

  /** A tab picked by hand: the address follows, so a reload comes back to it. */
  switchTab(name) {
    this.showTab(name);
    const run = this.activeRunId ? `/runs/${this.activeRunId}` : "";
    const version = this.versions.picked ? `/${this.versions.picked}` : "";
    this.opts.navigate(name === "versions" ? `#s/${this.id}/versions${version}` : `#s/${this.id}${run}`, { replace: true });
  }

  /** The server restored version n: the form shows what it now holds. */
  restored(script, n) {
    this.version = script.version;
    this.form.load(script);
    this.setInputForm(script.inputSchema);
    this.form.trigger.render();
    this.setDirty(false);
    toast(`Restored version ${n} as version ${script.version}`);
  }

  setDirty(d) {
    this.dirty = d;
    this.dirtyPill.hidden = !d || !this.id;
    this.saveBtn.classList.toggle("btn-emph", d);
    this.opts.onDirty?.(d);
    this.refreshHead();
    this.updateButtons();
  }

  get browser() {
    return this.form.type === "browser";
  }

  updateButtons() {
    const busy = !!this.browserRun || (this.activeRunId && isActive(this.activeStatus));
    this.cancelBtn.hidden = !busy;
    mount(this.cancelBtn, icon("player-stop"), this.browserRun ? "Stop" : this.canceling ? "Canceling…" : "Cancel");
    this.cancelBtn.disabled = !!this.canceling;
    const label = this.browser ? "Run in page" : !this.id ? "Create & run" : this.dirty ? "Save & run" : "Run";
    mount(this.runBtn, icon("player-play"), label, h("kbd.kbd-inline", `${MOD} ↵`));
    // A saved script that cannot start now says why, instead of a refusal after the click.
    const s = this.form?.value() || {};
    let blocked = null;
    let shown = false;
    if (this.id && !this.dirty && !this.browser) {
      const active = this.history?.activeRun();
      if (s.enabled === false) blocked = "This script is disabled: turn on Enabled and save to run it.";
      else if (s.concurrency === "single" && active) {
        blocked = "A run of this script is still going, and it runs one at a time: wait for it or cancel it.";
        // The run on screen says so itself, with its Cancel button.
        shown = active.id === this.activeRunId;
      }
    }
    this.runBtn.title = blocked || `${label} (${MOD}+Enter)`;
    this.runBtn.disabled = !!this.browserRun || !!blocked;
    this.runHint.textContent = blocked || "";
    this.runHint.hidden = !blocked || shown;
  }

  keydown(e) {
    const mod = isMac ? e.metaKey : e.ctrlKey;
    // In a dialog (restoring a version) Ctrl+Enter must not start a run behind it.
    if (!mod || e.altKey || e.target.closest?.("dialog")) return;
    if (e.key === "s" || e.key === "S") {
      e.preventDefault();
      e.stopPropagation();
      this.save();
    } else if (e.key === "Enter") {
      e.preventDefault();
      e.stopPropagation();
      this.run();
    }
  }

  /** Saves the form; returns true when the server accepted it. */
  async save({ quiet = false } = {}) {
    if (this.saving) return this.saving;
    const local = this.form.localError();
    if (local) {
      this.form.showError(local);
      return false;
    }
    this.saving = (async () => {
      const doc = this.form.value();
      this.saveBtn.disabled = true;
      try {
        const saved = this.id ? await api.updateScript(this.id, doc) : await api.createScript(doc);
        const created = !this.id;
        this.id = saved.id;
        this.version = saved.version;
        this.form.isNew = false;
        this.form.load(saved);
        this.setInputForm(saved.inputSchema);
        this.history.scriptId = saved.id;
        this.deleteBtn.hidden = false;
        this.exportBtn.hidden = false;
        this.exportBtn.href = exportUrl(saved.id);
        this.tabBar.hidden = false;
        this.versions.invalidate();
        this.setDirty(false);
        if (created) {
          this.opts.navigate(`#s/${saved.id}`, { replace: true });
          this.history.load();
        }
        this.form.trigger.render();
        if (!quiet) toast(created ? "Script created" : "Saved");
        return true;
      } catch (e) {
        // Next to its field when it names one, otherwise in a banner above the form: once.
        if (this.tab !== "definition") this.switchTab("definition");
        this.form.showError(e);
        return false;
      } finally {
        this.saveBtn.disabled = false;
        this.saving = null;
      }
    })();
    return this.saving;
  }

  /** The Run input as a form when the script has one, as JSON otherwise. */
  setInputForm(schema) {
    const same = JSON.stringify(schema || null) === JSON.stringify(this.inputForm.schema || null);
    if (!same) this.inputForm.render(schema || null);
    this.inputJson.hidden = !!schema;
    this.inputForm.el.hidden = !schema;
    mount(this.inputKind, schema ? "" : "(JSON, optional)");
    // A form with a field to fill before any run opens by itself.
    const props = schema?.properties || {};
    if ((schema?.required || []).some((n) => props[n]?.default === undefined)) this.inputBox.open = true;
  }

  readInput() {
    if (this.inputForm.active) {
      const value = this.inputForm.value();
      if (value === null) this.inputBox.open = true;
      return value === null ? { ok: false } : { ok: true, value };
    }
    const raw = this.input.value.trim();
    if (!raw) return { ok: true, value: undefined };
    try {
      return { ok: true, value: JSON.parse(raw) };
    } catch (e) {
      this.inputBox.open = true;
      this.inputError.hidden = false;
      mount(this.inputError, icon("alert-triangle"), `Input is not valid JSON: ${e.message}`);
      this.input.focus();
      return { ok: false };
    }
  }

  async run() {
    if (this.browserRun || this.starting) return;
    const input = this.readInput();
    if (!input.ok) return;
    if (this.browser) return this.runInPage(input.value);
    this.starting = true;
    this.runBtn.disabled = true;
    try {
      if ((this.dirty || !this.id) && !(await this.save({ quiet: true }))) return;
      const { runId } = await api.run(this.id, input.value);
      this.openRun(runId, true);
      this.history.load();
    } catch (e) {
      // An input the server refused is shown on its field of the form, once.
      const field = e.field?.startsWith("input.") ? e.field.slice(6) : null;
      if (field && this.inputForm.show(field, fieldMessage(e))) {
        this.inputBox.open = true;
        return;
      }
      if (e.field === "input") {
        this.inputBox.open = true;
        this.inputError.hidden = false;
        mount(this.inputError, icon("alert-triangle"), fieldMessage(e));
        return;
      }
      toast(e.message, "error");
      if (e.status === 409) {
        // Most likely a run is already going (concurrency "single"): show it.
        await this.history.load();
        const active = this.history.activeRun();
        if (active && active.id !== this.activeRunId) this.openRun(active.id, true);
      }
    } finally {
      this.starting = false;
      this.updateButtons();
    }
  }

  /** Shows a run's output: live while it runs, replayed from the store when it has finished. */
  /** push: record the run in the address; picked: the user chose it (no auto-switching away). */
  openRun(runId, push, picked = push) {
    this.stopFollowing();
    this.userPicked = !!picked;
    this.activeRunId = runId;
    this.activeStatus = "queued";
    this.canceling = false;
    this.history.select(runId);
    if (push) this.opts.navigate(`#s/${this.id}/runs/${runId}`, { replace: true });
    const out = this.output;
    out.begin({ title: `Run ${runId.slice(-8)}`, downloadUrl: logUrl(runId), runId });
    this.details.clear();
    const known = this.history.runs.find((r) => r.id === runId);
    const tail = known && !isActive(known.status) && known.logBytes > TAIL_FROM_BYTES ? TAIL_LINES : 0;
    if (tail) out.tailed(tail);
    api.getRun(runId).then((r) => {
      if (this.activeRunId !== runId) return;
      out.setStatus(out.status === "connecting" ? r.status : out.status, { startedAt: r.startedAt });
      this.details.show(r);
    }).catch(() => {});
    this.stream = new RunStream(runId, {
      onLine: (d) => out.push(d.stream, d.line, d.seq),
      onStatus: (s) => {
        this.activeStatus = s.status;
        out.setStatus(s.status, s.status === "running" ? { startedAt: s.ts } : {});
        this.updateButtons();
      },
      onDone: async (d) => {
        this.activeStatus = d.status;
        this.canceling = false;
        out.setStatus(d.status, { exitCode: d.exitCode, signal: d.signal, error: d.error });
        out.setConnection(null);
        this.stream = null;
        this.updateButtons();
        out.finished();
        try {
          const r = await api.getRun(runId);
          if (this.activeRunId === runId) {
            out.setStatus(r.status, { durationMs: r.durationMs, exitCode: r.exitCode });
            this.details.show(r);
          }
        } catch { /* the status line above already says how it ended */ }
        this.history.load();
      },
      onConnection: (state) => {
        out.setConnection(state);
        if (state === "reconnecting") this.history.select(runId);
      },
    }, { tail });
    this.updateButtons();
  }

  /** "Run again": a new run with a past run's input, through the usual Run path. */
  runAgain(input) {
    if (this.inputForm.active) this.inputForm.set(input);
    else this.input.value = input === null ? "" : JSON.stringify(input, null, 2);
    this.run();
  }

  runInPage(input) {
    this.stopFollowing();
    this.activeRunId = null;
    this.history.select(null);
    const out = this.output;
    const { script, timeoutMs } = this.form.value();
    out.begin({ title: "In-page run (not recorded)", downloadUrl: null });
    out.setStatus("running", { startedAt: new Date().toISOString(), trigger: "in page" });
    this.browserRun = new BrowserRun({ code: script, input: input ?? null, timeoutMs, host: this.el }, {
      onLine: (stream, text) => out.push(stream, text),
      onDone: (status, info) => {
        this.browserRun = null;
        out.setStatus(status, { durationMs: info.durationMs, error: info.error });
        this.updateButtons();
      },
    });
    this.updateButtons();
  }

  async cancel() {
    if (this.browserRun) return this.browserRun.stop();
    if (!this.activeRunId || this.canceling) return;
    this.canceling = true;
    this.updateButtons();
    try {
      await api.cancelRun(this.activeRunId);
    } catch (e) {
      this.canceling = false;
      this.updateButtons();
      toast(e.message, "error");
    }
  }

  async remove() {
    const name = this.form.value().name || "this script";
    if (!confirm(`Delete "${name}" and its run history? Active runs are canceled.`)) return;
    try {
      await api.deleteScript(this.id);
      this.setDirty(false);
      toast("Script deleted");
      this.opts.navigate("#", { replace: false, force: true });
    } catch (e) {
      toast(e.message, "error");
    }
  }

  stopFollowing() {
    this.stream?.close();
    this.stream = null;
    this.browserRun?.stop();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.poll);
    this.stopEvents?.();
    document.removeEventListener("keydown", this.onKey, true);
    this.stopFollowing();
    this.output?.destroy();
    this.form?.destroy();
  }
}

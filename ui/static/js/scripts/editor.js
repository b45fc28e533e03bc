// The script form: every field of a definition, with field-level errors from the API, the
// host-runner warnings, and change tracking so unsaved edits are never lost silently.
import { h, icon, mount } from "../lib/dom.js";
import { slugify, TYPE_LABEL } from "../lib/format.js";
import { fieldMessage } from "../lib/api.js";
import { createCodeEditor } from "./code-editor.js";
import { EnvGrid } from "./env-grid.js";
import { ScheduleEditor } from "./schedule.js";
import { RetryEditor } from "./retry.js";
import { NotificationsEditor } from "./notifications.js";
import { TriggerEditor } from "./trigger.js";

export const RUNNERS = {
  bash: [["host", "Host (bash -lc)"]],
  node: [["host", "Host (node)"], ["isolated", "Isolated (embedded engine)"]],
  browser: [["browser", "Browser (sandboxed frame)"]],
};

const RUNNER_HINT = {
  host: "Runs as a process on the server.",
  isolated: "No require, process, files, network or child processes; memory-limited.",
  browser: "Runs in this page only.",
};

const CONCURRENCY_HINT = {
  single: "A second run while one is active is refused (a scheduled tick is skipped, and recorded as such).",
  queue: "A second run waits until the previous one has finished.",
  parallel: "Runs go side by side.",
};

export const STARTERS = {
  bash: '#!/usr/bin/env bash\nset -euo pipefail\n\necho "Hello from $(hostname)"\n',
  node: '// Runs with Node.js on the server. The run input (JSON) is in SCRIPTD_INPUT.\nconst input = JSON.parse(process.env.SCRIPTD_INPUT || "null");\nconsole.log("Hello", input);\n',
  isolated: '// Runs in an embedded JavaScript engine: no require, process, files or network.\n// The run input is the global `input`.\nconsole.log("Hello", input);\n',
  browser: '// Runs in a sandboxed frame in this page: no access to the dashboard or the network.\n// The run input is `input`; console output appears in the output panel.\nconsole.log("Hello from the browser", input);\n',
};

const starterFor = (type, runner) => (type === "node" && runner === "isolated" ? STARTERS.isolated : STARTERS[type]);

const SCHEMA_EXAMPLE = '{"type": "object", "properties": {"env": {"type": "string", "enum": ["staging", "prod"]}}, "required": ["env"]}';

let uid = 0;
function field(label, control, { name, hint, id, wide } = {}) {
  if (!control.id) control.id = id || `f-${name || "x"}-${++uid}`;
  return h(`div.field${wide ? ".wide" : ""}`, { "data-field": name },
    h("label", { for: control.id }, label), control, hint ? h("div.hint", hint) : null);
}

export class ScriptForm {
  /** script: the API document, or null for a new one. */
  constructor(script, { onChange, scriptId }) {
    this.onChange = onChange;
    this.isNew = !script;
    const s = script || {
      name: "", codeIdentifier: "", description: "", type: "bash", runner: "host", script: STARTERS.bash,
      defaultWorkingDirectory: null, env: [], timeoutMs: 300000, enabled: true, concurrency: "single",
      schedule: { enabled: false, cron: "", timezone: "UTC", catchUp: "none" }, apiTrigger: { enabled: false, hasToken: false },
    };
    this.codeTouched = !this.isNew;
    const changed = () => this.changed();

    this.name = h("input.input.input-lg", { type: "text", maxlength: 200, placeholder: "Sync project", autocomplete: "off", required: true });
    this.code = h("input.input.mono", { type: "text", maxlength: 100, placeholder: "sync-project", spellcheck: "false", autocomplete: "off" });
    this.description = h("textarea.input", { rows: 2, placeholder: "What it does, who to ask", maxlength: 10000 });
    this.enabled = h("input", { type: "checkbox", role: "switch", id: "f-enabled" });
    this.name.addEventListener("input", () => {
      if (!this.codeTouched) this.code.value = slugify(this.name.value);
    });
    this.code.addEventListener("input", () => { this.codeTouched = this.code.value !== ""; });
    for (const el of [this.name, this.code]) el.addEventListener("input", () => this.trigger?.render());
    this.code.addEventListener("blur", () => { if (this.code.value) this.code.value = slugify(this.code.value); });

    this.typeButtons = {};
    const typeSeg = h("div.segmented", { role: "radiogroup", "aria-label": "Type" },
      ["bash", "node", "browser"].map((t) => {
        const b = h("button.seg", { type: "button", role: "radio", "data-type": t, onclick: () => this.setType(t, true) },
          icon(t === "bash" ? "terminal" : t === "node" ? "brand-nodejs" : "world"), TYPE_LABEL[t]);
        this.typeButtons[t] = b;
        return b;
      }));
    this.runner = h("select.input#f-runner");
    this.runner.addEventListener("change", () => this.runnerChanged());
    this.timeout = h("input.input", { type: "number", min: 1, max: 86400, step: 1 });
    this.concurrency = h("select.input#f-concurrency",
      h("option", { value: "single" }, "Single"),
      h("option", { value: "queue" }, "Queue"),
      h("option", { value: "parallel" }, "Parallel"));
    this.concurrencyHint = h("div.hint");
    this.runnerHint = h("div.hint");
    this.concurrency.addEventListener("change", () => mount(this.concurrencyHint, CONCURRENCY_HINT[this.concurrency.value]));
    this.tty = h("input", { type: "checkbox", role: "switch", id: "f-tty" });
    this.cwd = h("input.input.mono", { type: "text", placeholder: "server's working directory", spellcheck: "false", autocomplete: "off" });
    this.warning = h("div.callout.callout-danger", { role: "note", "data-testid": "host-warning" });
    this.browserNote = h("div.callout.callout-info", icon("info-circle"),
      h("div", h("strong", "Runs in this page. "), "The code runs in a sandboxed frame with no access to the dashboard, its login or the network. It is not recorded as a server run, cannot be scheduled or triggered by API, and stops when you press Stop, leave the page or hit the timeout."));

    this.editorHost = h("div.code-host");
    this.langLabel = h("span.lang-label");
    this.env = new EnvGrid({ onChange: changed });
    this.schedule = new ScheduleEditor({ onChange: changed });
    this.retry = new RetryEditor();
    this.notifications = new NotificationsEditor({ onChange: changed, scriptId, canTest: () => !!scriptId() && !this.isDirty() });
    this.inputSchema = h("textarea.input.mono#f-input-schema", { rows: 6, spellcheck: "false", placeholder: SCHEMA_EXAMPLE });
    this.trigger = new TriggerEditor({ onChange: changed, scriptId, codeIdentifier: () => this.code.value });

    this.errorBanner = h("div.callout.callout-danger.form-error", { hidden: true, role: "alert" });
    this.sections = {};
    const section = (key, title, iconName, ...body) => (this.sections[key] = h("section.card.form-section", { "data-section": key },
      h("h2.card-title", icon(iconName), title), ...body));

    this.el = h("form.script-form", { novalidate: true, autocomplete: "off", onsubmit: (e) => e.preventDefault() },
      this.errorBanner,
      section("general", "General", "file-text",
        h("div.grid-2",
          field("Name", this.name, { name: "name" }),
          field("Code identifier", this.code, { name: "codeIdentifier", hint: "Lower-case letters, digits, - and _. Used in the trigger URL." })),
        field("Description", this.description, { name: "description" }),
        h("label.switch-row", { "data-field": "enabled" }, this.enabled, h("span.switch"), h("span", "Enabled"), h("span.hint", " — a disabled script cannot be run by any trigger"))),
      section("runtime", "Runtime", "settings",
        h("div.field", { "data-field": "type" }, h("label", "Type"), typeSeg),
        h("div.grid-2",
          h("div.field", { "data-field": "runner" }, h("label", { for: "f-runner" }, "Runner"), this.runner, this.runnerHint),
          field("Timeout (seconds)", this.timeout, { name: "timeoutMs", hint: "1 s to 24 h. The run is stopped after it." })),
        this.warning,
        this.browserNote,
        h("div.grid-2.server-only",
          h("div.field", { "data-field": "concurrency" }, h("label", { for: "f-concurrency" }, "Concurrency"), this.concurrency, this.concurrencyHint),
          h("div.host-only", field("Working directory", this.cwd, { name: "defaultWorkingDirectory", hint: "Absolute path on the server." }))),
        h("label.switch-row.host-only", { "data-field": "tty" }, this.tty, h("span.switch"), h("span", "Run in a terminal"),
          h("span.hint", " — for tools that print live or in colour only on a terminal (python, grep…). stdout and stderr then come as one stream; the terminal is 160×50."))),
      section("code", "Code", "code",
        h("div.field.code-field", { "data-field": "script" },
          h("div.code-head", this.langLabel, h("span.grow"), h("span.kbd-hint", h("kbd", "Ctrl"), "+", h("kbd", "S"), " save  ", h("kbd", "Ctrl"), "+", h("kbd", "Enter"), " run")),
          this.editorHost)),
      section("env", "Environment variables", "lock",
        h("div.callout.callout-warn.compact", icon("shield-lock"),
          h("div", "Stored variables are sensitive: they reach the script's environment on the server. Mark tokens and passwords as ", h("strong", "secret"), " — encrypted at rest, never shown again, masked as *** in output.")),
        this.env.el),
      section("retry", "Retries", "rotate", this.retry.el),
      section("notify", "Notifications", "external-link", this.notifications.el),
      section("input", "Run input form", "keyboard",
        h("div.field", { "data-field": "inputSchema" },
          h("label", { for: "f-input-schema" }, "Input schema (optional)"), this.inputSchema,
          h("div.hint", "A JSON Schema subset: an object of string, number, integer and boolean fields, with enum, default, description, minimum/maximum, minLength/maxLength, pattern and required. The Run box then shows a form, and every run's input (API and trigger too) is checked against it; empty takes any JSON."))),
      section("schedule", "Schedule", "calendar-time", this.schedule.el),
      section("trigger", "API trigger", "api", this.trigger.el),
    );

    this.editor = createCodeEditor(this.editorHost, { doc: s.script, type: s.type, onChange: changed });
    this.el.addEventListener("input", (e) => {
      this.clearError(e.target);
      changed();
    });
    this.el.addEventListener("change", changed);
    this.load(s);
  }

  /** Fills every field from an API document (after a load or a save). */
  load(s) {
    this.script = s;
    this.name.value = s.name;
    this.code.value = s.codeIdentifier;
    this.description.value = s.description || "";
    this.enabled.checked = s.enabled;
    this.timeout.value = Math.round((s.timeoutMs || 300000) / 1000);
    this.concurrency.value = s.concurrency || "single";
    mount(this.concurrencyHint, CONCURRENCY_HINT[this.concurrency.value]);
    this.cwd.value = s.defaultWorkingDirectory || "";
    this.tty.checked = !!s.tty;
    this.setType(s.type, false, s.runner);
    if (this.editor.getValue() !== s.script) this.editor.setValue(s.script);
    this.env.set(s.env || []);
    this.schedule.set(s.schedule || {}, s.schedule?.nextRunAt);
    this.retry.set(s.retry);
    this.notifications.set(s.notifications);
    this.inputSchema.value = s.inputSchema ? JSON.stringify(s.inputSchema, null, 2) : "";
    this.trigger.set(s.apiTrigger || {});
    this.clearErrors();
    this.baseline = this.snapshot();
  }

  setType(type, user, runner) {
    const prevType = this.type;
    const prevStarter = prevType ? starterFor(prevType, this.runner.value) : null;
    this.type = type;
    for (const [t, b] of Object.entries(this.typeButtons)) {
      b.classList.toggle("active", t === type);
      b.setAttribute("aria-checked", String(t === type));
    }
    mount(this.runner, RUNNERS[type].map(([v, label]) => h("option", { value: v }, label)));
    this.runner.value = runner && RUNNERS[type].some(([v]) => v === runner) ? runner : RUNNERS[type][0][0];
    if (user && this.editor) {
      this.editor.setLanguage(type);
      // Swap the starter code only while it is still the untouched starter.
      const current = this.editor.getValue();
      if (current.trim() === "" || current === prevStarter) this.editor.setValue(starterFor(type, this.runner.value));
      this.changed();
    } else if (this.editor) {
      this.editor.setLanguage(type);
    }
    this.runnerChanged(false);
  }

  runnerChanged(user = true) {
    const host = this.runner.value === "host";
    const browser = this.type === "browser";
    this.el.classList.toggle("is-host", host);
    this.el.classList.toggle("is-browser", browser);
    for (const key of ["env", "retry", "notify", "schedule", "trigger"]) if (this.sections[key]) this.sections[key].hidden = browser;
    this.warning.hidden = !host;
    mount(this.runnerHint, RUNNER_HINT[this.runner.value]);
    this.browserNote.hidden = !browser;
    if (host) {
      mount(this.warning, icon("alert-triangle"), h("div",
        h("strong", `${this.type === "bash" ? "Bash" : "Node.js"} on the host runs with the server's privileges. `),
        "It can read, change and delete anything the scriptd process can — files, credentials, other services. Only run code you trust, and treat its environment variables as sensitive."));
    }
    mount(this.langLabel, icon(this.type === "bash" ? "terminal" : "brand-javascript"),
      this.type === "bash" ? "Bash" : this.type === "node" ? (host ? "JavaScript (Node.js)" : "JavaScript (isolated engine)") : "JavaScript (browser)");
    if (user) {
      const current = this.editor?.getValue();
      if (this.type === "node" && (current === STARTERS.node || current === STARTERS.isolated)) this.editor.setValue(starterFor("node", this.runner.value));
      this.changed();
    }
  }

  /** The API document the form describes now. */
  value() {
    const secs = Number(this.timeout.value);
    const browser = this.type === "browser";
    return {
      name: this.name.value.trim(),
      codeIdentifier: this.code.value.trim() || slugify(this.name.value),
      description: this.description.value,
      type: this.type,
      runner: this.runner.value,
      script: this.editor.getValue(),
      defaultWorkingDirectory: this.cwd.value.trim() || null,
      tty: this.runner.value === "host" && this.tty.checked,
      env: browser ? [] : this.env.value(),
      timeoutMs: Number.isFinite(secs) && this.timeout.value !== "" ? Math.round(secs * 1000) : 300000,
      enabled: this.enabled.checked,
      concurrency: this.concurrency.value,
      retry: browser ? { retries: 0 } : this.retry.value(),
      notifications: browser ? [] : this.notifications.value(),
      inputSchema: this.schemaValue(),
      schedule: browser ? { enabled: false, cron: "", timezone: "UTC" } : this.schedule.value(),
      apiTrigger: browser ? { enabled: false } : this.trigger.value(),
    };
  }

  /** The schema as an object (its fields' order kept), null when empty, the text when it is not JSON. */
  schemaValue() {
    const raw = this.inputSchema.value.trim();
    if (!raw) return null;
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }

  /** A mistake found before asking the server (the schema is not JSON), as the API would say it. */
  localError() {
    const raw = this.inputSchema.value.trim();
    if (!raw) return null;
    try {
      JSON.parse(raw);
      return null;
    } catch (e) {
      return { field: "inputSchema", message: `The input schema is not valid JSON: ${e.message}` };
    }
  }

  snapshot() {
    return JSON.stringify(this.value());
  }

  changed() {
    if (this.changeQueued) return;
    this.changeQueued = true;
    // Coalesce bursts of edits; comparing a large script on every keystroke is wasted work.
    requestAnimationFrame(() => {
      this.changeQueued = false;
      this.onChange?.(this.isDirty());
    });
  }

  isDirty() {
    return this.snapshot() !== this.baseline;
  }

  /** Shows an API validation error next to its field; returns false when no field matched. */
  showError(err) {
    this.clearErrors();
    let target = err.field ? this.el.querySelector(`[data-field="${CSS.escape(err.field)}"]`) : null;
    if (!target && err.field) {
      // "schedule.cron" or "env" style names fall back to their section.
      const head = err.field.split(/[.[]/)[0];
      target = this.el.querySelector(`[data-field="${CSS.escape(head)}"]`);
    }
    if (!target && err.field === "cron") target = this.schedule.el.querySelector('[data-field="cron"]');
    if (!target) {
      this.errorBanner.hidden = false;
      mount(this.errorBanner, icon("alert-triangle"), h("span", err.message));
      this.errorBanner.scrollIntoView({ block: "nearest", behavior: "smooth" });
      return false;
    }
    target.classList.add("has-error");
    if (err.field === "cron" && this.schedule.showsError()) {
      // The preview under the field already says what is wrong with this cron.
      this.schedule.cron.focus();
      return true;
    }
    // The form asks for seconds; the API speaks milliseconds.
    const text = err.field === "timeoutMs" ? "Must be between 1 second and 24 hours (86 400 s)." : fieldMessage(err);
    target.append(h("div.field-error", { role: "alert" }, icon("alert-triangle"), text));
    const section = target.closest(".form-section");
    if (section) section.hidden = false;
    target.scrollIntoView({ block: "center", behavior: "smooth" });
    const input = target.matches("input,select,textarea") ? target : target.querySelector("input,select,textarea");
    if (input) input.focus({ preventScroll: true });
    else if (err.field === "script") this.editor.focus();
    return true;
  }

  clearError(el) {
    const f = el?.closest?.(".has-error");
    if (!f) return;
    f.classList.remove("has-error");
    f.querySelector(":scope > .field-error")?.remove();
  }

  clearErrors() {
    this.errorBanner.hidden = true;
    for (const f of this.el.querySelectorAll(".has-error")) {
      f.classList.remove("has-error");
      f.querySelector(":scope > .field-error")?.remove();
    }
  }

  focusFirst() {
    (this.isNew ? this.name : this.editor).focus();
  }

  destroy() {
    this.editor.destroy();
    this.schedule.abort?.abort();
  }
}

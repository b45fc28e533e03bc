// The retry policy fields of the script form: how many retries, the waits between them, and
// which ends retry. Waits are asked in seconds; the API speaks milliseconds.
import { h } from "../lib/dom.js";

const DEFAULTS = { retries: 0, delayMs: 1000, factor: 2, maxDelayMs: 300000, exitCodes: [], onTimeout: true };

let uid = 0;
function field(label, control, name, hint) {
  control.id = `f-${name.replace(/\W/g, "-")}-${++uid}`;
  return h("div.field", { "data-field": name }, h("label", { for: control.id }, label), control, hint ? h("div.hint", hint) : null);
}

const seconds = (ms) => String(Math.round(ms) / 1000);

export class RetryEditor {
  constructor() {
    this.retries = h("input.input", { type: "number", min: 0, max: 10, step: 1 });
    this.delay = h("input.input", { type: "number", min: 0, max: 86400, step: "any" });
    this.factor = h("input.input", { type: "number", min: 1, max: 10, step: "any" });
    this.maxDelay = h("input.input", { type: "number", min: 0, max: 86400, step: "any" });
    this.exitCodes = h("input.input.mono", { type: "text", placeholder: "any non-zero", spellcheck: "false", autocomplete: "off" });
    this.onTimeout = h("input", { type: "checkbox", role: "switch" });
    this.details = h("div.retry-details",
      h("div.grid-3",
        field("First wait (seconds)", this.delay, "retry.delayMs"),
        field("Each next wait ×", this.factor, "retry.factor"),
        field("Longest wait (seconds)", this.maxDelay, "retry.maxDelayMs")),
      h("div.grid-2",
        field("Only these exit codes", this.exitCodes, "retry.exitCodes", "Comma-separated; empty retries any non-zero exit."),
        h("label.switch-row", { "data-field": "retry.onTimeout" }, this.onTimeout, h("span.switch"), h("span", "Retry a run that timed out"))));
    this.el = h("div", { "data-field": "retry" },
      field("Retries", this.retries, "retry.retries", "Each attempt is a run of its own, after a wait that grows (±10%). A canceled run is never retried."),
      this.details);
    this.retries.addEventListener("input", () => this.sync());
  }

  set(policy) {
    const p = { ...DEFAULTS, ...(policy || {}) };
    this.retries.value = String(p.retries);
    this.delay.value = seconds(p.delayMs);
    this.factor.value = String(p.factor);
    this.maxDelay.value = seconds(p.maxDelayMs);
    this.exitCodes.value = p.exitCodes.join(", ");
    this.onTimeout.checked = p.onTimeout;
    this.sync();
  }

  sync() {
    this.details.hidden = !(Number(this.retries.value) > 0);
  }

  /** The policy as the API takes it; what does not parse goes as is, for the API to name. */
  value() {
    const num = (input, fallback) => (input.value.trim() === "" ? fallback : Number(input.value));
    const ms = (input, fallback) => {
      const s = num(input, fallback / 1000);
      return Number.isFinite(s) ? Math.round(s * 1000) : s;
    };
    const codes = this.exitCodes.value.split(",").map((c) => c.trim()).filter(Boolean)
      .map((c) => (/^-?\d+$/.test(c) ? Number(c) : c));
    return {
      retries: num(this.retries, 0),
      delayMs: ms(this.delay, DEFAULTS.delayMs),
      factor: num(this.factor, DEFAULTS.factor),
      maxDelayMs: ms(this.maxDelay, DEFAULTS.maxDelayMs),
      exitCodes: codes,
      onTimeout: this.onTimeout.checked,
    };
  }
}

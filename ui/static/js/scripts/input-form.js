// The Run input as a form, drawn from the script's input schema (a JSON Schema subset: string,
// number, integer and boolean fields with enum, default, description, minimum/maximum,
// minLength/maxLength, pattern and required). Checked here as the server will check it, so
// mistakes show next to their field before the run is asked for; the server's own answer
// (`input.<name>`) lands on the same field.
import { h, icon, mount } from "../lib/dom.js";

const KIND_LABEL = { string: "text", number: "number", integer: "whole number", boolean: "yes or no" };

export class InputForm {
  constructor() {
    this.el = h("div.input-form", { "data-testid": "input-form" });
    this.fields = [];
  }

  /** Draws the form for `schema`; none (null) when the script takes any JSON. */
  render(schema) {
    this.schema = schema || null;
    this.fields = [];
    const props = schema?.properties || {};
    const required = new Set(schema?.required || []);
    for (const [name, spec] of Object.entries(props)) {
      const id = `run-input-${name}`;
      let control;
      if (spec.enum) {
        control = h("select.input", { id },
          required.has(name) && spec.default === undefined ? h("option", { value: "" }, "Choose…") : null,
          !required.has(name) ? h("option", { value: "" }, "—") : null,
          spec.enum.map((v, i) => h("option", { value: String(i) }, String(v))));
      } else if (spec.type === "boolean") {
        control = h("input", { id, type: "checkbox" });
      } else if (spec.type === "number" || spec.type === "integer") {
        control = h("input.input", { id, type: "number", step: spec.type === "integer" ? "1" : "any",
          min: spec.minimum, max: spec.maximum });
      } else {
        control = h("input.input", { id, type: "text", spellcheck: "false", autocomplete: "off",
          minlength: spec.minLength, maxlength: spec.maxLength });
      }
      const error = h("div.field-error", { hidden: true, role: "alert" });
      const label = spec.title || name;
      const wrap = spec.type === "boolean"
        ? h("div.field", { "data-field": `input.${name}` },
          h("label.check-row", { for: id }, control, h("span", label)), error,
          spec.description ? h("div.hint", spec.description) : null)
        : h("div.field", { "data-field": `input.${name}` },
          h("label", { for: id }, label, required.has(name) ? h("span.required", { "aria-hidden": "true" }, " *") : null),
          control, error,
          h("div.hint", spec.description || `A ${KIND_LABEL[spec.type] || spec.type}${required.has(name) ? "" : ", optional"}.`));
      if (required.has(name)) control.setAttribute("aria-required", "true");
      control.addEventListener("input", () => this.clear(name));
      control.addEventListener("change", () => this.clear(name));
      this.fields.push({ name, spec, control, error, required: required.has(name) });
    }
    mount(this.el, this.fields.length ? null : h("div.hint", "This script's input form has no fields."), this.fields.map((f) => f.control.closest(".field")));
    this.set(null);
  }

  get active() {
    return !!this.schema;
  }

  /** Fills the fields from a run's input (or the defaults). */
  set(input) {
    for (const f of this.fields) {
      const given = input && Object.hasOwn(input, f.name) ? input[f.name] : f.spec.default;
      if (f.spec.enum) {
        const i = f.spec.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(given));
        f.control.value = i >= 0 ? String(i) : "";
      } else if (f.spec.type === "boolean") {
        f.control.checked = given === true;
      } else {
        f.control.value = given === undefined || given === null ? "" : String(given);
      }
      this.clear(f.name);
    }
  }

  /** The input object, or null with each problem shown next to its field. */
  value() {
    const out = {};
    let ok = true;
    for (const f of this.fields) {
      const v = this.read(f);
      const problem = v === undefined ? (f.required ? "This field is required." : null) : this.check(f.spec, v);
      if (problem) {
        this.show(f.name, problem);
        ok = false;
      } else if (v !== undefined) {
        out[f.name] = v;
      }
    }
    if (!ok) this.fields.find((f) => !f.error.hidden)?.control.focus();
    return ok ? out : null;
  }

  read(f) {
    if (f.spec.enum) return f.control.value === "" ? undefined : f.spec.enum[Number(f.control.value)];
    if (f.spec.type === "boolean") return f.control.checked;
    const raw = f.control.value;
    if (raw === "") return f.control.validity?.badInput ? NaN : undefined;
    return f.spec.type === "string" ? raw : Number(raw);
  }

  check(spec, v) {
    if (spec.type === "number" && !Number.isFinite(v)) return "Enter a number.";
    if (spec.type === "integer" && !Number.isInteger(v)) return "Enter a whole number.";
    if (typeof v === "number") {
      if (spec.minimum !== undefined && v < spec.minimum) return `Must be at least ${spec.minimum}.`;
      if (spec.maximum !== undefined && v > spec.maximum) return `Must be at most ${spec.maximum}.`;
    }
    if (typeof v === "string") {
      const len = [...v].length;
      if (spec.minLength !== undefined && len < spec.minLength) return `Must be at least ${spec.minLength} characters.`;
      if (spec.maxLength !== undefined && len > spec.maxLength) return `Must be at most ${spec.maxLength} characters.`;
      if (spec.pattern) {
        let re = null;
        try { re = new RegExp(spec.pattern, "u"); } catch { /* the server's engine decides */ }
        if (re && !re.test(v)) return `Must match the pattern ${spec.pattern}.`;
      }
    }
    return null;
  }

  /** Shows an error on field `name`; false when the form has no such field. */
  show(name, message) {
    const f = this.fields.find((x) => x.name === name);
    if (!f) return false;
    f.error.hidden = false;
    mount(f.error, icon("alert-triangle"), message);
    f.control.closest(".field").classList.add("has-error");
    return true;
  }

  clear(name) {
    const f = this.fields.find((x) => x.name === name);
    if (!f) return;
    f.error.hidden = true;
    f.control.closest(".field").classList.remove("has-error");
  }
}

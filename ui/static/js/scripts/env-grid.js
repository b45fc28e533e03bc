// The environment variables grid: key, value, secret toggle. A stored secret comes back from the
// API without its value; it shows as "set" and is sent back as null (keep) unless replaced.
import { h, icon, mount } from "../lib/dom.js";

export class EnvGrid {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.rows = [];
    this.body = h("div.env-rows");
    this.addBtn = h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: () => this.add() }, icon("plus"), "Add variable");
    this.el = h("div.env-grid", { "data-field": "env" },
      h("div.env-head", h("span", "Key"), h("span", "Value"), h("span", "Secret"), h("span")),
      this.body,
      h("div.env-foot", this.addBtn),
    );
  }

  set(vars) {
    this.rows = [];
    this.body.replaceChildren();
    for (const v of vars) this.add(v, false);
    this.renderEmpty();
  }

  renderEmpty() {
    if (!this.rows.length) mount(this.body, h("div.env-empty", "No variables. Scripts get SCRIPTD_RUN_ID, SCRIPTD_SCRIPT_ID, SCRIPTD_TRIGGER and SCRIPTD_INPUT automatically."));
    else this.body.querySelector(".env-empty")?.remove();
  }

  add(v = { key: "", value: "", secret: false }, focus = true) {
    const stored = v.secret && v.value === null;
    const row = { stored, replacing: false };
    const key = h("input.input.mono", { type: "text", value: v.key, placeholder: "NAME", spellcheck: "false", autocomplete: "off", "aria-label": "Variable name" });
    const value = h("input.input.mono", { type: v.secret ? "password" : "text", value: v.value ?? "", spellcheck: "false", autocomplete: "new-password", "aria-label": "Variable value" });
    const secret = h("input", { type: "checkbox", checked: !!v.secret, "aria-label": "Secret" });
    const setState = () => {
      value.type = secret.checked ? "password" : "text";
      value.placeholder = row.stored && !value.value
        ? (secret.checked ? "•••••• set — type to replace" : "type a value (the stored secret cannot be shown)")
        : secret.checked ? "secret value" : "value";
      row.el.classList.toggle("is-secret", secret.checked);
    };
    key.addEventListener("input", () => {
      const up = key.value.replace(/[^A-Za-z0-9_]/g, "_");
      if (up !== key.value) key.value = up;
    });
    secret.addEventListener("change", () => {
      // Turning a stored secret into a plain variable needs its value typed again.
      setState();
      this.onChange();
    });
    const remove = h("button.btn.btn-icon.btn-ghost", { type: "button", title: "Remove variable", "aria-label": "Remove variable", onclick: () => {
      this.rows.splice(this.rows.indexOf(row), 1);
      row.el.remove();
      this.reindex();
      this.renderEmpty();
      this.onChange();
    } }, icon("trash"));
    row.key = key;
    row.value = value;
    row.secret = secret;
    row.keyField = h("div.field-cell", key);
    row.valueField = h("div.field-cell", value);
    row.el = h("div.env-row", row.keyField, row.valueField, h("label.secret-toggle", { title: "Secret: encrypted at rest, never shown again, masked as *** in output" }, secret, icon("lock")), remove);
    this.rows.push(row);
    this.body.querySelector(".env-empty")?.remove();
    this.body.append(row.el);
    this.reindex();
    setState();
    if (focus) {
      key.focus();
      this.onChange();
    }
    return row;
  }

  reindex() {
    this.rows.forEach((r, i) => {
      r.keyField.dataset.field = `env[${i}].key`;
      r.valueField.dataset.field = `env[${i}].value`;
    });
  }

  /** For the API: secrets left empty that are stored keep their value (null). */
  value() {
    return this.rows.map((r) => {
      const secret = r.secret.checked;
      const typed = r.value.value;
      const keep = r.stored && secret && typed === "";
      return { key: r.key.value.trim(), value: keep ? null : typed, secret };
    });
  }
}

// What changed between two versions of a script: the settings that differ as a table, the
// secrets whose values changed (by name only: values are never shown), and the code as a
// unified or side-by-side diff with added and removed lines coloured.
import { h, icon, mount } from "../lib/dom.js";
import { parseUnified, pairRows } from "./unified-diff.js";
import { highlightLine } from "./syntax.js";

const MODE_KEY = "scriptd.diffMode";

/** A setting's value as text: strings as they are, anything else as JSON. */
function valueText(v) {
  if (v === undefined || v === null) return "—";
  if (typeof v === "string") return v === "" ? '""' : v;
  return JSON.stringify(v, null, 2);
}

export class DiffView {
  constructor() {
    this.mode = localStorage.getItem(MODE_KEY) === "split" ? "split" : "unified";
    this.modeButtons = {};
    const toggle = h("div.segmented.diff-mode", { role: "radiogroup", "aria-label": "Diff layout" },
      [["unified", "Unified"], ["split", "Side by side"]].map(([mode, label]) => {
        const b = h("button.seg", { type: "button", role: "radio", "data-mode": mode, onclick: () => this.setMode(mode) }, label);
        this.modeButtons[mode] = b;
        return b;
      }));
    this.body = h("div.diff-body", { "data-testid": "diff-body" });
    this.codeHead = h("div.diff-code-head", h("span.diff-label", icon("code"), "Code"), h("span.grow"), toggle);
    this.el = h("div.diff-view", { "data-testid": "diff-view" });
    this.syncMode();
  }

  /** diff: the API's comparison; labels: {from, to} for the column heads; type: for colours. */
  show(diff, labels, type) {
    this.diff = diff;
    this.labels = labels;
    this.type = type;
    const same = !diff.fields.length && !diff.secretsChanged.length && !diff.script;
    mount(this.el,
      same ? h("div.empty-small", { "data-testid": "diff-same" }, `${labels.from} and ${labels.to} are the same.`) : null,
      diff.fields.length ? this.fields(diff.fields) : null,
      diff.secretsChanged.length
        ? h("div.callout.callout-info.diff-secrets", { "data-testid": "diff-secrets" }, icon("lock"),
          h("div", "Secret values changed (values are never shown): ",
            diff.secretsChanged.map((name, i) => [i ? ", " : "", h("code", name)])))
        : null,
      same ? null : this.codeHead,
      same ? null : this.body);
    this.renderBody();
  }

  fields(fields) {
    return h("div.table-wrap.diff-fields", { "data-testid": "diff-fields" },
      h("table.table",
        h("thead", h("tr", h("th", { scope: "col" }, "Setting"), h("th", { scope: "col" }, this.labels.from), h("th", { scope: "col" }, this.labels.to))),
        h("tbody", fields.map((f) => h("tr", { "data-field": f.field },
          h("td", h("code", f.field)),
          h("td.diff-before", h("pre.diff-value", valueText(f.from))),
          h("td.diff-after", h("pre.diff-value", valueText(f.to))))))));
  }

  setMode(mode) {
    this.mode = mode;
    localStorage.setItem(MODE_KEY, mode);
    this.syncMode();
    this.renderBody();
  }

  syncMode() {
    for (const [m, b] of Object.entries(this.modeButtons)) {
      b.classList.toggle("active", m === this.mode);
      b.setAttribute("aria-checked", String(m === this.mode));
    }
  }

  renderBody() {
    if (!this.diff) return;
    if (!this.diff.script) {
      mount(this.body, h("div.empty-small", "The code is the same in both versions."));
      return;
    }
    const rows = parseUnified(this.diff.script);
    mount(this.body, this.mode === "split" ? this.split(rows) : this.unified(rows));
  }

  text(row) {
    return h("span.diff-text", highlightLine(row.text, this.type), row.noNewline ? h("span.diff-eof", "no newline at end") : null);
  }

  unified(rows) {
    return h("div.diff.diff-unified", rows.map((r) => r.kind === "hunk"
      ? h("div.diff-hunk", r.text)
      : h(`div.diff-line.diff-${r.kind}`,
        h("span.diff-no", r.old ?? ""), h("span.diff-no", r.new ?? ""),
        h("span.diff-sign", { "aria-hidden": "true" }, r.kind === "add" ? "+" : r.kind === "del" ? "-" : " "),
        this.text(r))));
  }

  split(rows) {
    const side = (row, which) => {
      if (!row) return h(`div.diff-side.diff-${which}.diff-none`);
      return h(`div.diff-side.diff-${which}.diff-${row.kind}`, h("span.diff-no", (which === "old" ? row.old : row.new) ?? ""), this.text(row));
    };
    return h("div.diff.diff-split",
      h("div.diff-split-head", h("span", this.labels.from), h("span", this.labels.to)),
      pairRows(rows).map((p) => p.hunk
        ? h("div.diff-hunk", p.hunk.text)
        : h("div.diff-pair", side(p.left, "old"), side(p.right, "new"))));
  }
}

// The webhooks of the script form: where to POST when a run fails, succeeds, recovers or a
// tick is skipped, in scriptd's JSON or as Slack text, optionally signed. A stored signing
// secret is never shown: an empty box keeps it. "Send a test" posts to each saved webhook.
import { h, icon, mount } from "../lib/dom.js";
import { api } from "../lib/api.js";

const EVENTS = [["failure", "Failure"], ["recovery", "Recovery"], ["success", "Success"], ["skipped", "Skipped tick"]];
const MAX = 5;

export class NotificationsEditor {
  constructor({ onChange, scriptId, canTest }) {
    this.onChange = onChange;
    this.scriptId = scriptId;
    this.canTest = canTest;
    this.rows = [];
    this.list = h("div.hooks");
    this.addBtn = h("button.btn.btn-sm", { type: "button", onclick: () => { this.add({ on: ["failure"] }); this.onChange(); } }, icon("plus"), "Add webhook");
    this.testBtn = h("button.btn.btn-sm", { type: "button", onclick: () => this.test() }, icon("bolt"), "Send a test");
    this.results = h("div.hook-results", { role: "status" });
    this.el = h("div", { "data-field": "notifications" }, this.list,
      h("div.hooks-actions", this.addBtn, this.testBtn),
      this.results,
      h("div.hint", "Each notification is a POST with a JSON body (or Slack text), tried up to 4 times, with growing waits, while the receiver fails. With a secret, X-Scriptd-Signature carries t=<unix time>,v1=<hex HMAC-SHA256 of \"t.body\">."));
  }

  set(hooks) {
    this.rows = [];
    this.list.replaceChildren();
    for (const hook of hooks || []) this.add(hook);
    this.sync();
  }

  add(hook) {
    const i = this.rows.length;
    const url = h("input.input.mono", { type: "url", value: hook.url || "", placeholder: "https://hooks.example.com/…", "aria-label": "Webhook URL", spellcheck: "false", autocomplete: "off" });
    const on = EVENTS.map(([value, label]) => {
      const box = h("input", { type: "checkbox", value, checked: (hook.on || []).includes(value) });
      return { box, el: h("label.check-row", box, h("span", label)) };
    });
    const format = h("select.input", { "aria-label": "Format" }, h("option", { value: "json" }, "JSON"), h("option", { value: "slack" }, "Slack text"));
    format.value = hook.format || "json";
    const secret = h("input.input.mono", { type: "password", autocomplete: "new-password", "aria-label": "Signing secret",
      placeholder: hook.hasSecret ? "stored — leave empty to keep (for this URL)" : "optional" });
    const row = { url, on, format, secret, hadSecret: !!hook.hasSecret, dropSecret: false };
    const dropBtn = h("button.btn.btn-ghost.btn-xs", { type: "button", hidden: !hook.hasSecret, onclick: () => {
      row.dropSecret = true; dropBtn.hidden = true; secret.placeholder = "optional"; this.onChange();
    } }, "Remove the stored secret");
    const remove = h("button.btn.btn-icon.btn-ghost", { type: "button", title: "Remove webhook", "aria-label": "Remove webhook", onclick: () => {
      this.rows.splice(this.rows.indexOf(row), 1); row.el.remove(); this.sync(); this.onChange();
    } }, icon("trash"));
    row.el = h("div.hook", { "data-field": `notifications[${i}]` },
      h("div.hook-line", h("div.field.grow", { "data-field": `notifications[${i}].url` }, url), format, remove),
      h("div.hook-line", h("div.field", { "data-field": `notifications[${i}].on` }, h("div.hook-events", on.map((o) => o.el)))),
      h("div.hook-line", h("div.field.grow", { "data-field": `notifications[${i}].secret` }, secret), dropBtn));
    for (const el of [url, format, secret, ...on.map((o) => o.box)]) el.addEventListener("input", () => this.onChange());
    this.rows.push(row);
    this.list.append(row.el);
    this.sync();
  }

  sync() {
    this.addBtn.hidden = this.rows.length >= MAX;
    this.testBtn.hidden = !this.rows.length;
    if (!this.rows.length) mount(this.results);
  }

  value() {
    return this.rows.map((r) => ({
      url: r.url.value.trim(),
      on: r.on.filter((o) => o.box.checked).map((o) => o.box.value),
      format: r.format.value,
      // null keeps a stored secret; "" removes it.
      secret: r.secret.value || (r.dropSecret ? "" : null),
    }));
  }

  async test() {
    if (!this.canTest()) {
      mount(this.results, h("div.hint", "Save the script first: the test goes to the saved webhooks."));
      return;
    }
    this.testBtn.disabled = true;
    mount(this.results, h("div.hint", "Sending…"));
    try {
      const results = await api.testNotifications(this.scriptId());
      mount(this.results, results.map((r) => h(`div.hook-result.${r.ok ? "ok" : "bad"}`, { "data-testid": "hook-result" },
        icon(r.ok ? "circle-check" : "circle-x"), h("span.mono", r.url), " — ",
        r.ok ? `answered ${r.response}` : r.error)));
    } catch (e) {
      mount(this.results, h("div.field-error", icon("alert-triangle"), e.message));
    } finally {
      this.testBtn.disabled = false;
    }
  }
}

// Schedule settings: cron, timezone, and the next five fire times, previewed as you type.
import { h, icon, mount, debounce } from "../lib/dom.js";
import { api, fieldMessage } from "../lib/api.js";
import { absolute, relative } from "../lib/format.js";

const ZONES = (() => {
  try {
    return ["UTC", ...Intl.supportedValuesOf("timeZone").filter((z) => z !== "UTC")];
  } catch {
    return ["UTC"];
  }
})();

const EXAMPLES = [
  ["*/5 * * * *", "every 5 minutes"],
  ["0 * * * *", "hourly"],
  ["0 3 * * *", "daily at 03:00"],
  ["0 9 * * 1-5", "weekdays at 09:00"],
  ["0 0 1 * *", "monthly"],
];

export class ScheduleEditor {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.enabled = h("input", { type: "checkbox", role: "switch", id: "f-schedule-enabled" });
    this.cron = h("input.input.mono#f-cron", { type: "text", placeholder: "*/5 * * * *", spellcheck: "false", autocomplete: "off" });
    this.zone = h("input.input#f-timezone", { type: "text", list: "tz-list", placeholder: "UTC", spellcheck: "false", autocomplete: "off" });
    const datalist = h("datalist#tz-list", ZONES.map((z) => h("option", { value: z })));
    this.catchUp = h("select.input#f-catch-up",
      h("option", { value: "none" }, "Skip them (recorded as skipped)"),
      h("option", { value: "last" }, "Run once for the latest"));
    this.catchUp.addEventListener("change", () => this.onChange());
    this.preview = h("div.cron-preview", { "data-testid": "schedule-preview", "aria-live": "polite" });
    this.examples = h("div.chips", EXAMPLES.map(([c, label]) =>
      h("button.chip", { type: "button", title: label, onclick: () => { this.cron.value = c; this.changed(); } }, h("code", c), h("span", label))));
    this.el = h("div.schedule",
      h("label.switch-row", this.enabled, h("span.switch"), h("span", "Run on a schedule")),
      h("div.grid-2",
        this.cronField = h("div.field", { "data-field": "cron" }, h("label", { for: "f-cron" }, "Cron expression"), this.cron,
          h("div.hint", "5 fields (min hour day month weekday), or 6 with seconds first.")),
        this.zoneField = h("div.field", { "data-field": "timezone" }, h("label", { for: "f-timezone" }, "Timezone"), this.zone, datalist,
          h("div.hint", "IANA name, e.g. Europe/Berlin. Daylight-saving changes are handled."))),
      h("div.field", { "data-field": "catchUp" }, h("label", { for: "f-catch-up" }, "Ticks missed while no node was up"), this.catchUp,
        h("div.hint", "A tick that comes while the last run still goes on (one at a time) is always skipped and recorded.")),
      this.examples,
      this.preview,
    );
    this.schedulePreview = debounce(() => this.refresh(), 250);
    for (const el of [this.cron, this.zone]) el.addEventListener("input", () => this.changed());
    this.enabled.addEventListener("change", () => { this.sync(); this.onChange(); });
  }

  changed() {
    this.onChange();
    this.schedulePreview();
  }

  set(s, nextRunAt) {
    this.enabled.checked = !!s.enabled;
    this.cron.value = s.cron || "";
    this.zone.value = s.timezone || "UTC";
    this.catchUp.value = s.catchUp === "last" ? "last" : "none";
    this.nextRunAt = nextRunAt;
    this.sync();
    this.refresh();
  }

  /** The preview says the cron is wrong (so the form need not say it again). */
  showsError() {
    return this.preview.dataset.state === "error";
  }

  sync() {
    this.el.classList.toggle("is-off", !this.enabled.checked);
  }

  value() {
    return { enabled: this.enabled.checked, cron: this.cron.value.trim(), timezone: this.zone.value.trim() || "UTC", catchUp: this.catchUp.value };
  }

  async refresh() {
    const cron = this.cron.value.trim();
    const tz = this.zone.value.trim() || "UTC";
    this.abort?.abort();
    for (const f of [this.cronField, this.zoneField]) f.classList.remove("has-error");
    if (!cron) {
      mount(this.preview, h("div.muted", "Enter a cron expression to preview its next run times."));
      this.preview.dataset.state = "empty";
      return;
    }
    const ctrl = (this.abort = new AbortController());
    this.preview.classList.add("loading");
    try {
      const res = await api.schedulePreview(cron, tz, ctrl.signal);
      if (ctrl.signal.aborted) return;
      this.preview.dataset.state = "ok";
      this.cronField.classList.remove("has-error");
      this.cronField.querySelector(":scope > .field-error")?.remove();
      mount(this.preview,
        h("div.preview-title", icon("calendar-time"), `Next runs (${res.timezone})`, this.enabled.checked ? null : h("span.muted", " — schedule is off")),
        h("ol.preview-list", res.times.map((t) => h("li", h("span.mono", absolute(t, res.timezone)), h("span.muted", relative(t))))));
    } catch (e) {
      if (e.name === "AbortError") return;
      this.preview.dataset.state = "error";
      // A timezone error is the timezone field's; anything else is the cron's.
      (e.field === "timezone" ? this.zoneField : this.cronField).classList.add("has-error");
      mount(this.preview, h("div.preview-error", { role: "alert" }, icon("alert-triangle"), h("span", fieldMessage(e))));
    } finally {
      if (this.abort === ctrl) this.preview.classList.remove("loading");
    }
  }
}

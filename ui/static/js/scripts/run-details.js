// What a run was given and gave back, under its output: how it was started and by whom (or why
// a skipped schedule tick started nothing), the version of the script it ran (linking to it in
// the Versions tab), its input, an isolated run's result (formatted, with a copy button), and
// "Run again" with the same input.
import { h, icon, mount, copyText } from "../lib/dom.js";
import { absolute } from "../lib/format.js";
import { api } from "../lib/api.js";

const TRIGGER = { manual: "Started by hand", schedule: "Started by the schedule", api: "Started by the API trigger" };

/** Why a schedule tick started nothing, in words, linking the run it collided with. */
function skipped(run) {
  const m = run.meta || {};
  const why = m.skipped || {};
  const tick = m.tick ? `The tick of ${absolute(m.tick)} was skipped: ` : "Skipped: ";
  if (why.reason === "still_running") {
    const other = why.runId
      ? h("a", { href: `#s/${encodeURIComponent(run.scriptId)}/runs/${encodeURIComponent(why.runId)}` }, `run ${why.runId.slice(-8)}`)
      : "the previous run";
    return [tick, other, " was still running (this script runs one at a time)."];
  }
  if (why.reason === "missed") {
    const more = why.ticks > 1 ? ` (${why.ticks.toLocaleString()} ticks up to ${absolute(why.lastTick)})` : "";
    return [tick, `no node was up in time${more}.`];
  }
  if (why.reason === "queue_full") return [tick, "the run queue was full."];
  return [tick.replace(/: $/, ".")];
}

function who(run) {
  const m = run.meta || {};
  if (run.status === "skipped") return skipped(run);
  if (run.trigger === "schedule" && m.catchUp && m.tick) return `${TRIGGER.schedule}, catching up the missed tick of ${absolute(m.tick)}`;
  if (run.trigger === "manual" && m.user) return `${TRIGGER.manual} (${m.user}${m.clientAddress ? ` from ${m.clientAddress}` : ""})`;
  if (run.trigger === "schedule" && m.tick) return `${TRIGGER.schedule} (tick ${absolute(m.tick)})`;
  if (run.trigger === "api" && m.clientAddress) return `${TRIGGER.api} (from ${m.clientAddress})`;
  return TRIGGER[run.trigger] || run.trigger;
}

function json(label, value, testid) {
  const text = JSON.stringify(value, null, 2);
  const copy = h("button.btn.btn-sm.btn-ghost", { type: "button", "aria-label": `Copy ${label.toLowerCase()}` }, icon("copy"), "Copy");
  copy.addEventListener("click", () => copyText(text, copy));
  return h("div.run-json", { "data-testid": testid },
    h("div.run-json-head", h("span.run-json-label", label), h("span.grow"), copy),
    h("pre.mono", text));
}

export class RunDetails {
  /** onRunAgain(input): starts a new run with this run's input; currentVersion(): the script's
   * version now, the one a new run runs. */
  constructor({ onRunAgain, currentVersion }) {
    this.onRunAgain = onRunAgain;
    this.currentVersion = currentVersion;
    this.el = h("div.run-details", { hidden: true, "data-testid": "run-details" });
  }

  clear() {
    this.asked = (this.asked || 0) + 1;
    this.el.hidden = true;
    this.el.replaceChildren();
  }

  /** Where the run stands in a chain of retries, linking the first run; null for none. */
  attempt(run) {
    const r = run.meta?.retry;
    if (!r) return null;
    const first = h("a", { href: `#s/${encodeURIComponent(run.scriptId)}/runs/${encodeURIComponent(r.of)}` }, `run ${r.of.slice(-8)}`);
    const due = run.status === "queued" && r.dueAt ? `, due ${absolute(r.dueAt)}` : "";
    return h("div.run-attempt", { "data-testid": "run-attempt" }, icon("rotate"), `Attempt ${r.attempt} of ${r.attempts}: a retry of `, first, `${due}.`);
  }

  show(run) {
    // A new run runs the script as it is now, which may not be the version this run ran.
    const now = this.currentVersion();
    const again = h("button.btn.btn-sm", { type: "button", "data-testid": "run-again",
      title: now ? `Start a new run of version ${now} (the current one) with the same input` : "Start a new run of this script with the same input" },
      icon("rotate"), now ? `Run again (version ${now})` : "Run again");
    again.addEventListener("click", () => this.onRunAgain(run.input ?? null));
    const version = run.scriptVersion
      ? h("a.run-version", { href: `#s/${encodeURIComponent(run.scriptId)}/versions/${run.scriptVersion}`, "data-testid": "run-version",
        title: "Open this version of the script" }, icon("history"), `Version ${run.scriptVersion}`)
      : null;
    mount(this.el,
      h("div.run-details-head", h("span.run-who", { "data-testid": "run-who" }, who(run)), version, h("span.grow"), again),
      this.attempt(run),
      run.input !== null && run.input !== undefined ? json("Input", run.input, "run-input-value") : null,
      run.result !== null && run.result !== undefined ? json("Result", run.result, "run-result") : null);
    this.el.hidden = false;
    if (!["queued", "running"].includes(run.status)) this.showDeliveries(run.id);
  }

  /** What the script's webhooks were told of this run, and how each answered. */
  async showDeliveries(runId) {
    const ask = (this.asked = (this.asked || 0) + 1);
    let list;
    try {
      list = await api.deliveries(runId);
    } catch {
      return;
    }
    if (ask !== this.asked || !list.length) return;
    const host = (url) => { try { return new URL(url).host; } catch { return url; } };
    const line = (d) => {
      const state = d.status === "delivered" ? `delivered (${d.response})`
        : d.status === "failed" ? `failed after ${d.attempts} attempts: ${d.error}`
          : `${d.error || "waiting"}; next attempt ${absolute(d.nextAt)}`;
      return h(`li.delivery.delivery-${d.status}`, { title: d.url },
        icon(d.status === "delivered" ? "circle-check" : d.status === "failed" ? "circle-x" : "clock"),
        `${d.event} → ${host(d.url)}: ${state}`);
    };
    this.el.append(h("div.run-deliveries", { "data-testid": "run-deliveries" },
      h("div.run-json-label", "Notifications"), h("ul", list.map(line))));
  }
}

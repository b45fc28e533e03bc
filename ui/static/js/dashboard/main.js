// The dashboard: what runs and waits now, the last 24 hours by status, the scripts whose last
// run failed, the next scheduled runs and the latest runs. The run events stream keeps it
// current (any trigger, any node); a slow poll covers a stream that is down.
import { h, icon, mount, debounce } from "../lib/dom.js";
import { api } from "../lib/api.js";
import { onRunChange } from "../lib/run-events.js";
import { absolute, relative, STATUS_LABEL } from "../lib/format.js";

const root = document.getElementById("dashboard");
const scriptsPath = root.dataset.scriptsPath;
const HOURS = 24;
// Stacked bottom to top in this order.
const STACK = ["succeeded", "failed", "timed_out", "canceled", "skipped", "running", "queued"];
const FAILED = new Set(["failed", "timed_out"]);

const runLink = (scriptId, runId) =>
  `${scriptsPath}#s/${encodeURIComponent(scriptId)}/runs/${encodeURIComponent(runId)}`;

function counter(label, value, testid, tone) {
  return h(`div.stat.card${tone ? `.stat-${tone}` : ""}`, { "data-testid": testid },
    h("span.stat-value", String(value)), h("span.stat-label", label));
}

function hourLabel(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** Runs per hour as stacked bars, drawn as SVG (no chart library needed for one chart). */
function chart(hours) {
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs, ...children) => {
    const node = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    for (const c of children) node.append(c);
    return node;
  };
  const width = 720, height = 160, pad = 18, gap = 4;
  const slot = (width - 2 * pad) / hours.length;
  const max = Math.max(1, ...hours.map((hr) => Object.values(hr.counts).reduce((a, b) => a + b, 0)));
  const svg = el("svg", { viewBox: `0 0 ${width} ${height + 20}`, class: "runs-chart", role: "img",
    "aria-label": `Runs per hour over the last ${hours.length} hours, by status`, "data-testid": "runs-chart" });
  hours.forEach((hr, i) => {
    const total = Object.values(hr.counts).reduce((a, b) => a + b, 0);
    const parts = STACK.filter((s) => hr.counts[s]).map((s) => `${hr.counts[s]} ${STATUS_LABEL[s] || s}`);
    const bar = el("g", { class: "bar", "data-total": total, "data-start": hr.start },
      el("title", {}, document.createTextNode(`${hourLabel(hr.start)}: ${parts.join(", ") || "no runs"}`)));
    let y = height;
    for (const status of STACK) {
      const n = hr.counts[status] || 0;
      if (!n) continue;
      const hgt = (n / max) * (height - pad);
      y -= hgt;
      bar.append(el("rect", { x: pad + i * slot + gap / 2, y, width: slot - gap, height: hgt, class: `seg seg-${status}` }));
    }
    if (i % 6 === 0) {
      bar.append(el("text", { x: pad + i * slot + slot / 2, y: height + 14, class: "tick", "text-anchor": "middle" },
        document.createTextNode(hourLabel(hr.start))));
    }
    svg.append(bar);
  });
  return svg;
}

function section(title, iconName, testid, body) {
  return h("section.card.dash-section", { "data-testid": testid },
    h("header.card-head", h("h2.card-title", icon(iconName), title)), body);
}

function emptyLine(text) {
  return h("p.empty-small", text);
}

async function load() {
  let stats, scripts, recent, nodes;
  try {
    [stats, scripts, recent, nodes] = await Promise.all([
      api.runStats(HOURS), api.listScripts(), api.listRuns(null, null, 10), api.listNodes(),
    ]);
  } catch (e) {
    mount(root, h("div.callout.callout-warn", e.message));
    return;
  }
  const names = new Map(scripts.map((s) => [s.id, s.name]));
  const totals = {};
  for (const hr of stats.hours) for (const [s, n] of Object.entries(hr.counts)) totals[s] = (totals[s] || 0) + n;
  const failing = scripts.filter((s) => s.lastRun && FAILED.has(s.lastRun.status));
  const upcoming = scripts.filter((s) => s.schedule.nextRunAt)
    .sort((a, b) => a.schedule.nextRunAt.localeCompare(b.schedule.nextRunAt)).slice(0, 5);

  mount(root,
    h("div.stats",
      counter("running now", stats.running, "running", stats.running ? "run" : ""),
      counter("queued", stats.queued, "queued"),
      counter(`succeeded, ${HOURS} h`, totals.succeeded || 0, "succeeded-24h", "ok"),
      counter(`failed or timed out, ${HOURS} h`, (totals.failed || 0) + (totals.timed_out || 0), "failed-24h",
        (totals.failed || totals.timed_out) ? "bad" : "")),
    section(`Runs per hour, last ${HOURS} hours`, "clock", "chart-card",
      h("div.chart-wrap", chart(stats.hours),
        h("div.legend", STACK.map((s) => h("span.legend-item", h(`span.swatch.seg-${s}`), STATUS_LABEL[s] || s))))),
    h("div.dash-grid",
      section("Failing scripts", "alert-triangle", "failing",
        failing.length ? h("ul.dash-list", failing.map((s) => h("li",
          h("a", { href: runLink(s.id, s.lastRun.id) }, s.name),
          h(`span.badge.badge-${s.lastRun.status}`, STATUS_LABEL[s.lastRun.status] || s.lastRun.status),
          h("span.muted", { title: absolute(s.lastRun.queuedAt) }, relative(s.lastRun.queuedAt)))))
          : emptyLine("No script's last run failed.")),
      section("Next scheduled runs", "calendar-time", "upcoming",
        upcoming.length ? h("ul.dash-list", upcoming.map((s) => h("li",
          h("a", { href: `${scriptsPath}#s/${encodeURIComponent(s.id)}` }, s.name),
          h("span.mono", s.schedule.cron),
          h("span.muted", { title: absolute(s.schedule.nextRunAt) }, relative(s.schedule.nextRunAt)))))
          : emptyLine("No schedule is enabled.")),
      section("Nodes", "box", "nodes",
        h("ul.dash-list", nodes.map((n) => h("li", { "data-node": n.node, "data-running": n.running },
          h("span.mono.node-id", { title: `${n.node} · started ${absolute(n.startedAt)} · ${n.version}` }, n.node.slice(-12)),
          n.late ? h("span.badge.badge-failed", "late") : h("span.badge.badge-succeeded", "up"),
          h("span.muted", `${n.running} running`),
          h("span.muted", { title: absolute(n.heartbeatAt) }, relative(n.heartbeatAt)))))),
      section("Latest runs", "history", "recent",
        recent.runs.length ? h("ul.dash-list", recent.runs.map((r) => h("li", { "data-run-id": r.id, "data-status": r.status },
          h("a", { href: runLink(r.scriptId, r.id) }, names.get(r.scriptId) || r.scriptId),
          h(`span.badge.badge-${r.status}`, STATUS_LABEL[r.status] || r.status),
          h("span.muted", r.trigger),
          h("span.muted", { title: absolute(r.queuedAt) }, relative(r.queuedAt)))))
          : emptyLine("No runs yet."))));
}

const refresh = debounce(() => load(), 250);
onRunChange(() => refresh());
setInterval(() => { if (!document.hidden) load(); }, 60000);
load();

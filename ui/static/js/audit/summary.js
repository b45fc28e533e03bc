// An audit entry's summary (a small JSON object whose keys depend on the action) as one line of
// text: "fields: timeoutMs, script · version 4". Keys this page does not know still show, as
// "key: value", so a newer server's entries are never hidden.

const list = (v) => (Array.isArray(v) ? v.join(", ") : String(v));
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const KEYS = {
  name: (v) => `name “${v}”`,
  fields: (v) => (v.length ? `fields: ${list(v)}` : null),
  secretsChanged: (v) => (v.length ? `secrets changed: ${list(v)}` : null),
  version: (v) => `version ${v}`,
  restoredFrom: (v) => `restored from version ${v}`,
  renamedFrom: (v) => `renamed from ${v}`,
  via: (v) => `via ${v}`,
  script: (v) => `script ${v}`,
  trigger: (v) => `trigger ${v}`,
  scripts: (v) => plural(v, "script"),
  sealed: (v) => (v ? "secrets sealed" : "secrets named only"),
  created: (v) => (v.length ? `created: ${list(v)}` : null),
  updated: (v) => (v.length ? `updated: ${list(v)}` : null),
  deleted: (v) => (v.length ? `deleted: ${list(v)}` : null),
  unchanged: (v) => (v ? `${v} unchanged` : null),
  webhooks: (v) => plural(v, "webhook"),
  windowSeconds: (v) => `within ${v} s`,
  changed: (v) => (v.length ? `changed: ${list(v)}` : null),
  // The settings themselves are in the export; the list of changed ones says enough here.
  settings: () => null,
};

export function summaryText(summary) {
  if (!summary || typeof summary !== "object") return "";
  const parts = [];
  // Known keys in a fixed order (the most telling first), then any others.
  const keys = [...Object.keys(KEYS).filter((k) => k in summary), ...Object.keys(summary).filter((k) => !(k in KEYS))];
  for (const key of keys) {
    const value = summary[key];
    if (value === null || value === undefined) continue;
    const known = KEYS[key];
    const text = known ? known(value) : `${key}: ${typeof value === "object" && !Array.isArray(value) ? JSON.stringify(value) : list(value)}`;
    if (text) parts.push(text);
  }
  return parts.join(" · ");
}

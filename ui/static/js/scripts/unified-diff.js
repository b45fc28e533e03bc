// The server's unified diff of two script bodies, as rows to draw: hunk headers, and lines kept,
// removed or added with their line numbers on each side. Pure functions (no DOM).

const HUNK = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/** → [{kind: "hunk", text} | {kind: "ctx"|"del"|"add", old, new, text}] */
export function parseUnified(diff) {
  const rows = [];
  let oldNo = 0, newNo = 0, oldLeft = 0, newLeft = 0;
  for (const line of diff.split("\n")) {
    const hunk = HUNK.exec(line);
    if (hunk) {
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[3]);
      oldLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      newLeft = hunk[4] === undefined ? 1 : Number(hunk[4]);
      rows.push({ kind: "hunk", text: line });
      continue;
    }
    // Outside a hunk (the ---/+++ header, the final newline) nothing is a line of the body;
    // counting what is left keeps a removed "-- comment" from passing for a header.
    if (!oldLeft && !newLeft) continue;
    if (line.startsWith("\\")) {
      const last = rows[rows.length - 1];
      if (last) last.noNewline = true;
      continue;
    }
    const sign = line[0];
    const text = line.slice(1);
    if (sign === "-") {
      rows.push({ kind: "del", old: oldNo++, new: null, text });
      oldLeft--;
    } else if (sign === "+") {
      rows.push({ kind: "add", old: null, new: newNo++, text });
      newLeft--;
    } else {
      rows.push({ kind: "ctx", old: oldNo++, new: newNo++, text });
      oldLeft--;
      newLeft--;
    }
  }
  return rows;
}

/**
 * The same rows side by side: a kept line on both sides, and each run of removed lines beside
 * the added lines that follow it. → [{hunk} | {left: row|null, right: row|null}]
 */
export function pairRows(rows) {
  const out = [];
  let dels = [], adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) out.push({ left: dels[i] || null, right: adds[i] || null });
    dels = [];
    adds = [];
  };
  for (const row of rows) {
    if (row.kind === "del") {
      if (adds.length) flush();
      dels.push(row);
    } else if (row.kind === "add") {
      adds.push(row);
    } else {
      flush();
      out.push(row.kind === "hunk" ? { hunk: row } : { left: row, right: row });
    }
  }
  flush();
  return out;
}

// ANSI colours to DOM: `anser` parses the escape sequences into chunks, and each chunk becomes a
// text node, or a <span> with classes (and, for 256/true colours, a CSSOM colour). Raw output is
// never parsed as HTML.
import { Anser } from "../../vendor/anser.js";

const DECORATION = {
  bold: "a-bold", dim: "a-dim", italic: "a-italic", underline: "a-underline",
  blink: "a-blink", hidden: "a-hidden", strikethrough: "a-strike",
};

/** xterm's 256-colour palette entries 16–255. */
function palette(n) {
  if (n < 232) {
    const i = n - 16;
    const level = (v) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g},${g},${g})`;
}

function paint(span, value, truecolor, which) {
  if (!value) return;
  if (value === "ansi-truecolor" && truecolor && /^\d{1,3}, \d{1,3}, \d{1,3}$/.test(truecolor)) {
    span.style[which === "fg" ? "color" : "backgroundColor"] = `rgb(${truecolor})`;
  } else if (value.startsWith("ansi-palette-")) {
    const n = Number(value.slice(13));
    if (n >= 16 && n <= 255) span.style[which === "fg" ? "color" : "backgroundColor"] = palette(n);
  } else if (/^ansi-[a-z-]+$/.test(value)) {
    span.classList.add(`${which}-${value}`);
  }
}

/** One ANSI state per output stream, since colours may carry over from line to line. */
export class AnsiRenderer {
  constructor() {
    this.anser = new Anser();
  }

  /** Appends `text` to `parent` as text nodes and styled spans. */
  render(parent, text) {
    const a = this.anser;
    const styled = a.fg || a.bg || a.decorations.length;
    if (!styled && !text.includes("\x1b")) {
      parent.append(text);
      return;
    }
    const chunks = a.ansiToJson(text, { use_classes: true, remove_empty: true });
    for (const c of chunks) {
      if (!c.fg && !c.bg && !(c.decorations && c.decorations.length)) {
        parent.append(c.content);
        continue;
      }
      const span = document.createElement("span");
      let fg = c.fg, bg = c.bg, fgt = c.fg_truecolor, bgt = c.bg_truecolor;
      const decorations = c.decorations || [];
      if (decorations.includes("reverse")) {
        [fg, bg, fgt, bgt] = [bg || "ansi-default-bg", fg || "ansi-default-fg", bgt, fgt];
      }
      paint(span, fg, fgt, "fg");
      paint(span, bg, bgt, "bg");
      for (const d of decorations) if (DECORATION[d]) span.classList.add(DECORATION[d]);
      span.textContent = c.content;
      parent.append(span);
    }
  }
}

/** What a terminal would show of a line with carriage returns: the text after the last one. */
export function lastSegment(line) {
  const trimmed = line.endsWith("\r") ? line.slice(0, -1) : line;
  const i = trimmed.lastIndexOf("\r");
  return i < 0 ? trimmed : trimmed.slice(i + 1);
}

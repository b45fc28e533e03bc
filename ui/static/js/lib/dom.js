// Tiny DOM helpers. Everything the user or a script wrote goes in as text nodes: nothing here
// ever assigns HTML strings, so names like `<img onerror=…>` stay harmless text.

/**
 * h("div.card#main", {onclick, dataset, attrs…}, child, "text", [more]) → Element
 * Children may be nodes, strings (as text), numbers, arrays, or null/false (skipped).
 */
export function h(spec, props, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][^.#]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][^.#]+/g)) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (props !== undefined && props !== null && (typeof props !== "object" || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = Array.isArray(v) ? v.filter(Boolean).join(" ") : v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = v;
    else if (k === "value" || k === "checked" || k === "disabled" || k === "selected" || k === "hidden") el[k] = v;
    else if (k === "ref") v(el);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A Tabler icon (shipped locally as CSS masks). */
export function icon(name, extra = "") {
  const i = document.createElement("i");
  i.className = `ti ti-${name}${extra ? " " + extra : ""}`;
  i.setAttribute("aria-hidden", "true");
  return i;
}

/** Short-lived message in the corner; errors stay a little longer. */
export function toast(message, kind = "info") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div#toasts.toasts", { role: "status", "aria-live": "polite" });
    document.body.append(host);
  }
  const t = h(`div.toast.toast-${kind}`, icon(kind === "error" ? "alert-triangle" : "check"), h("span", message));
  host.append(t);
  setTimeout(() => t.classList.add("leaving"), kind === "error" ? 6000 : 2600);
  setTimeout(() => t.remove(), kind === "error" ? 6400 : 3000);
}

export function debounce(fn, ms) {
  let timer;
  const d = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(timer);
  return d;
}

/** Copies text and briefly marks the button as done. */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API needs a secure context; fall back to a selection copy.
    const ta = h("textarea.offscreen", { readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  if (button) {
    button.classList.add("copied");
    setTimeout(() => button.classList.remove("copied"), 1200);
  }
  toast("Copied to clipboard");
}

/** Hands a blob to the browser as a download named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a.offscreen", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  // The click has started the download; the URL is only needed until then.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

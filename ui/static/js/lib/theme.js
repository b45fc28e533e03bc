// The theme switch in the sidebar: System, Light or Dark, remembered in localStorage.
// js/theme-init.js applies the stored choice before first paint; this keeps the buttons' pressed
// state, the <html data-theme> attribute and other open tabs in step with the choice. Colours are
// all CSS; only code that must tell a library which scheme applies (the code editor) asks here.
const KEY = "scriptd.theme";
const CHOICES = new Set(["system", "light", "dark"]);
const root = document.documentElement;
const buttons = [...document.querySelectorAll(".theme-opt[data-theme-choice]")];
const systemDark = matchMedia("(prefers-color-scheme: dark)");
const listeners = new Set();

/** Whether the dark palette applies now (the user's choice, or the system's when none). */
export function isDark() {
  const choice = root.dataset.theme;
  return choice ? choice === "dark" : systemDark.matches;
}

/** Calls `fn(isDark)` whenever the applied scheme may have changed; returns an unsubscribe. */
export function onSchemeChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const notify = () => { for (const fn of listeners) fn(isDark()); };

function stored() {
  try {
    const v = localStorage.getItem(KEY);
    return CHOICES.has(v) ? v : "system";
  } catch {
    return "system";
  }
}

function apply(choice) {
  if (choice === "system") delete root.dataset.theme;
  else root.dataset.theme = choice;
  for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.themeChoice === choice));
  notify();
}

function choose(choice) {
  try {
    if (choice === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
  } catch {
    // Not remembered, but still applied to this page.
  }
  apply(choice);
}

for (const b of buttons) b.addEventListener("click", () => choose(b.dataset.themeChoice));
// Another tab changed the choice.
window.addEventListener("storage", (e) => {
  if (e.key === KEY || e.key === null) apply(stored());
});
systemDark.addEventListener("change", notify);
apply(stored());

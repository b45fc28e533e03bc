// Applies a stored theme choice before the first paint, so a page never flashes the other theme.
// It is a classic script in <head> because the CSP allows no inline script and a module would run
// only after parsing. "System" is no attribute at all: the stylesheet follows prefers-color-scheme.
try {
  const choice = localStorage.getItem("scriptd.theme");
  if (choice === "light" || choice === "dark") document.documentElement.dataset.theme = choice;
} catch {
  // Storage blocked (privacy settings): the system theme applies.
}

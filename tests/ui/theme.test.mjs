// Dark mode in a real Chromium: the palette follows the system or the sidebar switch, a choice
// survives a reload without a flash of the other theme, and text keeps WCAG AA contrast in both
// themes on every page (measured from computed styles, not read from the stylesheet).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Browser, api, createScript, until, waitForRunEnd, shot, problems } from "./harness.mjs";

const browser = new Browser();
const tag = Date.now().toString(36).slice(-5);
let demo, demoRun;

before(async () => {
  await browser.start();
  // Console errors too (a refused asset or a CSP block logs one), not only uncaught exceptions.
  browser.context.on("console", (m) => {
    if (m.type() === "error") m.page()?.problems?.push(`console error: ${m.text()}`);
  });
  // Runs in every status the pages colour, and one whose output has every ANSI colour.
  demo = await createScript({
    name: `Theme demo ${tag}`, description: "Prints every ANSI colour", concurrency: "parallel",
    schedule: { enabled: true, cron: "0 4 * * *", timezone: "UTC" },
    env: [{ key: "GREETING", value: "hello", secret: false }],
    script: [
      "# Every foreground colour, then every background, then stderr.",
      'for c in 30 31 32 33 34 35 36 37 90 91 92 93 94 95 96 97; do printf "\\033[${c}mcolour $c\\033[0m\\n"; done',
      'for c in 40 41 42 43 44 45 46 47; do printf "\\033[${c}mbackground $c\\033[0m\\n"; done',
      'echo "$GREETING from stderr" >&2',
      "exit 3",
    ].join("\n"),
  });
  const ok = await createScript({ name: `Theme ok ${tag}`, script: "echo fine", concurrency: "parallel" });
  const slow = await createScript({ name: `Theme slow ${tag}`, script: "sleep 5", timeoutMs: 1000 });
  const runs = await Promise.all([demo, ok, slow].map(async (s) => (await api("POST", `/${s.id}/run`, {})).runId));
  await Promise.all(runs.map(waitForRunEnd));
  demoRun = runs[0];
  const { runId: canceled } = await api("POST", `/${slow.id}/run`, {});
  await api("POST", `/runs/${canceled}/cancel`);
  await waitForRunEnd(canceled);
});
after(() => browser.stop());

const noProblems = async (page) => assert.deepEqual(await problems(page), [], "no console errors, page errors or CSP violations");

/** Pages to check, each with what shows that it has finished rendering. */
const PAGES = {
  dashboard: { path: "", ready: '[data-testid="recent"] li .badge' },
  scripts: { path: "/scripts", ready: ".scripts-table tbody tr .badge" },
  "script-run": { path: () => `/scripts#s/${demo.id}/runs/${demoRun}`, ready: '.ln-stderr:has-text("hello from stderr")', also: ".code-host .cm-line" },
  runs: { path: "/runs", ready: '[data-testid="all-runs"] .run-row .badge' },
};

async function open(name, scheme) {
  const spec = PAGES[name];
  const page = await browser.page(typeof spec.path === "function" ? spec.path() : spec.path);
  await page.evaluate(() => localStorage.removeItem("scriptd.theme"));
  await page.emulateMedia({ colorScheme: scheme });
  await page.reload();
  await page.locator(spec.ready).first().waitFor();
  if (spec.also) await page.locator(spec.also).first().waitFor();
  await settled(page);
  return page;
}

/** Colour transitions (buttons fade) have ended, so computed colours are the final ones. */
const settled = (page) => page.waitForFunction(() => document.getAnimations().every((a) => !(a instanceof CSSTransition)));

/**
 * WCAG contrast of every visible text in the page (shadow roots included), against the
 * background it is drawn on: backgrounds composited up the ancestors, opacity applied. Disabled
 * controls and ANSI "dim" text are exempt, as WCAG exempts inactive and decorative text.
 */
async function audit(page) {
  await settled(page);
  return page.evaluate(() => {
    const parse = (c) => {
      const m = /^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/.exec(c);
      return m ? [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]] : null;
    };
    const over = (top, under, a) => top.slice(0, 3).map((v, i) => v * a + under[i] * (1 - a));
    const lum = (rgb) => {
      const [r, g, b] = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const up = (el) => el.parentElement || (el.getRootNode() instanceof ShadowRoot ? el.getRootNode().host : null);
    const canvas = getComputedStyle(document.documentElement).colorScheme.includes("dark") ? [18, 18, 18] : [255, 255, 255];
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = up(e)) {
        const bg = parse(getComputedStyle(e).backgroundColor);
        if (bg && bg[3] > 0) layers.push(bg);
        if (bg && bg[3] === 1) break;
      }
      return layers.reduceRight((under, bg) => over(bg, under, bg[3]), canvas);
    };
    const opacity = (el) => { let o = 1; for (let e = el; e; e = up(e)) o *= Number(getComputedStyle(e).opacity); return o; };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const describe = (el) => el.tagName.toLowerCase() + [...el.classList].map((c) => `.${c}`).join("");

    const elements = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll("*")) {
        elements.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    const results = [];
    for (const el of elements) {
      const control = el.matches("input:not([type=checkbox]):not([type=radio]):not([type=hidden]), textarea, select");
      const text = control ? (el.value || "") : [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.data).join("");
      // SVG text (the chart's hour labels) is painted with `fill`; other SVG text is not drawn.
      const svgText = el.tagName === "text";
      if (!text.trim() || (el.closest("svg") && !svgText) || el.closest("option, .a-dim, .a-hidden")) continue;
      if (el.closest(":disabled, [aria-disabled=true]")) continue;
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || r.right <= 0 || r.bottom <= 0) continue;
      if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
      const cs = getComputedStyle(el);
      const paint = svgText ? cs.fill : cs.color;
      const fg = parse(paint);
      if (!fg) { results.push({ el: describe(el), text: text.trim().slice(0, 30), error: `unparsed colour ${paint}` }); continue; }
      const bg = background(el);
      const drawn = over(fg, bg, fg[3] * opacity(el));
      const size = parseFloat(cs.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
      results.push({ el: describe(el), text: text.trim().slice(0, 30), ratio: ratio(drawn, bg), need: large ? 3 : 4.5,
        fg: drawn.map(Math.round).join(","), bg: bg.map(Math.round).join(",") });
    }
    const bodyBg = lum(background(document.body));
    const cards = [...document.querySelectorAll(".card")];
    return { results, bodyBg, cardBg: cards.length ? lum(background(cards[0])) : null };
  });
}

const lowest = {};
function check(report, theme, where) {
  assert.ok(report.results.length > 10, `${where}: text was found to measure`);
  const bad = report.results.filter((r) => r.error || r.ratio < r.need);
  const min = report.results.reduce((m, r) => (r.ratio < m.ratio ? r : m), { ratio: Infinity });
  if (!lowest[theme] || min.ratio < lowest[theme].ratio) lowest[theme] = { ...min, where };
  assert.deepEqual(bad.map((r) => r.error ? `${r.el} "${r.text}": ${r.error}`
    : `${r.el} "${r.text}": ${r.ratio.toFixed(2)} < ${r.need} (${r.fg} on ${r.bg})`), [], `${where}: every text meets WCAG AA`);
  if (theme === "dark") {
    assert.ok(report.bodyBg < 0.1, `${where}: the page background is dark (luminance ${report.bodyBg.toFixed(3)})`);
    if (report.cardBg !== null) assert.ok(report.cardBg < 0.1, `${where}: cards are dark (luminance ${report.cardBg.toFixed(3)})`);
  } else {
    assert.ok(report.bodyBg > 0.8, `${where}: the page background is light (luminance ${report.bodyBg.toFixed(3)})`);
  }
}

for (const theme of ["light", "dark"]) {
  test(`every page keeps AA text contrast in the ${theme} theme that the system asks for`, async (t) => {
    for (const name of Object.keys(PAGES)) {
      const page = await open(name, theme);
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), undefined, "no stored choice");
      check(await audit(page), theme, `${name} (${theme})`);
      if (name === "script-run") {
        // The editor follows too: its background and the syntax colours come from the palette.
        const editorBg = await page.locator(".code-host .cm-editor").evaluate((el) => getComputedStyle(el).backgroundColor);
        assert.equal(editorBg, theme === "dark" ? "rgb(18, 24, 33)" : "rgb(255, 255, 255)", "the editor's background");
      }
      await shot(page, `theme-${theme}-${name}`);
      await noProblems(page);
      await page.close();
    }
    t.diagnostic(`lowest ${theme} ratio: ${lowest[theme].ratio.toFixed(2)} (${lowest[theme].el} "${lowest[theme].text}" on ${lowest[theme].where})`);
  });
}

test("the ANSI colours in the output stay legible on the terminal background", async () => {
  const page = await open("script-run", "dark");
  const spans = page.locator(".ln [class*='fg-ansi-'], .ln [class*='bg-ansi-']");
  assert.equal(await spans.count(), 24, "16 foreground and 8 background colours");
  const report = await audit(page);
  const ansi = report.results.filter((r) => /(fg|bg)-ansi-/.test(r.el));
  assert.equal(ansi.length, 24);
  assert.deepEqual(ansi.filter((r) => r.ratio < 4.5).map((r) => `${r.el}: ${r.ratio.toFixed(2)}`), []);
  await page.close();
});

test("every colour in the stylesheet is a custom property, so the dark palette reaches it", () => {
  const css = readFileSync(new URL("../../ui/static/app.css", import.meta.url), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const literal = /#[0-9a-f]{3,8}\b|rgba?\(|hsla?\(/i;
  const stray = [...css.matchAll(/([-a-z]+)\s*:\s*([^;{}]+)[;}]/gi)]
    .filter(([, prop, value]) => !prop.startsWith("--") && literal.test(value)).map(([decl]) => decl.trim());
  assert.deepEqual(stray, []);
});

const theme = (page) => page.evaluate(() => document.documentElement.dataset.theme ?? "none");
const bodyLuminance = async (page) => {
  await settled(page);
  return page.evaluate(() => {
    const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\d+/g).map(Number)
      .map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  });
};
const pressed = (page) => page.locator(".theme-opt[aria-pressed=true]").evaluateAll((els) => els.map((e) => e.getAttribute("aria-label")));

test("the sidebar switch picks System, Light or Dark, remembers it across reloads and tabs, and never flashes", async () => {
  const page = await open("dashboard", "light");
  const group = page.getByRole("group", { name: "Colour theme" });
  const option = (name) => group.getByRole("button", { name, exact: true });
  assert.deepEqual(await pressed(page), ["System"]);
  assert.ok(await bodyLuminance(page) > 0.8, "light while the system is light");

  await option("Dark").click();
  assert.equal(await theme(page), "dark");
  assert.deepEqual(await pressed(page), ["Dark"]);
  assert.equal(await page.evaluate(() => localStorage.getItem("scriptd.theme")), "dark");
  assert.ok(await bodyLuminance(page) < 0.1, "dark at once");
  check(await audit(page), "dark", "dashboard (dark by the switch)");
  await shot(page, "theme-dark-by-switch");

  // Reloaded, the stored choice is on <html> before <body> exists: no light first paint.
  await page.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (!document.body) return;
      window.__themeAtBody = document.documentElement.dataset.theme ?? "none";
      observer.disconnect();
    }).observe(document, { childList: true, subtree: true });
  });
  await page.reload();
  assert.equal(await page.evaluate(() => window.__themeAtBody), "dark", "the theme is set before the body is parsed");
  assert.deepEqual(await pressed(page), ["Dark"]);
  assert.ok(await bodyLuminance(page) < 0.1, "an explicit Dark wins over a light system");

  // Another tab follows a change.
  const other = await browser.page("/runs");
  await other.locator('[data-testid="all-runs"] .run-row').first().waitFor();
  assert.equal(await theme(other), "dark");
  await page.emulateMedia({ colorScheme: "dark" });
  await option("Light").click();
  assert.ok(await bodyLuminance(page) > 0.8, "an explicit Light wins over a dark system");
  await until(async () => (await theme(other)) === "light", { what: "the other tab to follow" });
  assert.deepEqual(await pressed(other), ["Light"]);
  await noProblems(other);
  await other.close();

  await option("System").click();
  assert.equal(await theme(page), "none");
  assert.equal(await page.evaluate(() => localStorage.getItem("scriptd.theme")), null, "System forgets the choice");
  assert.deepEqual(await pressed(page), ["System"]);
  assert.ok(await bodyLuminance(page) < 0.1, "System follows a dark system");
  await page.emulateMedia({ colorScheme: "light" });
  assert.ok(await bodyLuminance(page) > 0.8, "…and a light one, live");

  // The two dark palettes (system and chosen) are the same, custom property by custom property.
  const palette = () => page.evaluate(() => {
    const names = new Set();
    const collect = (rules) => {
      for (const r of rules) {
        if (r.cssRules) collect(r.cssRules);
        if (r.style) for (const p of r.style) if (p.startsWith("--")) names.add(p);
      }
    };
    for (const sheet of document.styleSheets) if (sheet.href?.endsWith("/app.css")) collect(sheet.cssRules);
    const cs = getComputedStyle(document.documentElement);
    return Object.fromEntries([...names].sort().map((n) => [n, cs.getPropertyValue(n).trim()]));
  });
  await page.emulateMedia({ colorScheme: "dark" });
  const systemDark = await palette();
  await page.emulateMedia({ colorScheme: "light" });
  const lightPalette = await palette();
  await option("Dark").click();
  const chosenDark = await palette();
  assert.ok(Object.keys(systemDark).length > 50, "the palette was read");
  assert.deepEqual(chosenDark, systemDark, "the chosen dark palette is the system one");
  assert.notDeepEqual(lightPalette, systemDark);
  await option("System").click();
  await noProblems(page);
  await page.close();
});

test("the editor's own parts follow a theme switch without a reload", async () => {
  const page = await open("script-run", "light");
  const editorBg = () => page.locator(".code-host .cm-editor").evaluate((el) => getComputedStyle(el).backgroundColor);
  const panelBg = () => page.locator(".code-host .cm-panels").evaluate((el) => getComputedStyle(el).backgroundColor);
  await page.locator(".code-host .cm-content").click();
  await page.keyboard.press("Control+f");
  await page.locator(".code-host .cm-panels").waitFor();
  const lightPanel = await panelBg();
  await page.getByRole("group", { name: "Colour theme" }).getByRole("button", { name: "Dark", exact: true }).click();
  assert.equal(await editorBg(), "rgb(18, 24, 33)");
  assert.notEqual(await panelBg(), lightPanel, "CodeMirror's dark variant (search panel) is on");
  check(await audit(page), "dark", "script-run (dark by the switch, search open)");
  await shot(page, "theme-dark-editor-search");
  await page.keyboard.press("Escape");
  await page.evaluate(() => localStorage.removeItem("scriptd.theme"));
  await noProblems(page);
  await page.close();
});

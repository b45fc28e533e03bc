// Scripts as kept documents, in a real Chromium: the Versions tab (list, diff unified and side by
// side, restore), a run linking to the version it ran, the Audit page and its filters, and
// export/import of TOML files through the Scripts page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Browser, api, createScript, until, scratchDir, shot, problems } from "./harness.mjs";

const browser = new Browser();
const scratch = scratchDir();
before(async () => {
  await browser.start();
  // Console errors too (a refused asset or a CSP block logs one), not only uncaught exceptions.
  browser.context.on("console", (m) => {
    if (m.type() === "error") m.page()?.problems?.push(`console error: ${m.text()}`);
  });
});
after(() => browser.stop());

const tag = Date.now().toString(36).slice(-5);
const noProblems = async (page) => assert.deepEqual(await problems(page), [], "no console errors, page errors or CSP violations");
const texts = async (loc) => (await loc.allTextContents()).map((t) => t.trim());
/** Chromium logs a request the server refused (a 400) to the console: one such error is expected. */
async function expectRefusal(page) {
  const at = await until(() => page.problems.findIndex((p) => /status of 400/.test(p)) + 1, { what: "the logged 400" });
  page.problems.splice(at - 1, 1);
}
/** The page is no wider than its window (tables scroll inside their own wrapper). */
const fitsWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

test("the Versions tab lists versions, diffs any two, restores one, and a run links to its version", async () => {
  const s = await createScript({ name: `Versions ${tag}`, script: "echo one\necho two\necho three\n", timeoutMs: 5000 });
  let doc = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...doc, script: "echo one\necho TWO\necho three\n", versionMessage: "louder two" });
  doc = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...doc, timeoutMs: 9000, versionMessage: "more time" });

  const page = await browser.page(`/scripts#s/${s.id}`);
  await page.getByRole("tab", { name: "Versions" }).click();
  await page.waitForURL(/\/versions(\/\d+)?$/);
  const rows = page.locator(".version-row");
  await rows.nth(2).waitFor();
  assert.deepEqual(await rows.evaluateAll((els) => els.map((e) => e.dataset.version)), ["3", "2", "1"]);
  const newest = await rows.nth(0).textContent();
  assert.match(newest, /more time/);
  assert.match(newest, /current/);
  assert.match(newest, /admin:admin/);
  assert.match(await rows.nth(1).textContent(), /louder two/);
  assert.equal(await rows.nth(0).locator(".version-restore").count(), 0, "the current version has nothing to restore");

  // Version 1 against the current one: the body line that changed, and the timeout.
  await rows.nth(2).locator(".version-open").click();
  await page.waitForURL(/\/versions\/1$/);
  const body = page.getByTestId("diff-body");
  const unified = body.locator(".diff-unified");
  await unified.locator(".diff-del").first().waitFor();
  assert.deepEqual(await texts(unified.locator(".diff-del .diff-text")), ["echo two"]);
  assert.deepEqual(await texts(unified.locator(".diff-add .diff-text")), ["echo TWO"]);
  assert.deepEqual(await texts(unified.locator(".diff-ctx .diff-text")), ["echo one", "echo three"]);
  const bg = (loc) => loc.first().evaluate((el) => getComputedStyle(el).backgroundColor);
  const [del, add, ctx] = [await bg(unified.locator(".diff-del")), await bg(unified.locator(".diff-add")), await bg(unified.locator(".diff-ctx"))];
  assert.ok(del !== add && del !== ctx && add !== ctx, `removed, added and kept lines look different (${del}, ${add}, ${ctx})`);
  assert.equal(await unified.locator(".diff-add .tok-function, .diff-add .tok-keyword").count(), 1, "`echo` is coloured as code");
  const timeout = page.locator('[data-testid="diff-fields"] tr[data-field="timeoutMs"]');
  assert.deepEqual(await texts(timeout.locator("td")), ["timeoutMs", "5000", "9000"]);
  assert.deepEqual(await texts(page.locator('[data-testid="diff-fields"] th')), ["Setting", "Version 1", "Version 3 (current)"]);
  await shot(page, "versions-unified");

  await page.getByRole("radio", { name: "Side by side" }).click();
  const split = body.locator(".diff-split");
  await split.waitFor();
  assert.deepEqual(await texts(split.locator(".diff-split-head span")), ["Version 1", "Version 3 (current)"]);
  assert.deepEqual(await texts(split.locator(".diff-old.diff-del .diff-text")), ["echo two"]);
  assert.deepEqual(await texts(split.locator(".diff-new.diff-add .diff-text")), ["echo TWO"]);
  assert.deepEqual(await texts(split.locator(".diff-old.diff-ctx .diff-text")), ["echo one", "echo three"]);
  assert.deepEqual(await texts(split.locator(".diff-new.diff-ctx .diff-text")), ["echo one", "echo three"]);
  const [left, right] = await Promise.all([".diff-old.diff-del", ".diff-new.diff-add"].map((c) => split.locator(c).boundingBox()));
  assert.ok(right.x >= left.x + left.width - 1 && Math.abs(right.y - left.y) < 2, "the changed line sits beside its replacement");
  await shot(page, "versions-side-by-side");
  await page.setViewportSize({ width: 400, height: 800 });
  assert.ok(await fitsWidth(page), "the side-by-side diff fits a 400 px window");
  await page.setViewportSize({ width: 1440, height: 900 });

  // Restore version 1, after confirming.
  await rows.nth(2).locator(".version-restore").click();
  const dialog = page.getByTestId("restore-dialog");
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /new version \(4\)/);
  await dialog.getByTestId("restore-confirm").click();
  await dialog.waitFor({ state: "detached" });
  await page.locator(".toast", { hasText: "Restored version 1 as version 4" }).waitFor();
  await page.locator('.version-row[data-version="4"]').waitFor();
  assert.deepEqual(await rows.evaluateAll((els) => els.map((e) => e.dataset.version)), ["4", "3", "2", "1"]);
  assert.match(await rows.nth(0).textContent(), /restored version 1.*current/);
  await page.getByTestId("diff-same").waitFor();

  const stored = await api("GET", `/${s.id}`);
  assert.equal(stored.version, 4);
  assert.equal(stored.script, "echo one\necho two\necho three\n");
  assert.equal(stored.timeoutMs, 5000);
  await page.getByRole("tab", { name: "Definition" }).click();
  assert.deepEqual(await texts(page.locator(".code-host .cm-line")), ["echo one", "echo two", "echo three", ""]);
  assert.equal(await page.getByLabel("Timeout (seconds)").inputValue(), "5");
  assert.ok(await page.locator(".pill-dirty").isHidden(), "the form holds what is stored: nothing unsaved");

  // A run names the version it ran and links to it in the Versions tab.
  await page.getByTestId("run").click();
  const link = page.getByTestId("run-version");
  await link.waitFor();
  assert.equal((await link.textContent()).trim(), "Version 4");
  await link.click();
  await page.waitForURL(/\/versions\/4$/);
  assert.equal(await page.getByRole("tab", { name: "Versions" }).getAttribute("aria-selected"), "true");
  await page.locator('.version-row.selected[data-version="4"]').waitFor();
  await noProblems(page);
  await page.close();
});

test("a restore the server refuses says why in its dialog and changes nothing", async () => {
  const s = await createScript({ name: `Refused ${tag}`, script: "echo hi\n", env: [{ key: "TOKEN", value: "s3cret", secret: true }] });
  const doc = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...doc, env: [] });
  const page = await browser.page(`/scripts#s/${s.id}/versions/1`);
  await page.locator('.version-row.selected[data-version="1"]').waitFor();
  await page.locator('.version-row[data-version="1"] .version-restore').click();
  const dialog = page.getByTestId("restore-dialog");
  await dialog.getByTestId("restore-confirm").click();
  const error = dialog.locator(".dialog-error");
  await error.waitFor();
  assert.match(await error.textContent(), /secret this script no longer holds/);
  assert.equal((await api("GET", `/${s.id}`)).version, 2);
  await expectRefusal(page);
  await noProblems(page);
  await page.close();
});

test("the Audit page lists changes newest first, filters them, and keeps the filters in the URL", async () => {
  // A script with a history of its own: created, edited twice, version 1 restored as version 4.
  const s = await createScript({ name: `Audited ${tag}`, script: "echo a\n" });
  let doc = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...doc, script: "echo b\n" });
  doc = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...doc, timeoutMs: 9000 });
  await api("POST", `/${s.id}/versions/1/restore`, {});
  const target = `script:${s.codeIdentifier}`;
  const page = await browser.page("/audit");
  const rows = page.locator('[data-testid="audit"] tbody tr[data-action]');
  await rows.first().waitFor();
  assert.ok((await rows.count()) >= 5, "the create, the edits, the restore and the run are listed");
  // Entry ids grow with time.
  const ids = await rows.evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.ok(ids.every((id, i) => i === 0 || ids[i - 1] > id), "newest first");

  await page.getByLabel("Action").selectOption("script.restore");
  await page.getByLabel("Target").fill(target);
  await page.waitForURL((u) => u.searchParams.get("action") === "script.restore" && u.searchParams.get("target") === target);
  await until(async () => (await rows.count()) === 1 && (await rows.first().getAttribute("data-action")) === "script.restore",
    { what: "only the restore entry" });
  const cells = await texts(rows.first().locator("td"));
  assert.equal(cells[1], "admin:admin");
  assert.equal(cells[4], target);
  assert.match(cells[5], /restored from version 1/);
  assert.match(cells[5], /version 4/);
  const exportHref = await page.getByTestId("audit-export").getAttribute("href");
  assert.match(exportHref, /^\/api\/admin\/audit\/export\?.*action=script\.restore/);
  await shot(page, "audit-filtered");

  await page.reload();
  await rows.first().waitFor();
  assert.equal(await page.getByLabel("Action").inputValue(), "script.restore");
  assert.equal(await page.getByLabel("Target").inputValue(), target);
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.first().getAttribute("data-action"), "script.restore");

  await page.setViewportSize({ width: 400, height: 800 });
  assert.ok(await fitsWidth(page), "the audit table scrolls inside its card at 400 px");
  await noProblems(page);
  await page.close();
});

test("scripts export as TOML files and import with a preview before anything changes", async () => {
  const s = await createScript({ name: `Transfer ${tag}`, script: "echo before\n" });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const [file] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-script").click()]);
  assert.equal(file.suggestedFilename(), `${s.codeIdentifier}.toml`);
  const toml = readFileSync(await file.path(), "utf8");
  assert.match(toml, /echo before/);

  await page.locator("a.crumb").click();
  await page.getByTestId("export-all").click();
  const exportDialog = page.getByTestId("export-dialog");
  const [archive] = await Promise.all([page.waitForEvent("download"), exportDialog.getByRole("button", { name: "Download archive" }).click()]);
  assert.equal(archive.suggestedFilename(), "scriptd-scripts.tar");
  assert.ok(readFileSync(await archive.path()).includes(`${s.codeIdentifier}.toml`), "the archive holds the script's file");
  await exportDialog.waitFor({ state: "detached" });

  // A broken file is refused with its name, and nothing is applied.
  await page.getByTestId("import").click();
  const dialog = page.getByTestId("import-dialog");
  const files = dialog.locator("#import-files");
  await files.setInputFiles({ name: "broken.toml", mimeType: "application/toml", buffer: Buffer.from("this is = [not toml") });
  const error = dialog.locator(".dialog-error");
  await error.waitFor();
  assert.match(await error.textContent(), /broken\.toml/);
  assert.ok(await dialog.getByTestId("import-apply").isDisabled());
  await expectRefusal(page);

  const changed = join(scratch, `${s.codeIdentifier}.toml`);
  writeFileSync(changed, toml.replace("echo before", "echo after"));
  await files.setInputFiles(changed);
  const update = dialog.locator(`[data-kind="update"] li[data-code="${s.codeIdentifier}"]`);
  await update.waitFor();
  assert.match(await update.textContent(), /script/);
  assert.ok(await error.isHidden(), "the earlier error is gone");
  assert.equal(await dialog.locator('[data-kind="create"], [data-kind="delete"]').count(), 0);
  assert.equal((await api("GET", `/${s.id}`)).script, "echo before\n", "a preview changes nothing");
  await shot(page, "import-preview");

  await dialog.getByTestId("import-apply").click();
  await dialog.waitFor({ state: "detached" });
  await page.locator(".toast", { hasText: "Imported: 1 updated" }).waitFor();
  assert.equal((await api("GET", `/${s.id}`)).script, "echo after\n");
  await noProblems(page);
  await page.close();
});

// The Scripts page end to end in a real Chromium against a real `scriptd serve`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import {
  BASE, Browser, api, createScript, until, waitForRunEnd, scratchDir, shot, startProxy, setCode, outputLines, problems,
} from "./harness.mjs";

const browser = new Browser();
const scratch = scratchDir();
before(() => browser.start());
after(() => browser.stop());

// Names unique to this run, so the suite can run again against the same server.
const tag = Date.now().toString(36).slice(-5);
const status = (page) => page.getByTestId("run-status");
/** Every error message in view: field errors, banners, previews, toasts. */
const visibleErrors = async (page) =>
  (await page.locator('.field-error:visible, [role="alert"]:visible, .toast-error:visible').allTextContents()).map((t) => t.trim());
const noProblems = async (page) => assert.deepEqual(await problems(page), [], "no page errors, CSP violations or stray dialogs");

test("a bash script is created through the form, streams its output live, and shows up in history", async () => {
  const marker = join(scratch, "go-stream");
  const page = await browser.page("/scripts");
  await page.getByRole("link", { name: "New script" }).click();
  await page.getByLabel("Name", { exact: true }).fill(`Stream demo ${tag}!`);
  assert.equal(await page.getByLabel("Code identifier").inputValue(), `stream-demo-${tag}`, "the identifier follows the name");
  await setCode(page, [
    'echo "first line"',
    "printf '\\033[31mred alert\\033[0m plain\\n'",
    'echo "to stderr" >&2',
    'for i in $(seq 1 60); do echo "filler $i"; done',
    'for i in $(seq 1 1200); do [ -f "$MARKER" ] && break; sleep 0.05; done',
    'for i in $(seq 1 30); do echo "after gate $i"; done',
    'echo "last line"',
  ].join("\n"));
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable name").fill("MARKER");
  await page.getByLabel("Variable value").fill(marker);
  await page.keyboard.press("Control+s");
  await page.waitForURL(/#s\/[^/]+$/);
  const id = decodeURIComponent(page.url().split("#s/")[1]);
  const saved = await api("GET", `/${id}`);
  assert.equal(saved.name, `Stream demo ${tag}!`);
  assert.equal(saved.codeIdentifier, `stream-demo-${tag}`);
  assert.deepEqual(saved.env, [{ key: "MARKER", value: marker, secret: false }]);
  assert.match(saved.script, /after gate/);
  await shot(page, "01-editor-saved");

  await page.keyboard.press("Control+Enter");
  await page.locator(".ln", { hasText: "filler 60" }).waitFor();
  // Streamed while the run is still going: the script is blocked on the marker file.
  await assert.doesNotReject(status(page).filter({ hasText: "Running" }).waitFor());
  assert.equal(await page.locator(".ln", { hasText: "last line" }).count(), 0);
  const runId = decodeURIComponent(page.url().split("/runs/")[1]);
  assert.equal((await api("GET", `/runs/${runId}`)).status, "running");

  const stderr = page.locator(".ln-stderr", { hasText: "to stderr" });
  await stderr.waitFor();
  const color = (loc) => loc.evaluate((el) => getComputedStyle(el).color);
  const stdoutLine = page.locator(".ln-stdout", { hasText: "first line" });
  assert.notEqual(await color(stderr), await color(stdoutLine), "stderr is styled apart from stdout");
  const red = page.locator(".ln-stdout span.fg-ansi-red", { hasText: "red alert" });
  assert.equal(await red.count(), 1, "ANSI red becomes a coloured span");
  assert.notEqual(await color(red), await color(stdoutLine));
  assert.equal(await page.locator(".ln", { hasText: "plain" }).evaluate((el) => el.textContent), "red alert plain", "escape codes are not shown");
  const atBottom = () => page.locator(".out-scroll").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 6);
  // The panel may have just been resized (the run's details appear under it when it ends):
  // it catches up within a frame or two.
  await until(atBottom, { timeout: 3000, what: "the output following the end while the user has not scrolled" });
  await shot(page, "02-run-streaming");

  // Scrolling up pauses auto-scroll; new output then shows a "new lines" button instead.
  await page.locator(".out-scroll").evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event("scroll")); });
  writeFileSync(marker, "go");
  await page.locator(".ln", { hasText: "last line" }).waitFor();
  await status(page).filter({ hasText: "Succeeded" }).waitFor();
  assert.equal(await page.locator(".out-scroll").evaluate((el) => el.scrollTop), 0, "auto-scroll paused");
  const jump = page.locator(".out-jump");
  await jump.waitFor();
  await jump.click();
  await until(atBottom, { what: "scroll to resume at the bottom" });
  await page.getByTestId("exit-code").filter({ hasText: "exit 0" }).waitFor();

  const row = page.locator(`.run-row[data-run-id="${runId}"]`);
  await row.locator(".badge-succeeded").waitFor();
  assert.match(await row.getAttribute("class"), /selected/);
  assert.ok(await row.locator('a[href$="/log"]').count(), "history links the full log");
  await shot(page, "03-run-succeeded");
  await noProblems(page);
  await page.close();
});

test("a past run opens from the history and replays its stored output", async () => {
  const s = await createScript({ name: "Replay me", script: 'echo "only once"\necho "err line" >&2\nexit 3' });
  const { runId: first } = await api("POST", `/${s.id}/run`, {});
  await waitForRunEnd(first);
  const { runId: second } = await api("POST", `/${s.id}/run`, { input: { n: 2 } });
  await waitForRunEnd(second);
  const page = await browser.page(`/scripts#s/${s.id}`);
  const rows = page.locator(".run-row");
  await until(async () => (await rows.count()) === 2, { what: "two runs in history" });
  assert.equal(await rows.first().getAttribute("data-run-id"), second, "newest first");
  await rows.first().locator(".badge-failed").waitFor();
  await rows.nth(1).locator(".run-open").click();
  await page.waitForURL(new RegExp(`/runs/${first}$`));
  await status(page).filter({ hasText: "Failed" }).waitFor();
  await page.getByTestId("exit-code").filter({ hasText: "exit 3" }).waitFor();
  // stdout and stderr are separate pipes, so their relative order is not fixed.
  assert.deepEqual((await outputLines(page)).sort(), ["err line", "only once"]);
  const href = await page.locator(".out-head a[download]").getAttribute("href");
  assert.equal(href, `/api/admin/scripts/runs/${first}/log`);
  const log = await page.evaluate(async (u) => (await fetch(u)).text(), href);
  assert.deepEqual(log.split("\n").sort(), ["", "err line", "only once"]);
  await noProblems(page);
  await page.close();
});

test("a run started by the API trigger appears in an open history as it happens", async () => {
  const s = await createScript({ name: "Triggered", script: "echo from the trigger", concurrency: "parallel",
                                 apiTrigger: { enabled: true } });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const rows = page.locator(".run-row");
  await until(async () => (await page.getByText("No runs yet").count()) === 1, { what: "the empty history" });
  const { token } = await api("POST", `/${s.id}/api-token`);
  const resp = await fetch(`${BASE}/api/scripts/${s.codeIdentifier}/run`, {
    method: "POST", headers: { Authorization: `Bearer ${token}` },
  });
  const { runId } = await resp.json();
  // The page polls only every 30 s as a fallback: within this wait only the run events can
  // have brought the run in.
  await until(async () => (await page.locator(`.run-row[data-run-id="${runId}"]`).count()) === 1,
    { timeout: 10000, what: "the triggered run in the history" });
  await until(async () => (await page.locator(`.run-row[data-run-id="${runId}"]`).getAttribute("data-status")) === "succeeded",
    { timeout: 10000, what: "the triggered run's end in the history" });
  assert.equal(await rows.count(), 1);
  await noProblems(page);
  await page.close();
});

test("run history is paginated, newest first, with older runs loaded on demand", async () => {
  const s = await createScript({ name: "Many runs", script: "echo ok", concurrency: "parallel" });
  const ids = [];
  for (let i = 0; i < 23; i++) ids.push((await api("POST", `/${s.id}/run`, {})).runId);
  await Promise.all(ids.map(waitForRunEnd));
  const page = await browser.page(`/scripts#s/${s.id}`);
  const rows = page.locator(".run-row");
  await until(async () => (await rows.count()) === 20, { what: "the first page of runs" });
  const more = page.getByRole("button", { name: "Load older runs" });
  await more.click();
  await until(async () => (await rows.count()) === 23, { what: "the older runs" });
  assert.ok(await more.isHidden(), "nothing more to load");
  // A refresh (the button, or the page's periodic one) keeps the older runs in view.
  const refreshed = page.waitForResponse((r) => r.url().includes(`/runs?scriptId=${s.id}`));
  await page.getByRole("button", { name: "Refresh run history" }).click();
  assert.match((await refreshed).url(), /[?&]limit=23(&|$)/);
  await until(async () => (await rows.count()) === 23, { what: "the runs after a refresh" });
  const shown = await rows.evaluateAll((els) => els.map((e) => e.dataset.runId));
  assert.equal(new Set(shown).size, 23, "no run listed twice");
  assert.deepEqual([...shown].sort(), [...ids].sort());
  const starts = await api("GET", `/runs?scriptId=${s.id}&limit=23`);
  assert.deepEqual(shown, starts.runs.map((r) => r.id), "same order as the API: newest first");
  await noProblems(page);
  await page.close();
});

test("cancel stops a running script and history records it as canceled", async () => {
  const s = await createScript({ name: "Sleeper", script: 'echo "started"\nsleep 60\necho "never"' });
  const page = await browser.page(`/scripts#s/${s.id}`);
  await page.getByTestId("run").click();
  await page.locator(".ln", { hasText: "started" }).waitFor();
  await page.getByTestId("cancel").click();
  await status(page).filter({ hasText: "Canceled" }).waitFor();
  await page.locator(".run-row").first().locator(".badge-canceled").waitFor();
  assert.equal(await page.getByTestId("cancel").isHidden(), true);
  assert.equal(await page.locator(".ln", { hasText: "never" }).count(), 0);
  await shot(page, "04-run-canceled");
  await noProblems(page);
  await page.close();
});

test("a dropped connection resumes through EventSource's Last-Event-ID without duplicate or lost lines", async () => {
  const marker = join(scratch, "go-reconnect");
  const s = await createScript({
    name: "Reconnect",
    script: [
      'for i in $(seq 1 5); do echo "tick $i"; done',
      'for i in $(seq 1 1200); do [ -f "$MARKER" ] && break; sleep 0.05; done',
      'for i in $(seq 6 10); do echo "tick $i"; done',
    ].join("\n"),
    env: [{ key: "MARKER", value: marker, secret: false }],
  });
  const proxy = await startProxy();
  const streams = [];
  const page = await browser.page(`/scripts#s/${s.id}`, { base: proxy.base });
  page.on("request", (r) => {
    if (r.url().includes("/stream")) streams.push(r.allHeaders().then((h) => ({ url: r.url(), lastEventId: h["last-event-id"] })));
  });
  await page.getByTestId("run").click();
  await page.locator(".ln", { hasText: "tick 5" }).waitFor();
  const runId = decodeURIComponent(page.url().split("/runs/")[1]);

  proxy.cut();
  await page.locator(".out-conn", { hasText: "Reconnecting" }).waitFor();
  await shot(page, "05-reconnecting");
  writeFileSync(marker, "go");
  await waitForRunEnd(runId); // every line is produced while the page is cut off
  proxy.resume();

  await status(page).filter({ hasText: "Succeeded" }).waitFor({ timeout: 30000 });
  const expected = Array.from({ length: 10 }, (_, i) => `tick ${i + 1}`);
  await until(async () => (await outputLines(page)).length >= 10, { what: "all ten lines" });
  assert.deepEqual(await outputLines(page), expected, "each line exactly once, in order");
  const requests = await Promise.all(streams);
  const resumed = requests.slice(1).find((r) => r.lastEventId !== undefined);
  assert.ok(resumed, `the browser reconnected with Last-Event-ID (requests: ${JSON.stringify(requests)})`);
  assert.ok(Number(resumed.lastEventId) >= 5, "it resumed after the lines it had");
  assert.ok(await page.locator(".out-conn").isHidden(), "the reconnecting note is gone");
  await noProblems(page);
  await page.close();
  await proxy.close();
});

test("a browser script runs in a sandboxed iframe that can reach neither the page nor the API", async () => {
  const page = await browser.page("/scripts#new");
  await page.getByLabel("Name", { exact: true }).fill(`In the browser ${tag}`);
  await page.locator('.seg[data-type="browser"]').click();
  await setCode(page, [
    'console.log("hello from the sandbox", input.who);',
    'try { console.log("parent title: " + parent.document.title); } catch (e) { console.log("parent-read blocked: " + e.name); }',
    'try { const r = await fetch("/api/admin/scripts"); console.log("fetch status " + r.status); } catch (e) { console.warn("fetch blocked: " + e.name); }',
    'try { console.log("cookie: [" + document.cookie + "]"); } catch (e) { console.log("cookie blocked: " + e.name); }',
    'console.log("webrtc: " + typeof RTCPeerConnection + " " + typeof webkitRTCPeerConnection);',
    'console.error("an error line");',
    "return 42;",
  ].join("\n"));
  await page.locator(".run-input summary").click();
  await page.locator("#run-input").fill('{"who": "tester"}');
  await page.keyboard.press("Control+s");
  await page.waitForURL(/#s\/[^/]+$/);
  const id = decodeURIComponent(page.url().split("#s/")[1]);

  const frames = [];
  await page.exposeFunction("__recordFrame", (f) => frames.push(f));
  await page.evaluate(() => new MutationObserver((ms) => {
    for (const m of ms) for (const n of m.addedNodes) {
      if (n.tagName === "IFRAME") window.__recordFrame({ sandbox: n.getAttribute("sandbox"), src: n.getAttribute("src") });
    }
  }).observe(document.body, { childList: true, subtree: true }));
  await page.getByTestId("run").click();
  await status(page).filter({ hasText: "Succeeded" }).waitFor();
  const lines = await outputLines(page);
  assert.ok(lines.includes("hello from the sandbox tester"), lines.join("\n"));
  assert.ok(lines.includes("parent-read blocked: SecurityError"), "parent.document is out of reach");
  assert.ok(lines.some((l) => /^fetch blocked: TypeError/.test(l)), "the admin API is out of reach");
  assert.ok(!lines.some((l) => l.startsWith("fetch status")), "no response came back");
  assert.ok(lines.includes("webrtc: undefined undefined"), "WebRTC is taken away before the script runs");
  assert.equal(await page.locator(".ln-stderr", { hasText: "an error line" }).count(), 1, "console.error goes to stderr");
  assert.ok(lines.some((l) => l.includes("returned 42")));
  assert.deepEqual(frames, [{ sandbox: "allow-scripts", src: "/assets/sandbox/runner.html" }]);
  assert.equal(await page.locator("iframe").count(), 0, "the iframe is removed when the script ends");
  assert.equal((await api("GET", `/runs?scriptId=${id}`)).runs.length, 0, "not recorded as a server run");
  await shot(page, "06-browser-script");

  // Stop ends a script that never finishes by itself, and removes its iframe.
  await setCode(page, 'console.log("waiting forever");\nawait new Promise(() => {});');
  await page.getByTestId("run").click();
  await page.locator(".ln", { hasText: "waiting forever" }).waitFor();
  assert.equal(await page.locator("iframe.sandbox-frame").count(), 1);
  await page.getByTestId("cancel").click();
  await status(page).filter({ hasText: "Canceled" }).waitFor();
  assert.equal(await page.locator("iframe").count(), 0);

  // So does the script's timeout.
  await page.getByLabel("Timeout (seconds)").fill("1");
  await page.getByTestId("run").click();
  await status(page).filter({ hasText: "Timed out" }).waitFor();
  assert.equal(await page.locator("iframe").count(), 0);
  await noProblems(page);
  page.expectDialog = true; // leaving with the unsaved timeout change asks first
  await page.close();
});

test("a script name with HTML in it is shown as text everywhere", async () => {
  const name = '<img src=x onerror="window.__xss=1">';
  const s = await createScript({ name, description: "<b>bold?</b>", script: "echo '<script>alert(1)</script>'" });
  const { runId } = await api("POST", `/${s.id}/run`, {});
  await waitForRunEnd(runId);
  const page = await browser.page("/scripts");
  const row = page.locator(`tr[data-id="${s.id}"]`);
  await row.waitFor();
  assert.equal(await row.locator(".name").textContent(), name);
  assert.equal(await row.locator(".desc").textContent(), "<b>bold?</b>");
  assert.equal(await page.locator(".content img, .content b").count(), 0, "no element was created from the text");
  await row.locator("a.row-link").click();
  await page.locator("h1.title", { hasText: name }).waitFor();
  // The latest run opens by itself.
  await page.locator(".ln", { hasText: "<script>alert(1)</script>" }).waitFor();
  assert.equal(await page.locator(".out-lines script").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await shot(page, "07-xss-name-as-text");
  await noProblems(page);
  await page.close();
});

test("the schedule preview lists the next five times for a valid cron and an error for an invalid one", async () => {
  const page = await browser.page("/scripts#new");
  await page.getByLabel("Name", { exact: true }).fill("Nightly");
  await page.getByLabel("Cron expression").fill("30 2 * * *");
  await page.getByLabel("Timezone").fill("Europe/Berlin");
  const preview = page.getByTestId("schedule-preview");
  await preview.locator("ol li").nth(4).waitFor();
  assert.equal(await preview.locator("ol li").count(), 5);
  await preview.getByText("Europe/Berlin").waitFor();
  assert.equal(await preview.getAttribute("data-state"), "ok");
  await preview.scrollIntoViewIfNeeded();
  await shot(page, "08-schedule-preview");

  await page.getByLabel("Cron expression").fill("every tuesday");
  await preview.locator(".preview-error").waitFor();
  assert.equal(await preview.locator("ol li").count(), 0);
  assert.match(await preview.textContent(), /cron|pattern|field/i);

  // The field is marked as it is typed; saving with the schedule on says the error once (the
  // preview under the field already does) and brings the reader to the field.
  const cronField = page.locator('[data-field="cron"]');
  assert.match(await cronField.getAttribute("class"), /has-error/);
  await page.locator("label.switch-row", { hasText: "Run on a schedule" }).click();
  await page.keyboard.press("Control+s");
  await until(() => page.evaluate(() => document.activeElement?.id === "f-cron"), { what: "the cron field focused" });
  const said = await visibleErrors(page);
  assert.equal(said.length, 1, `one error shown: ${JSON.stringify(said)}`);
  assert.match(said[0], /cron|pattern|field/i);
  await cronField.scrollIntoViewIfNeeded();
  await shot(page, "09-schedule-error");
  await page.getByLabel("Cron expression").fill("*/5 * * * *");
  await preview.locator("ol li").nth(4).waitFor();
  assert.doesNotMatch(await cronField.getAttribute("class"), /has-error/);
  await noProblems(page);
  page.expectDialog = true;
  await page.close();
});

test("validation errors appear next to their fields and unsaved changes are not lost silently", async () => {
  const page = await browser.page("/scripts#new");
  await page.keyboard.press("Control+s");
  await page.locator('[data-field="name"] .field-error').waitFor();
  await page.getByLabel("Name", { exact: true }).fill("Env check");
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable name").fill("9LIVES");
  await page.getByLabel("Variable value").fill("x");
  await page.keyboard.press("Control+s");
  const envError = page.locator('[data-field="env[0].key"] .field-error');
  await envError.waitFor();
  assert.match(await envError.textContent(), /9LIVES/);
  assert.equal((await visibleErrors(page)).length, 1, "said once, next to its field");
  await shot(page, "10-validation-error");

  // A code identifier already taken: in words, next to the field, once (no toast as well).
  const taken = await createScript({ name: `Taken ${tag}`, script: "echo" });
  await page.getByRole("button", { name: /Remove/ }).first().click();
  await page.getByLabel("Code identifier").fill(taken.codeIdentifier);
  await page.keyboard.press("Control+s");
  const codeError = page.locator('[data-field="codeIdentifier"] .field-error');
  await codeError.waitFor();
  assert.match(await codeError.textContent(), /already/);
  assert.doesNotMatch(await codeError.textContent(), /codeIdentifier/, "no field names in messages");
  assert.deepEqual(await visibleErrors(page), [await codeError.textContent()]);

  // Leaving with unsaved edits asks first; dismissing keeps the form as it was.
  page.expectDialog = true;
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.locator("a.crumb").click();
  await until(() => dialogs.length === 1, { what: "the leave confirmation" });
  assert.match(dialogs[0], /unsaved/i);
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Env check");
  assert.match(page.url(), /#new$/);
  await page.close();
});

test("secrets stay hidden, and an API token is shown once with a working curl line", async () => {
  const s = await createScript({
    name: "Triggered", script: 'echo "token is $TOKEN"',
    env: [{ key: "TOKEN", value: "hunter2-secret", secret: true }],
  });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const value = page.getByLabel("Variable value");
  assert.equal(await value.inputValue(), "", "the stored secret is not sent to the page");
  assert.match(await value.getAttribute("placeholder"), /set/);
  await page.locator("label.switch-row", { hasText: "Allow runs from an HTTP request" }).click();
  await page.keyboard.press("Control+s");
  await page.locator(".toast", { hasText: /^Saved$/ }).waitFor();
  assert.equal((await api("GET", `/${s.id}`)).apiTrigger.enabled, true);
  assert.ok(await page.locator(".pill-dirty").isHidden(), "no unsaved changes left");
  await page.getByRole("button", { name: "Generate token" }).click();
  const token = (await page.getByTestId("api-token").textContent()).trim();
  assert.ok(token.length >= 32);
  const curl = await page.locator("code.curl").textContent();
  assert.ok(curl.includes(token) && curl.includes(`/api/scripts/${s.codeIdentifier}/run`));
  await page.locator("code.curl").scrollIntoViewIfNeeded();
  await shot(page, "11-api-token");

  const url = curl.match(/(http:\/\/\S+)/)[1];
  const resp = await fetch(url, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: "{}" });
  assert.equal(resp.status, 202);
  const { runId } = await resp.json();
  await waitForRunEnd(runId);
  await page.getByRole("button", { name: "Refresh run history" }).click();
  await page.locator(`.run-row[data-run-id="${runId}"] .run-open`).click();
  await page.locator(".ln", { hasText: "token is ***" }).waitFor();
  assert.equal(await page.getByText("hunter2-secret").count(), 0, "the secret is masked in output");
  await noProblems(page);
  await page.close();
});

test("100 000 lines of output stay responsive: the panel keeps the last lines and links the full log", async () => {
  const s = await createScript({ name: "Chatty", script: 'seq 1 100000 | sed "s/^/row /"' });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const started = Date.now();
  await page.getByTestId("run").click();
  await status(page).filter({ hasText: "Succeeded" }).waitFor({ timeout: 60000 });
  await page.locator(".ln", { hasText: /^row 100000$/ }).waitFor({ timeout: 30000 });
  const shown = await page.locator(".out-lines .ln").count();
  assert.ok(shown <= 5000, `${shown} lines in the DOM`);
  const note = page.locator(".out-cap");
  await note.getByText("100,000").waitFor();
  assert.ok(await note.locator('a[href$="/log"]').count());
  // The page still answers quickly.
  const t0 = Date.now();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  assert.ok(Date.now() - t0 < 1000, "a frame renders within a second");
  await shot(page, "12-large-output");
  console.log(`# 100 000 lines streamed and rendered in ${Date.now() - started} ms`);
  await noProblems(page);
  await page.close();
});

test("the list shows schedule, next run and last run, searches, opens with the keyboard and runs a script", async () => {
  const s = await createScript({
    name: `Listed nightly ${tag}`, description: "Cleans up", script: "exit 0",
    schedule: { enabled: true, cron: "0 4 * * *", timezone: "UTC" },
  });
  const { runId } = await api("POST", `/${s.id}/run`, {});
  await waitForRunEnd(runId);
  const page = await browser.page("/scripts");
  const row = page.locator(`tr[data-id="${s.id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /0 4 \* \* \*/);
  assert.match(await row.textContent(), /next/);
  await row.locator(".badge-succeeded").waitFor();
  assert.match(await row.textContent(), /Bash/);
  assert.match(await row.textContent(), /Enabled/);
  await shot(page, "00-script-list");
  assert.equal(await page.locator("nav .nav-item.active").textContent().then((t) => t.trim()), "Scripts");

  await page.keyboard.press("/");
  await page.keyboard.type(`listed nightly ${tag}`);
  await until(async () => (await page.locator("tbody tr").count()) === 1, { what: "search to narrow the list" });
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await page.waitForURL(new RegExp(`#s/${s.id}`));
  await page.locator("h1.title", { hasText: `Listed nightly ${tag}` }).waitFor();

  // Run straight from the list: the run opens and its result shows without a reload.
  await page.locator("a.crumb").click();
  await row.getByRole("button", { name: /^Run / }).click();
  await page.waitForURL(/\/runs\/[^/]+$/);
  await status(page).filter({ hasText: "Succeeded" }).waitFor();
  await until(async () => (await page.locator(".run-row").count()) === 2, { what: "the second run in history" });
  await noProblems(page);
  await page.close();
});

test("the dashboard shows what runs now and the last 24 hours, and follows runs live", async () => {
  const ok = await createScript({ name: `Dash ok ${tag}`, script: "echo fine", concurrency: "parallel" });
  const bad = await createScript({ name: `Dash bad ${tag}`, script: "exit 4", concurrency: "parallel" });
  const slow = await createScript({ name: `Dash slow ${tag}`, script: "sleep 30" });
  let lastBad;
  for (const s of [ok, ok, bad]) {
    const { runId } = await api("POST", `/${s.id}/run`, {});
    await waitForRunEnd(runId);
    lastBad = runId;
  }
  const page = await browser.page("");
  const value = async (id) => (await page.getByTestId(id).locator(".stat-value").textContent()).trim();
  const stats = await api("GET", "/runs/stats?hours=24");
  const sum = (...statuses) => stats.hours.reduce((a, hr) => a + statuses.reduce((b, s) => b + (hr.counts[s] || 0), 0), 0);
  await until(async () => (await value("succeeded-24h")) === String(sum("succeeded")), { what: "the succeeded count" });
  assert.equal(await value("failed-24h"), String(sum("failed", "timed_out")));
  assert.equal(await value("running"), String(stats.running));
  const bars = page.locator('[data-testid="runs-chart"] .bar');
  assert.equal(await bars.count(), 24, "one bar per hour");
  const lastHour = stats.hours[23];
  assert.equal(await bars.nth(23).getAttribute("data-total"),
    String(Object.values(lastHour.counts).reduce((a, b) => a + b, 0)));
  assert.ok(await page.getByTestId("failing").getByRole("link", { name: `Dash bad ${tag}` }).isVisible());
  const nodes = await api("GET", "/nodes");
  const shown = page.getByTestId("nodes").locator("li");
  assert.equal(await shown.count(), nodes.length, "every node");
  assert.equal(await shown.first().getAttribute("data-node"), nodes[0].node);
  const recent = page.getByTestId("recent").locator("li");
  assert.equal(await recent.first().getAttribute("data-run-id"), lastBad, "newest first");
  assert.equal(await recent.first().getAttribute("data-status"), "failed");

  // Live, from the run events (the page polls only every minute as a fallback).
  const before = Number(await value("running"));
  const charted = async () => (await bars.evaluateAll((els) => els.map((e) => Number(e.dataset.total))))
    .reduce((a, b) => a + b, 0);
  const chartedBefore = await charted();
  const { runId } = await api("POST", `/${slow.id}/run`, {});
  await until(async () => (await value("running")) === String(before + 1), { timeout: 10000, what: "the running count going up" });
  await until(async () => (await charted()) === chartedBefore + 1, { timeout: 10000, what: "the new run in the chart" });
  await api("POST", `/runs/${runId}/cancel`);
  await until(async () => (await value("running")) === String(before), { timeout: 10000, what: "the running count going down" });
  await until(async () => (await recent.first().getAttribute("data-status")) === "canceled", { timeout: 10000, what: "the canceled run first" });
  await page.setViewportSize({ width: 400, height: 900 });
  await shot(page, "dashboard-400");
  await noProblems(page);
  await page.close();
});

test("the runs page lists every run with filters, pages, live updates and a link to each run", async () => {
  const good = await createScript({ name: `All runs ok ${tag}`, script: "echo ok-line", concurrency: "parallel" });
  const bad = await createScript({ name: `All runs bad ${tag}`, script: "echo bad-line; exit 5", concurrency: "parallel" });
  const runs = [];
  for (const s of [good, bad, good]) {
    const { runId } = await api("POST", `/${s.id}/run`, {});
    await waitForRunEnd(runId);
    runs.push(runId);
  }
  const page = await browser.page(`/runs?scriptId=${good.id}`);
  const rows = page.getByTestId("all-runs").locator(".run-row");
  // The script filter came from the address: its two runs, newest first.
  await until(async () => (await rows.count()) === 2, { what: "the script's runs" });
  assert.deepEqual(await rows.evaluateAll((els) => els.map((e) => e.dataset.runId)), [runs[2], runs[0]]);
  // Status filter, also kept in the address.
  await page.selectOption("#filter-scriptId", "");
  await page.selectOption("#filter-status", "failed");
  await until(async () => (await rows.first().getAttribute("data-run-id")) === runs[1], { what: "the failed run first" });
  assert.ok((await rows.evaluateAll((els) => els.map((e) => e.dataset.status))).every((s) => s === "failed"));
  assert.match(page.url(), /status=failed/);
  // Live: a new failing run appears on top without a reload.
  const { runId: live } = await api("POST", `/${bad.id}/run`, {});
  await until(async () => (await rows.first().getAttribute("data-run-id")) === live
    && (await rows.first().getAttribute("data-status")) === "failed", { timeout: 10000, what: "the new run, live" });
  // Pages: with no filter and more runs than a page (whatever ran before), older ones load on
  // demand, none twice.
  const before = (await api("GET", "/runs?limit=200")).runs.length;
  const extra = await Promise.all(Array.from({ length: Math.max(0, 55 - before) },
    async () => (await api("POST", `/${good.id}/run`, {})).runId));
  await Promise.all(extra.map(waitForRunEnd));
  await page.getByRole("button", { name: "Clear" }).click();
  const total = (await api("GET", "/runs?limit=200")).runs.length;
  assert.ok(total > 50, `more than a page of runs (${total})`);
  await until(async () => (await rows.count()) === 50, { what: "the first page" });
  await page.getByRole("button", { name: "Load older runs" }).click();
  await until(async () => (await rows.count()) === Math.min(total, 100), { what: "the second page" });
  const ids = await rows.evaluateAll((els) => els.map((e) => e.dataset.runId));
  assert.equal(new Set(ids).size, ids.length, "no run listed twice");
  assert.deepEqual(ids, (await api("GET", `/runs?limit=${ids.length}`)).runs.map((r) => r.id), "newest first, as the API");
  // A row opens its run, with its output, on the script's page.
  await page.locator(`.run-row[data-run-id="${runs[1]}"]`).click();
  await page.waitForURL(new RegExp(`/scripts#s/${bad.id}/runs/${runs[1]}$`));
  await until(async () => (await outputLines(page)).includes("bad-line"), { what: "the run's output" });
  await page.goto(page.url().replace(/\/scripts#.*$/, "/runs"));
  await page.setViewportSize({ width: 400, height: 900 });
  await until(async () => (await page.getByTestId("all-runs").locator(".run-row").count()) > 0, { what: "the runs at 400 px" });
  await shot(page, "runs-400");
  await noProblems(page);
  await page.close();
});

test("Run is disabled with the reason when the script cannot start, and messages are in plain words", async () => {
  const off = await createScript({ name: `Off ${tag}`, script: "echo never", enabled: false });
  let page = await browser.page(`/scripts#s/${off.id}`);
  const run = page.getByTestId("run");
  const why = page.getByTestId("run-blocked");
  await until(async () => await run.isDisabled(), { what: "Run disabled for a disabled script" });
  assert.match(await why.textContent(), /disabled/i);
  await page.close();

  const busy = await createScript({ name: `Busy ${tag}`, script: "sleep 30", concurrency: "single" });
  const { runId } = await api("POST", `/${busy.id}/run`, {});
  page = await browser.page(`/scripts#s/${busy.id}`);
  await until(async () => await page.getByTestId("run").isDisabled(), { what: "Run disabled while a single run goes on" });
  assert.match(await page.getByTestId("run").getAttribute("title"), /one at a time/);
  await api("POST", `/runs/${runId}/cancel`);
  await until(async () => !(await page.getByTestId("run").isDisabled()), { timeout: 10000, what: "Run enabled again" });
  assert.ok(await page.getByTestId("run-blocked").isHidden());

  // A missing script says so once, in words.
  await page.goto(page.url().replace(/#.*$/, "#s/no-such-script"));
  await until(async () => (await page.getByText("Script not found").count()) === 1, { what: "the not-found page" });
  assert.equal(await page.getByText("script not found", { exact: true }).count(), 0, "the API's wording is not repeated");
  await page.close();
});

test("a new trigger token is brought into view", async () => {
  const s = await createScript({ name: `Token view ${tag}`, script: "echo t", apiTrigger: { enabled: true } });
  const page = await browser.page(`/scripts#s/${s.id}`);
  await page.setViewportSize({ width: 1280, height: 520 });
  await page.getByRole("button", { name: "Generate token" }).click();
  const token = page.getByTestId("api-token");
  await until(async () => await token.isVisible(), { what: "the token" });
  await until(async () => token.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight;
  }), { what: "the token scrolled into view" });
  await noProblems(page);
  await page.close();
});

test("a run shows how it was started, its input and its result, and runs again with the same input", async () => {
  const s = await createScript({ name: `Doubler ${tag}`, type: "node", runner: "isolated",
                                 script: "({ doubled: input.n * 2 })", concurrency: "parallel" });
  const { runId } = await api("POST", `/${s.id}/run`, { input: { n: 21 } });
  await waitForRunEnd(runId);
  const page = await browser.page(`/scripts#s/${s.id}/runs/${runId}`);
  const details = page.getByTestId("run-details");
  await until(async () => await details.isVisible(), { what: "the run's details" });
  assert.match(await page.getByTestId("run-who").textContent(), /Started by hand \(admin/);
  assert.deepEqual(JSON.parse(await page.getByTestId("run-input-value").locator("pre").textContent()), { n: 21 });
  assert.deepEqual(JSON.parse(await page.getByTestId("run-result").locator("pre").textContent()), { doubled: 42 });
  assert.equal((await page.getByTestId("run-again").textContent()).trim(), "Run again (version 1)", "it says which version it runs");
  await page.getByTestId("run-again").click();
  const again = await until(async () => {
    const { runs } = await api("GET", `/runs?scriptId=${s.id}`);
    return runs.length === 2 ? runs[0] : null;
  }, { what: "the second run" });
  assert.deepEqual(again.input, { n: 21 }, "the same input");
  assert.equal(again.scriptVersion, 1);
  const done = await waitForRunEnd(again.id);
  assert.deepEqual(done.result, { doubled: 42 });
  await until(async () => page.url().endsWith(`/runs/${again.id}`), { what: "the new run on screen" });
  await noProblems(page);
  await page.close();
});

test("at 400 px the scripts list fits and the history keeps its columns apart", async () => {
  const s = await createScript({ name: `A rather long script name for a narrow screen ${tag}`, script: "echo narrow" });
  await waitForRunEnd((await api("POST", `/${s.id}/run`, {})).runId);
  const page = await browser.page("/scripts");
  await page.setViewportSize({ width: 400, height: 900 });
  const table = page.locator(".scripts-table");
  await until(async () => (await page.getByRole("link", { name: new RegExp(`narrow screen ${tag}`) }).count()) === 1, { what: "the list" });
  const fits = await table.evaluate((t) => t.scrollWidth <= t.parentElement.clientWidth);
  assert.ok(fits, "the scripts table fits its card");
  await shot(page, "narrow-list");
  await page.goto(page.url().replace(/#.*$/, "") + `#s/${s.id}`);
  const row = page.locator(".run-row").first();
  await until(async () => await row.isVisible(), { what: "the history" });
  const when = row.locator(".when");
  // (The history may be re-rendering as the events stream opens.)
  await until(async () => ((await when.boundingBox())?.width ?? 0) > 20, { what: "the Started value shown" });
  const boxes = await page.locator(".run-list-head > span").evaluateAll((els) =>
    els.filter((e) => e.offsetWidth > 0 && e.textContent).map((e) => e.getBoundingClientRect()).map((r) => [r.left, r.right]));
  for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i][0] >= boxes[i - 1][1] - 1, `header labels apart: ${JSON.stringify(boxes)}`);
  await page.locator(".history").scrollIntoViewIfNeeded();
  await shot(page, "narrow-detail");
  await noProblems(page);
  await page.close();
});

test("a finished 20 MB log opens at its end, scrolls back page by page and is searched on the server", async () => {
  const s = await createScript({ name: `Big log ${tag}`, script: "seq 1 2800000" });
  const { runId } = await api("POST", `/${s.id}/run`, {});
  const done = await waitForRunEnd(runId);
  assert.ok(done.logBytes > 20 * 1000 * 1000, `a 20 MB log (${done.logBytes})`);
  const page = await browser.page(`/scripts#s/${s.id}`);
  const row = page.locator(`.run-row[data-run-id="${runId}"] .run-open`);
  await until(async () => await row.isVisible(), { what: "the run in the history" });
  const opened = Date.now();
  await row.click();
  await until(async () => (await outputLines(page)).at(-1) === "2800000", { what: "the log's last line" });
  console.log(`a 20 MB log showed its last line ${Date.now() - opened} ms after the click`);
  const lines = await outputLines(page);
  assert.equal(lines[0], "2795001", "only the last 5000 lines were replayed");
  const note = page.locator(".out-cap");
  assert.match(await note.textContent(), /Opened at the end: showing lines 2,795,001–2,800,000/);
  assert.ok(await note.getByRole("link", { name: /download the full log/i }).isVisible());

  // Scrolling up loads the earlier lines, a page at a time, and keeps the reader's place.
  const scroller = page.locator(".out-scroll");
  const toTop = () => scroller.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event("scroll")); });
  await toTop();
  await until(async () => (await outputLines(page))[0] === "2793001", { what: "the lines before the first shown" });
  assert.ok(await scroller.evaluate((el) => el.scrollTop > 0), "the view stays where it was, not at the new top");
  await toTop();
  await until(async () => (await outputLines(page))[0] === "2791001", { what: "another page of earlier lines" });
  const shown = await outputLines(page);
  assert.deepEqual(shown.slice(0, 3), ["2791001", "2791002", "2791003"]);
  assert.equal(shown.at(-1), "2800000");
  assert.match(await note.textContent(), /Showing lines 2,791,001–2,800,000 .*Scroll up for earlier lines/);

  // Search runs on the server over the stored log, a page of matches at a time, and opens the
  // log at a match.
  await page.getByRole("button", { name: "Search", exact: true }).click();
  const box = page.getByRole("searchbox", { name: "Search this run's log" });
  await box.fill("7777");
  await box.press("Enter");
  const summary = page.locator(".log-search-summary");
  await until(async () => (await summary.textContent()) === "100 matching lines so far", { what: "a first page of matches" });
  const hits = page.locator(".log-hit");
  assert.equal(await hits.count(), 100);
  assert.deepEqual(await hits.locator("mark").evaluateAll((m) => [...new Set(m.map((x) => x.textContent))]), ["7777"]);
  await page.getByRole("button", { name: "Search on" }).click();
  await until(async () => (await summary.textContent()) === "200 matching lines so far", { what: "the next page of matches" });
  const target = hits.nth(150);
  const want = (await target.locator(".log-hit-text").textContent()).trim();
  await target.click();
  const hit = page.locator(".ln-hit");
  await until(async () => (await hit.count()) === 1 && (await hit.textContent()) === want, { what: "the match shown and marked" });
  assert.ok(await hit.isVisible(), "the match is scrolled into view");
  assert.ok((await outputLines(page)).length <= 20000, "only a window of the log is in the page");
  await shot(page, "log-search");
  // Back to the end.
  await page.getByRole("button", { name: "Go to the end" }).click();
  await until(async () => (await outputLines(page)).at(-1) === "2800000", { what: "the end again" });
  await noProblems(page);
  await page.close();
});

test("a schedule tick skipped while the last run goes on is in the history, naming that run", async () => {
  const s = await createScript({
    name: `Skips ${tag}`, script: "sleep 2.5", concurrency: "single",
    schedule: { enabled: true, cron: "* * * * * *", timezone: "UTC" },
  });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const skippedRow = page.locator(".run-row", { has: page.locator(".badge-skipped") }).first();
  await until(async () => await skippedRow.isVisible(), { what: "a skipped tick in the open history" });
  assert.equal(await skippedRow.locator(".badge-skipped").textContent(), "Skipped");
  await skippedRow.locator(".run-open").click();
  const who = page.getByTestId("run-who");
  await until(async () => /was still running/.test(await who.textContent()), { what: "why it was skipped" });
  assert.match(await who.textContent(), /^The tick of .+ was skipped: run [0-9a-f]{8} was still running/);
  // Stop the schedule before following the link, so the history settles.
  const stopped = await api("GET", `/${s.id}`);
  await api("PUT", `/${s.id}`, { ...stopped, schedule: { ...stopped.schedule, enabled: false } });
  const link = who.getByRole("link");
  const href = await link.getAttribute("href");
  await link.click();
  await until(async () => page.url().endsWith(href), { what: "the run it collided with opened" });
  await until(async () => (await page.locator(".out-title").textContent()).includes(href.slice(-8)), { what: "its output shown" });

  // The catch-up choice is saved with the schedule.
  await page.locator("#f-catch-up").selectOption("last");
  await page.keyboard.press("Control+s");
  await until(async () => (await api("GET", `/${s.id}`)).schedule.catchUp === "last", { what: "catch-up saved" });
  await noProblems(page);
  await page.close();
});

test("a script run in a terminal prints what it prints only on one, as one stream", async () => {
  const s = await createScript({ name: `Terminal ${tag}`, script: "test -t 1 && echo on-a-terminal; echo to-stderr >&2" });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const tty = page.locator("label.switch-row", { hasText: "Run in a terminal" });
  await tty.click();
  assert.ok(await page.getByRole("switch", { name: "Run in a terminal" }).isChecked());
  await page.keyboard.press("Control+s");
  await until(async () => (await api("GET", `/${s.id}`)).tty === true, { what: "tty saved" });
  await page.getByTestId("run").click();
  await status(page).filter({ hasText: "Succeeded" }).waitFor();
  await page.locator(".ln-stdout", { hasText: "on-a-terminal" }).waitFor();
  await page.locator(".ln-stdout", { hasText: "to-stderr" }).waitFor();
  assert.equal(await page.locator(".ln-stderr").count(), 0, "one stream under a terminal");
  // Not offered where it cannot apply.
  await page.getByRole("radio", { name: "Node.js" }).click();
  await page.locator("#f-runner").selectOption("isolated");
  assert.ok(await tty.isHidden());
  await noProblems(page);
  page.expectDialog = true;
  await page.close();
});

test("retries set in the form give a chain of runs the history and the run view link", async () => {
  const count = join(scratch, `retry-count-${tag}`);
  const s = await createScript({
    name: `Flaky ${tag}`,
    script: `n=$(cat ${count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${count}; echo "attempt $n"; [ $n -ge 3 ]`,
  });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const retries = page.getByLabel("Retries", { exact: true });
  await retries.fill("3");
  await page.getByLabel("First wait (seconds)").fill("0.2");
  await page.getByLabel("Each next wait ×").fill("1");
  await page.keyboard.press("Control+s");
  await until(async () => (await api("GET", `/${s.id}`)).retry.retries === 3, { what: "the policy saved" });
  const saved = (await api("GET", `/${s.id}`)).retry;
  assert.equal(saved.delayMs, 200);
  assert.equal(saved.factor, 1);

  await page.getByTestId("run").click();
  const rows = page.locator(".run-row");
  await until(async () => (await rows.count()) === 3 && (await page.locator(".run-row .badge-succeeded").count()) === 1,
    { what: "three attempts in the history, the last one succeeded" });
  assert.deepEqual(await page.locator(".run-row .attempt").allTextContents(), ["3/4", "2/4"], "newest first, each retry marked");
  assert.equal(await page.locator(".run-row.is-retry").count(), 2);
  await rows.first().locator(".run-open").click();
  const attempt = page.getByTestId("run-attempt");
  await attempt.waitFor();
  assert.match(await attempt.textContent(), /Attempt 3 of 4: a retry of run [0-9a-f]{8}\./);
  await page.locator(".ln", { hasText: "attempt 3" }).waitFor();
  await attempt.getByRole("link").click();
  await until(async () => (await page.locator(".ln", { hasText: "attempt 1" }).count()) === 1, { what: "the first attempt opened" });
  await shot(page, "retries");

  // A value out of range is named next to its field.
  await retries.fill("11");
  await page.keyboard.press("Control+s");
  const err = page.locator('[data-field="retry.retries"] .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /between 0 and 10/);
  await noProblems(page);
  page.expectDialog = true;
  await page.close();
});

test("a script with an input schema runs from a form that checks each field", async () => {
  const s = await createScript({
    name: `Form ${tag}`, script: "printf '%s\\n' \"$SCRIPTD_INPUT\"",
    inputSchema: {
      type: "object",
      properties: {
        project: { type: "string", title: "Project", pattern: "^[a-z]+$", description: "Lower-case name" },
        count: { type: "integer", minimum: 1, maximum: 5, default: 2 },
        mode: { type: "string", enum: ["fast", "safe"], default: "safe" },
        dry: { type: "boolean" },
      },
      required: ["project"],
    },
  });
  const page = await browser.page(`/scripts#s/${s.id}`);
  const form = page.getByTestId("input-form");
  await form.waitFor();
  assert.ok(await page.locator("details.run-input").evaluate((d) => d.open), "opens by itself: a field needs a value");
  assert.deepEqual(await form.locator(".field > label, .field label.check-row").allTextContents(), ["Project *", "count", "mode", "dry"]);
  assert.equal(await page.getByLabel("count").inputValue(), "2", "defaults filled in");

  const before = (await api("GET", `/runs?scriptId=${s.id}`)).runs.length;
  await page.getByTestId("run").click();
  const projectError = form.locator('[data-field="input.project"] .field-error');
  await projectError.waitFor();
  assert.match(await projectError.textContent(), /required/);
  await page.getByLabel("Project").fill("Web");
  assert.ok(await projectError.isHidden(), "typing clears the error");
  await page.getByLabel("count").fill("9");
  await page.getByTestId("run").click();
  assert.match(await projectError.textContent(), /pattern/);
  assert.match(await form.locator('[data-field="input.count"] .field-error').textContent(), /at most 5/);
  assert.equal((await api("GET", `/runs?scriptId=${s.id}`)).runs.length, before, "nothing started");
  await shot(page, "input-form");

  await page.getByLabel("Project").fill("web");
  await page.getByLabel("count").fill("3");
  await page.getByLabel("dry").check();
  await page.getByTestId("run").click();
  await status(page).filter({ hasText: "Succeeded" }).waitFor();
  const line = await page.locator(".ln-stdout").first().textContent();
  assert.deepEqual(JSON.parse(line), { project: "web", count: 3, mode: "safe", dry: true });

  // A schema that is not JSON is caught next to its field before saving.
  const schemaBox = page.locator("#f-input-schema");
  await schemaBox.fill("{ not json");
  await page.keyboard.press("Control+s");
  const schemaError = page.locator('[data-field="inputSchema"] .field-error');
  await schemaError.waitFor();
  assert.match(await schemaError.textContent(), /not valid JSON/);
  await noProblems(page);
  page.expectDialog = true;
  await page.close();
});

test("webhooks set in the form are tested from the page and a run shows what they were told", async () => {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => { got.push({ event: req.headers["x-scriptd-event"], signature: req.headers["x-scriptd-signature"], body }); res.writeHead(200).end(); });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  try {
    const s = await createScript({ name: `Hooks ${tag}`, script: "echo broken; exit 2" });
    const page = await browser.page(`/scripts#s/${s.id}`);
    await page.getByRole("button", { name: "Add webhook" }).click();
    await page.getByLabel("Webhook URL").fill(url);
    await page.getByLabel("Signing secret").fill("ui-secret");
    await page.keyboard.press("Control+s");
    await until(async () => (await api("GET", `/${s.id}`)).notifications?.[0]?.hasSecret === true, { what: "the webhook saved" });
    // The form reloads from the saved script: the secret is not shown back.
    await until(async () => (await page.getByLabel("Signing secret").inputValue()) === "", { what: "the secret box emptied" });
    assert.match(await page.getByLabel("Signing secret").getAttribute("placeholder"), /stored/);

    await page.getByRole("button", { name: "Send a test" }).click();
    const result = page.getByTestId("hook-result");
    await result.waitFor();
    assert.match(await result.textContent(), /answered 200/);
    assert.equal(got.at(-1).event, "test");
    assert.match(got.at(-1).signature, /^t=\d+,v1=[0-9a-f]{64}$/);

    await page.getByTestId("run").click();
    await status(page).filter({ hasText: "Failed" }).waitFor();
    const told = page.getByTestId("run-deliveries");
    await until(async () => {
      const runId = (await api("GET", `/runs?scriptId=${s.id}`)).runs[0].id;
      const d = await api("GET", `/runs/${runId}/deliveries`);
      return d[0]?.status === "delivered";
    }, { what: "the failure delivered" });
    // Reopen the run to read its details as stored.
    await page.locator(".run-row .run-open").first().click();
    await told.waitFor();
    assert.match(await told.textContent(), /failure → 127\.0\.0\.1:\d+: delivered \(200\)/);
    assert.equal(JSON.parse(got.at(-1).body).run.exitCode, 2);
    await noProblems(page);
    page.expectDialog = true;
    await page.close();
  } finally {
    server.close();
  }
});

// Shared setup for the UI tests: one headless Debian Chromium (driven by playwright-core), the
// server under test (SCRIPTD_URL, started by tests/ui_e2e.rs), API helpers, screenshots, and a
// TCP proxy that can cut live connections to test SSE resumption.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

const here = dirname(fileURLToPath(import.meta.url));
export const BASE = (process.env.SCRIPTD_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
export const USER = process.env.SCRIPTD_USER || "admin";
export const PASSWORD = process.env.SCRIPTD_PASSWORD || "";
export const ADMIN = process.env.SCRIPTD_ADMIN_PATH || "/admin";
export const ARTIFACTS = process.env.SCRIPTD_ARTIFACTS || join(here, "..", "..", "test-artifacts");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
mkdirSync(ARTIFACTS, { recursive: true });

const AUTH = "Basic " + Buffer.from(`${USER}:${PASSWORD}`).toString("base64");

/** Calls the admin API from the test (not through the browser). */
export async function api(method, path, body) {
  const resp = await fetch(`${BASE}/api/admin/scripts${path}`, {
    method,
    headers: { Authorization: AUTH, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) throw new Error(`${method} ${path} → ${resp.status}: ${text}`);
  return data;
}

let counter = 0;
/** Creates a script through the API with a unique code identifier. */
export async function createScript(fields) {
  counter += 1;
  const code = `ui-${Date.now().toString(36)}-${counter}`;
  return api("POST", "", { codeIdentifier: code, type: "bash", ...fields });
}

/** Waits for `fn()` to return a truthy value (polling), never a fixed sleep. */
export async function until(fn, { timeout = 15000, every = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export async function waitForRunEnd(runId) {
  return until(async () => {
    const r = await api("GET", `/runs/${runId}`);
    return ["succeeded", "failed", "canceled", "timed_out"].includes(r.status) ? r : null;
  }, { timeout: 30000, what: `run ${runId} to finish` });
}

export function scratchDir() {
  return mkdtempSync(join(process.env.SCRIPTD_TMP || tmpdir(), "scriptd-ui-"));
}

/** One browser for the whole file; each test opens its own page and checks it for errors. */
export class Browser {
  async start() {
    this.profile = mkdtempSync(join(tmpdir(), "scriptd-chromium-"));
    this.context = await chromium.launchPersistentContext(this.profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
      httpCredentials: { username: USER, password: PASSWORD },
      viewport: { width: 1440, height: 900 },
      acceptDownloads: true,
    });
    for (const p of this.context.pages()) await p.close().catch(() => {});
  }

  /**
   * A fresh page. Page errors and dialogs nobody expected are collected in `page.problems`;
   * `problems(page)` adds the page's CSP violations.
   */
  async page(path = "/scripts", { base = BASE } = {}) {
    const page = await this.context.newPage();
    page.setDefaultTimeout(15000);
    page.problems = [];
    page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
    // CSP violations of the dashboard itself (the browser-script sandbox blocking a fetch is the
    // point of the sandbox, so only the top frame counts).
    await page.addInitScript(() => {
      if (window.top !== window) return;
      window.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => {
        window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    page.on("dialog", (d) => {
      if (!page.expectDialog) {
        page.problems.push(`unexpected dialog: ${d.type()} ${d.message()}`);
        d.dismiss().catch(() => {});
      }
    });
    await page.goto(base + ADMIN + path);
    return page;
  }

  async stop() {
    await this.context?.close();
    if (this.profile) rmSync(this.profile, { recursive: true, force: true });
  }
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** A TCP proxy to the server whose live connections the test can cut, and refuse for a while. */
export async function startProxy() {
  const target = new URL(BASE);
  const sockets = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    /** Drops every open connection and refuses new ones until `resume()`. */
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    resume() {
      refusing = false;
    },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(r); }),
  };
}

/** Replaces the CodeMirror document (the editor lives in an open shadow root). */
export async function setCode(page, code) {
  await page.locator(".code-host .cm-content").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

/** Text of every output line, in order. */
export const outputLines = (page) => page.locator(".out-lines .ln").allTextContents();

/** Everything that went wrong on the page: script errors, CSP violations, stray dialogs. */
export async function problems(page) {
  const csp = await page.evaluate(() => window.__csp || []).catch(() => []);
  return [...page.problems, ...csp.map((c) => `CSP: ${c}`)];
}

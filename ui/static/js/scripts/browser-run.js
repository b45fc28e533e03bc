// Runs a browser script in a sandboxed iframe (sandbox="allow-scripts", no allow-same-origin,
// and the sandbox page's own CSP: no network, eval allowed only there). The code and input go in
// over a private MessageChannel; console output comes back the same way. Stop and the timeout
// remove the iframe, which ends everything the script started.

const SANDBOX_URL = "/assets/sandbox/runner.html";

export class BrowserRun {
  /** handlers: onLine(stream, text), onDone(status, {error, durationMs}) */
  constructor({ code, input, timeoutMs, host }, handlers) {
    this.h = handlers;
    this.done = false;
    this.startedAt = performance.now();
    const frame = (this.frame = document.createElement("iframe"));
    frame.className = "sandbox-frame";
    frame.setAttribute("sandbox", "allow-scripts");
    frame.setAttribute("title", "Browser script sandbox");
    frame.setAttribute("aria-hidden", "true");
    frame.setAttribute("tabindex", "-1");
    frame.addEventListener("load", () => {
      if (this.done) return;
      const channel = new MessageChannel();
      this.port = channel.port1;
      this.port.onmessage = (e) => this.receive(e.data);
      // The sandbox has an opaque origin, so "*" is the only target that reaches it; the port
      // makes every later message private to this run.
      frame.contentWindow.postMessage({ type: "scriptd:run", code, input }, "*", [channel.port2]);
    }, { once: true });
    frame.src = SANDBOX_URL;
    (host || document.body).append(frame);
    this.timer = setTimeout(() => this.finish("timed_out", { error: `timed out after ${Math.round(timeoutMs / 1000)} s` }), timeoutMs);
  }

  receive(msg) {
    if (this.done || !msg || typeof msg !== "object") return;
    if (msg.type === "console") {
      const stream = msg.level === "error" || msg.level === "warn" ? "stderr" : "stdout";
      for (const line of String(msg.text).split("\n")) this.h.onLine(stream, line);
    } else if (msg.type === "done") {
      if (msg.result !== undefined) this.h.onLine("system", `← returned ${msg.result}`);
      this.finish("succeeded");
    } else if (msg.type === "error") {
      for (const line of String(msg.text).split("\n")) this.h.onLine("stderr", line);
      this.finish("failed", { error: msg.message });
    }
  }

  stop() {
    this.finish("canceled");
  }

  finish(status, info = {}) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.port?.close();
    this.frame.remove();
    this.h.onDone(status, { ...info, durationMs: performance.now() - this.startedAt });
  }
}

// Runs inside the sandboxed iframe (opaque origin, CSP without network access). Waits for one
// "scriptd:run" message from the dashboard, wires console.* to the message port it was given,
// and runs the code as the body of an async function with `input` in scope.
(function () {
  "use strict";
  let started = false;

  // WebRTC can send packets (STUN) that the CSP's connect-src does not govern: take it away
  // before any script runs. What stays possible is documented in the README's security section.
  for (const name of [
    "RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel", "RTCIceCandidate",
    "RTCSessionDescription", "RTCRtpSender", "RTCRtpReceiver", "RTCRtpTransceiver",
    "RTCDtlsTransport", "RTCIceTransport", "RTCSctpTransport", "RTCCertificate",
    "RTCEncodedAudioFrame", "RTCEncodedVideoFrame", "RTCTrackEvent", "RTCPeerConnectionIceEvent",
  ]) {
    try {
      Object.defineProperty(window, name, { value: undefined, writable: false, configurable: false });
    } catch (e) {
      /* not present in this browser */
    }
  }

  function describe(value, seen) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.stack || String(value);
    if (typeof value === "function") return `[Function ${value.name || "anonymous"}]`;
    if (typeof value === "undefined") return "undefined";
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "symbol") return value.toString();
    if (value === null || typeof value !== "object") return String(value);
    try {
      seen = seen || new WeakSet();
      return JSON.stringify(value, (k, v) => {
        if (typeof v === "bigint") return `${v}n`;
        if (typeof v === "function") return `[Function ${v.name || "anonymous"}]`;
        if (v instanceof Error) return v.stack || String(v);
        if (v && typeof v === "object") {
          if (seen.has(v)) return "[Circular]";
          seen.add(v);
          if (v instanceof Map) return Object.fromEntries(v);
          if (v instanceof Set) return Array.from(v);
        }
        return v;
      });
    } catch (e) {
      return Object.prototype.toString.call(value);
    }
  }

  window.addEventListener("message", function (event) {
    const msg = event.data;
    if (started || event.source !== window.parent || !msg || msg.type !== "scriptd:run" || !event.ports[0]) return;
    started = true;
    const port = event.ports[0];
    const send = (m) => port.postMessage(m);
    for (const level of ["log", "info", "warn", "error", "debug"]) {
      console[level] = function (...args) {
        send({ type: "console", level, text: args.map((a) => describe(a)).join(" ") });
      };
    }
    window.addEventListener("error", (e) => {
      send({ type: "console", level: "error", text: "Uncaught " + (e.error && e.error.stack ? e.error.stack : e.message) });
    });
    window.addEventListener("unhandledrejection", (e) => {
      send({ type: "console", level: "error", text: "Unhandled rejection: " + describe(e.reason) });
    });
    let fn;
    try {
      const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
      fn = new AsyncFunction("input", msg.code);
    } catch (e) {
      send({ type: "error", message: e.message, text: (e && e.stack) || String(e) });
      return;
    }
    fn(msg.input === undefined ? null : msg.input).then(
      (result) => send({ type: "done", result: result === undefined ? undefined : describe(result) }),
      (e) => send({ type: "error", message: e && e.message ? e.message : String(e), text: describe(e) }),
    );
  });
})();

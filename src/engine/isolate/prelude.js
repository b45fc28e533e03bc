// Runs before every isolated script. Builds `console` on top of the native `__scriptd_emit`
// and removes the native hook from the global scope so the script cannot reach it.
(function (emit) {
  "use strict";
  const MAX_DEPTH = 2;

  function quote(s) {
    return "'" + String(s).replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
  }

  function keyName(k) {
    return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : quote(k);
  }

  function inspect(value, depth, seen) {
    switch (typeof value) {
      case "string": return depth === 0 ? value : quote(value);
      case "number": return Object.is(value, -0) ? "-0" : String(value);
      case "bigint": return String(value) + "n";
      case "boolean": return String(value);
      case "undefined": return "undefined";
      case "symbol": return value.toString();
      case "function": return "[Function: " + (value.name || "(anonymous)") + "]";
    }
    if (value === null) return "null";
    if (seen.indexOf(value) !== -1) return "[Circular]";
    if (value instanceof Error) {
      const stack = typeof value.stack === "string" ? value.stack.trimEnd() : "";
      const head = (value.name || "Error") + ": " + value.message;
      return stack ? (stack.startsWith(head) ? stack : head + "\n" + stack) : head;
    }
    if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
    if (value instanceof RegExp) return String(value);
    if (depth > MAX_DEPTH) return Array.isArray(value) ? "[Array]" : "[Object]";
    const next = seen.concat([value]);
    if (Array.isArray(value)) {
      if (value.length === 0) return "[]";
      const items = value.slice(0, 100).map((v) => inspect(v, depth + 1, next));
      if (value.length > 100) items.push("... " + (value.length - 100) + " more items");
      return "[ " + items.join(", ") + " ]";
    }
    if (value instanceof Map) {
      const items = Array.from(value.entries()).map(([k, v]) => inspect(k, depth + 1, next) + " => " + inspect(v, depth + 1, next));
      return "Map(" + value.size + ") {" + (items.length ? " " + items.join(", ") + " " : "") + "}";
    }
    if (value instanceof Set) {
      const items = Array.from(value.values()).map((v) => inspect(v, depth + 1, next));
      return "Set(" + value.size + ") {" + (items.length ? " " + items.join(", ") + " " : "") + "}";
    }
    if (value instanceof Promise) return "Promise { <pending> }";
    const keys = Object.keys(value);
    const proto = Object.getPrototypeOf(value);
    const name = proto && proto.constructor && proto.constructor.name !== "Object" ? proto.constructor.name + " " : "";
    if (keys.length === 0) return name + "{}";
    const items = keys.slice(0, 100).map((k) => keyName(k) + ": " + inspect(value[k], depth + 1, next));
    return name + "{ " + items.join(", ") + " }";
  }

  function format(args) {
    return Array.prototype.map.call(args, (a) => inspect(a, 0, [])).join(" ");
  }

  const out = function () { emit(1, format(arguments)); };
  const err = function () { emit(2, format(arguments)); };
  const console = Object.freeze({ log: out, info: out, debug: out, warn: err, error: err, trace: err });
  Object.defineProperty(globalThis, "console", { value: console, writable: false, configurable: false });
})(globalThis.__scriptd_emit);
delete globalThis.__scriptd_emit;

// API trigger: enable it, issue or rotate the bearer token (shown once, with copy buttons and
// the curl line), or revoke it.
import { h, icon, mount, copyText, toast } from "../lib/dom.js";
import { api } from "../lib/api.js";
import { absolute, relative } from "../lib/format.js";

export class TriggerEditor {
  constructor({ onChange, scriptId, codeIdentifier }) {
    this.onChange = onChange;
    this.getScriptId = scriptId;
    this.getCode = codeIdentifier;
    this.enabled = h("input", { type: "checkbox", role: "switch", id: "f-trigger-enabled" });
    this.enabled.addEventListener("change", () => { this.render(); this.onChange(); });
    this.status = h("div.token-status");
    this.reveal = h("div.token-reveal", { hidden: true });
    this.el = h("div.trigger", { "data-field": "apiTrigger" },
      h("label.switch-row", this.enabled, h("span.switch"), h("span", "Allow runs from an HTTP request with a bearer token")),
      this.status,
      this.reveal,
    );
  }

  set(t) {
    this.enabled.checked = !!t.enabled;
    this.hasToken = !!t.hasToken;
    this.createdAt = t.tokenCreatedAt;
    this.reveal.hidden = true;
    this.reveal.replaceChildren();
    this.render();
  }

  value() {
    return { enabled: this.enabled.checked };
  }

  render() {
    const id = this.getScriptId();
    const url = `${location.origin}/api/scripts/${this.getCode() || "<code-identifier>"}/run`;
    const endpoint = h("div.endpoint", h("span.method", "POST"), h("code", url));
    if (!id) {
      mount(this.status, endpoint, h("div.hint", "Save the script first, then generate a token."));
      return;
    }
    const busy = (btn, fn) => async () => {
      btn.disabled = true;
      try { await fn(); } catch (e) { toast(e.message, "error"); } finally { btn.disabled = false; }
    };
    const gen = h("button.btn.btn-sm", { type: "button" }, icon(this.hasToken ? "rotate" : "key"), this.hasToken ? "Rotate token" : "Generate token");
    gen.addEventListener("click", busy(gen, async () => {
      if (this.hasToken && !confirm("Rotate the token? The current token stops working immediately.")) return;
      const res = await api.createToken(id);
      this.hasToken = true;
      this.createdAt = res.tokenCreatedAt;
      this.render();
      this.showToken(res);
    }));
    const revoke = h("button.btn.btn-sm.btn-ghost.btn-danger-text", { type: "button", hidden: !this.hasToken }, icon("ban"), "Revoke");
    revoke.addEventListener("click", busy(revoke, async () => {
      if (!confirm("Revoke the token? Callers using it will get 401.")) return;
      await api.revokeToken(id);
      this.hasToken = false;
      this.createdAt = null;
      this.reveal.hidden = true;
      this.render();
      toast("Token revoked");
    }));
    const state = this.hasToken
      ? h("span.token-state.ok", icon("key"), "Token issued ", h("span", { title: absolute(this.createdAt) }, relative(this.createdAt)))
      : h("span.token-state", icon("key"), "No token yet");
    mount(this.status, endpoint, h("div.token-actions", state, h("span.grow"), gen, revoke),
      this.enabled.checked ? null : h("div.hint", "The trigger is off: calls get 404 even with a valid token. Turn it on and save."));
  }

  showToken(res) {
    const copyBtn = (text, label) => {
      const b = h("button.btn.btn-sm", { type: "button", "aria-label": label }, icon("copy"), "Copy");
      b.addEventListener("click", () => copyText(text, b));
      return b;
    };
    this.reveal.hidden = false;
    mount(this.reveal,
      h("div.reveal-title", icon("alert-triangle"), "Copy the token now — it is shown only this once."),
      h("div.copy-row", h("code.token-value", { "data-testid": "api-token" }, res.token), copyBtn(res.token, "Copy token")),
      h("div.copy-label", "Call it with curl"),
      h("div.copy-row", h("code.curl", res.curl), copyBtn(res.curl, "Copy curl command")),
    );
    // Shown only this once: bring it into view wherever the button was.
    this.reveal.scrollIntoView({ block: "center", behavior: "smooth" });
  }
}

// A modal dialog (the native <dialog>, so focus stays inside and Escape closes it) for choices
// that need more than confirm() offers: a message to keep, files to pick, a preview to read.
import { h, icon, mount } from "./dom.js";

let uid = 0;

export class Dialog {
  /**
   * body: nodes; actions: buttons, right-aligned (a type=submit one runs onSubmit, as Enter in a
   * field does).
   */
  constructor({ title, body = [], actions = [], wide = false, testid, onSubmit }) {
    const titleId = `dialog-title-${++uid}`;
    this.errorEl = h("div.callout.callout-danger.dialog-error", { hidden: true, role: "alert" });
    this.el = h(`dialog.dialog${wide ? ".dialog-wide" : ""}`, { "aria-labelledby": titleId, "data-testid": testid },
      h("form.dialog-form", { method: "dialog", novalidate: true, onsubmit: (e) => {
        e.preventDefault();
        onSubmit?.();
      } },
        h("header.dialog-head", h("h2.dialog-title", { id: titleId }, title), h("span.grow"),
          h("button.btn.btn-icon.btn-ghost", { type: "button", "aria-label": "Close", onclick: () => this.close() }, icon("x"))),
        h("div.dialog-body", body, this.errorEl),
        h("footer.dialog-foot", actions)));
    // Closed however (a button, Escape): gone from the page.
    this.el.addEventListener("close", () => this.el.remove());
  }

  open() {
    document.body.append(this.el);
    this.el.showModal();
    return this;
  }

  close() {
    if (this.el.open) this.el.close();
  }

  /** Shows one error at a time, above the actions; null clears it. */
  error(message) {
    this.errorEl.hidden = !message;
    mount(this.errorEl, message ? [icon("alert-triangle"), h("span", message)] : []);
  }
}

// Scripts as files, from the list page: every script exported as a tar archive of TOML files,
// and TOML files imported — first as a dry run whose preview says what would be created,
// updated or deleted, then applied, all or nothing.
import { h, icon, mount, debounce, saveBlob, toast } from "../lib/dom.js";
import { api, fieldMessage } from "../lib/api.js";
import { Dialog } from "../lib/dialog.js";

const MIN_PASSPHRASE = 12;

const passphraseInput = (id) =>
  h(`input.input#${id}`, { type: "password", autocomplete: "new-password", spellcheck: "false", placeholder: `at least ${MIN_PASSPHRASE} characters` });

/** An import error names the file it is about in `field`; the message says it once. */
function importError(e) {
  if (!e.field || e.message.includes(e.field)) return e.message;
  return `${e.field}: ${fieldMessage(e)}`;
}

export function exportAll() {
  const passphrase = passphraseInput("export-passphrase");
  const go = h("button.btn.btn-primary", { type: "submit" }, icon("download"), "Download archive");
  const dialog = new Dialog({
    title: "Export all scripts",
    testid: "export-dialog",
    body: [
      h("p", "A tar archive with one TOML file per script, to keep in version control or import on another server."),
      h("div.field", h("label", { for: "export-passphrase" }, "Passphrase (optional)"), passphrase,
        h("div.hint", "Without one, secret values are left out and only their names are kept. With one, they are sealed with it; importing them needs the same passphrase.")),
    ],
    actions: [h("button.btn", { type: "button", onclick: () => dialog.close() }, "Cancel"), go],
    onSubmit: async () => {
      const pass = passphrase.value;
      if (pass && pass.length < MIN_PASSPHRASE) {
        dialog.error(`The passphrase must be at least ${MIN_PASSPHRASE} characters.`);
        return;
      }
      go.disabled = true;
      dialog.error(null);
      try {
        const { blob, name } = await api.exportScripts([], pass);
        saveBlob(blob, name);
        dialog.close();
        toast(pass ? "Exported, secrets sealed" : "Exported");
      } catch (e) {
        dialog.error(e.message);
      } finally {
        go.disabled = false;
      }
    },
  }).open();
  passphrase.focus();
}

/** The dry run's answer as lists: created, updated (with the settings that change), deleted, unchanged. */
function preview(plan) {
  const group = (kind, title, items, line) => items.length
    ? h(`div.import-group.import-${kind}`, { "data-kind": kind },
      h("div.import-group-title", `${title} (${items.length})`),
      h("ul", items.map(line)))
    : null;
  const changes = plan.create.length + plan.update.length + plan.delete.length;
  return [
    changes ? null : h("div.empty-small", "Nothing to change: every script already matches its file."),
    group("create", "Create", plan.create, (code) => h("li", { "data-code": code }, icon("plus"), h("code", code))),
    group("update", "Update", plan.update, (u) => h("li", { "data-code": u.code }, icon("refresh"), h("code", u.code),
      h("span.import-fields", ` — ${u.fields.join(", ")}`))),
    group("delete", "Delete", plan.delete, (code) => h("li", { "data-code": code }, icon("trash"), h("code", code))),
    plan.unchanged.length
      ? h("div.import-group.import-unchanged", { "data-kind": "unchanged" },
        h("div.import-group-title", `Unchanged (${plan.unchanged.length})`),
        h("div.muted", plan.unchanged.join(", ")))
      : null,
  ];
}

/** onImported(): after an import changed something, so the list is read again. */
export function importFiles({ onImported }) {
  const files = h("input.input#import-files", { type: "file", multiple: true, accept: ".toml,application/toml" });
  const passphrase = passphraseInput("import-passphrase");
  const prune = h("input#import-prune", { type: "checkbox", role: "switch" });
  const result = h("div.import-preview", { role: "status", "data-testid": "import-preview" });
  const apply = h("button.btn.btn-primary", { type: "submit", disabled: true, "data-testid": "import-apply" }, icon("check"), "Apply");
  let read = [];
  let ticket = 0;

  const request = (dryRun) => api.importScripts(read, { dryRun, prune: prune.checked, passphrase: passphrase.value });
  // Every change of the files or options asks for a new dry run; only the latest answer counts.
  const check = async () => {
    const mine = ++ticket;
    apply.disabled = true;
    dialog.error(null);
    if (!read.length) {
      result.replaceChildren();
      return;
    }
    mount(result, h("div.loading-row", icon("loader-2", "spin"), "Checking the files…"));
    try {
      const plan = await request(true);
      if (mine !== ticket) return;
      mount(result, preview(plan));
      apply.disabled = !(plan.create.length + plan.update.length + plan.delete.length);
    } catch (e) {
      if (mine !== ticket) return;
      result.replaceChildren();
      dialog.error(importError(e));
    }
  };
  files.addEventListener("change", async () => {
    read = await Promise.all([...files.files].map(async (f) => ({ name: f.name, content: await f.text() })));
    check();
  });
  passphrase.addEventListener("input", debounce(check, 400));
  prune.addEventListener("change", check);

  const dialog = new Dialog({
    title: "Import scripts",
    testid: "import-dialog",
    wide: true,
    body: [
      h("p", "TOML files as exported (one script each). Scripts are matched by code identifier: new ones are created, existing ones updated. Nothing changes until you apply."),
      h("div.field", h("label", { for: "import-files" }, "Files"), files),
      h("div.field", h("label", { for: "import-passphrase" }, "Passphrase (for sealed secrets)"), passphrase),
      h("label.switch-row", prune, h("span.switch"), h("span", "Delete scripts that are not in these files")),
      result,
    ],
    actions: [h("button.btn", { type: "button", onclick: () => dialog.close() }, "Cancel"), apply],
    onSubmit: async () => {
      if (apply.disabled) return;
      apply.disabled = true;
      ++ticket;
      try {
        const done = await request(false);
        dialog.close();
        const parts = [[done.create.length, "created"], [done.update.length, "updated"], [done.delete.length, "deleted"]]
          .filter(([n]) => n).map(([n, what]) => `${n} ${what}`);
        toast(`Imported: ${parts.join(", ")}`);
        onImported();
      } catch (e) {
        dialog.error(importError(e));
        apply.disabled = false;
      }
    },
  }).open();
}

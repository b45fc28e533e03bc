// The Scripts page: a small hash router between the list (#), a new script (#new) and one script
// (#s/<id>, #s/<id>/runs/<runId>, and its Versions tab: #s/<id>/versions, #s/<id>/versions/<n>). Leaving a form with unsaved changes asks first, both inside
// the page and when closing the tab.
import { ScriptList } from "./list.js";
import { ScriptDetail } from "./detail.js";

const root = document.getElementById("app");
let view = null;
let current = "";
let dirty = false;
let ignoreNext = false;

function parse(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "new") return { name: "new" };
  if (parts[0] === "s" && parts[1]) {
    const version = parts[2] === "versions" ? Number(parts[3]) || true : null;
    return { name: "script", id: parts[1], runId: parts[2] === "runs" ? parts[3] : null, version };
  }
  return { name: "list" };
}

function navigate(hash, { replace = false, force = false } = {}) {
  if (replace && !force) {
    // Same view, new address (a script got its id, a run was opened): no re-render.
    history.replaceState(null, "", hash === "#" ? location.pathname : hash);
    current = location.hash;
    return;
  }
  if (force) dirty = false;
  location.hash = hash;
}

function route() {
  if (ignoreNext) {
    ignoreNext = false;
    return;
  }
  const target = parse(location.hash);
  const now = parse(current);
  // Opening another run of the script already on screen keeps the form as it is.
  if (view instanceof ScriptDetail && target.name === "script" && target.id === view.id && now.id === target.id) {
    current = location.hash;
    if (target.runId && target.runId !== view.activeRunId) view.openRun(target.runId, false, true);
    view.showTab(target.version ? "versions" : "definition", target.version);
    return;
  }
  if (dirty && !confirm("You have unsaved changes. Leave this script and discard them?")) {
    ignoreNext = true;
    location.hash = current || "#";
    return;
  }
  view?.destroy();
  dirty = false;
  current = location.hash;
  root.replaceChildren();
  window.scrollTo(0, 0);
  if (target.name === "list") {
    document.title = "Scripts · scriptd";
    view = new ScriptList(root);
  } else {
    view = new ScriptDetail(root, {
      id: target.name === "script" ? target.id : null,
      runId: target.runId,
      version: target.version,
      navigate,
      onDirty: (d) => { dirty = d; },
    });
    view.init();
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("beforeunload", (e) => {
  if (!dirty) return;
  e.preventDefault();
  e.returnValue = "";
});
route();

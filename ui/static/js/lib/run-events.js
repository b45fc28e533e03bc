// Every run's status changes (queued, running, ended; any trigger, any node) from the server's
// run events stream. `handler` gets `{status, run}`, or `null` when events may have been
// missed (the stream just opened or reopened, or fell behind): the page should re-read what
// it shows. Returns a function that stops listening.
import { eventsUrl } from "./api.js";

export function onRunChange(handler) {
  const source = new EventSource(eventsUrl());
  source.addEventListener("run", (e) => {
    let change;
    try {
      change = JSON.parse(e.data);
    } catch {
      return;
    }
    handler(change);
  });
  source.addEventListener("resync", () => handler(null));
  // Changes made while the stream was (re)connecting came with no event: re-read once open.
  source.addEventListener("open", () => handler(null));
  return () => source.close();
}

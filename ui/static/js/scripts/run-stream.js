// Follows one server run over SSE. EventSource reconnects by itself after a dropped connection
// and sends Last-Event-ID, so the server resumes after the last line we got; lines are also
// de-duplicated by seq here. If the browser gives up on the stream (an HTTP error), we reopen it
// ourselves with ?since=<last seq>.
import { streamUrl } from "../lib/api.js";

export class RunStream {
  /**
   * handlers: onLine({seq, stream, line, ts}), onStatus({status, ts}), onDone({status, exitCode,
   * signal, error, ts}), onConnection("live" | "reconnecting")
   */
  /** tail: on the first connection, replay only the log's last `tail` lines. */
  constructor(runId, handlers, { tail = 0 } = {}) {
    this.runId = runId;
    this.h = handlers;
    this.tail = tail;
    this.lastSeq = 0;
    this.finished = false;
    this.retry = 0;
    this.retryTimer = 0;
    this.open();
  }

  open() {
    const url = streamUrl(this.runId)
      + (this.lastSeq ? `?since=${this.lastSeq}` : this.tail ? `?tail=${this.tail}` : "");
    const es = (this.es = new EventSource(url));
    es.addEventListener("open", () => {
      this.retry = 0;
      this.h.onConnection?.("live");
    });
    es.addEventListener("log", (e) => {
      const d = JSON.parse(e.data);
      if (d.seq <= this.lastSeq) return;
      this.lastSeq = d.seq;
      this.h.onLine(d);
    });
    es.addEventListener("status", (e) => this.h.onStatus?.(JSON.parse(e.data)));
    es.addEventListener("done", (e) => {
      this.finished = true;
      es.close();
      this.h.onDone?.(JSON.parse(e.data));
    });
    es.addEventListener("error", () => {
      if (this.finished || this.es !== es) return;
      this.h.onConnection?.("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error rather than a dropped connection): retry a few
        // times with back-off, then say so and stop.
        clearTimeout(this.retryTimer);
        if (this.retry >= 8) {
          this.finished = true;
          this.h.onConnection?.("lost");
          return;
        }
        const delay = Math.min(10000, 500 * 2 ** this.retry++);
        this.retryTimer = setTimeout(() => !this.finished && this.open(), delay);
      }
    });
  }

  close() {
    this.finished = true;
    clearTimeout(this.retryTimer);
    this.es?.close();
  }
}

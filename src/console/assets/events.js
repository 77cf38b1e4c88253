// The event stream (GET /v1/events) read with fetch() and a streaming body reader, because
// EventSource cannot send the Authorization header. Parses Server-Sent Events itself and
// reconnects with Last-Event-ID, so no event is missed or repeated while the engine's window
// still holds it (`window_exceeded` says when some were lost: the caller then resyncs).

import { authHeaders, unauthorized, currentGeneration } from './api.js';

const MIN_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;

export class EventStream {
  /**
   * @param {object} handlers
   *   onEvent(type, data): one event (data is the parsed JSON)
   *   onOpen(first): the stream is connected (first: no Last-Event-ID was sent)
   *   onState(state): 'connecting' | 'live' | 'reconnecting' | 'needs token' | 'forbidden'
   *   onExceeded(): events were lost (window_exceeded)
   *   onForbidden(message): the token lacks the `read` scope (403; the server's message)
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.lastId = null;
    this.running = false;
    this.controller = null;
    this.wakeUp = null;
    this.retry = MIN_RETRY_MS;
    // The token generation this connection was opened with: events read after the token
    // changed are dropped.
    this.generation = -1;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  /** Reconnects now (a new token): drops the current connection, keeps the last id. */
  reconnect() {
    if (this.controller) this.controller.abort();
    if (this.wakeUp) this.wakeUp();
  }

  async loop() {
    for (;;) {
      const controller = new AbortController();
      this.controller = controller;
      let waitForWake = false;
      try {
        this.handlers.onState(this.lastId === null ? 'connecting' : 'reconnecting');
        this.generation = currentGeneration();
        const headers = authHeaders({ Accept: 'text/event-stream' });
        if (this.lastId !== null) headers.set('Last-Event-ID', this.lastId);
        const response = await fetch('/v1/events', {
          headers,
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (response.status === 401) {
          unauthorized();
          this.handlers.onState('needs token');
          waitForWake = true;
        } else if (response.status === 403) {
          // A token without the read scope: say the server's words; retry on a new token.
          let message = 'HTTP 403';
          try {
            const body = await response.json();
            message = (body && body.error && body.error.message) || message;
          } catch {
            // Not JSON: the status says enough.
          }
          this.handlers.onState('forbidden');
          this.handlers.onForbidden(message);
          waitForWake = true;
        } else if (!response.ok || !response.body) {
          throw new Error(`HTTP ${response.status}`);
        } else {
          const first = this.lastId === null;
          this.retry = MIN_RETRY_MS;
          this.handlers.onState('live');
          this.handlers.onOpen(first);
          await this.read(response.body.getReader());
        }
      } catch {
        // Dropped, refused or aborted: reconnect below.
      }
      this.controller = null;
      if (waitForWake) {
        await new Promise((resolve) => { this.wakeUp = resolve; });
        this.wakeUp = null;
        continue;
      }
      this.handlers.onState('reconnecting');
      await new Promise((resolve) => {
        this.wakeUp = resolve;
        setTimeout(resolve, this.retry);
      });
      this.wakeUp = null;
      this.retry = Math.min(this.retry * 2, MAX_RETRY_MS);
    }
  }

  /** Reads messages until the body ends. */
  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // Line ends may be CRLF, LF or CR; a CR at the end may be half of a CRLF.
      const held = buffer.endsWith('\r') ? '\r' : '';
      if (held) buffer = buffer.slice(0, -1);
      buffer = buffer.replace(/\r\n?/g, '\n');
      let start = 0;
      let end;
      while ((end = buffer.indexOf('\n\n', start)) >= 0) {
        this.dispatch(buffer.slice(start, end));
        start = end + 2;
      }
      buffer = buffer.slice(start) + held;
    }
  }

  /** One SSE message block (https://html.spec.whatwg.org/#event-stream-interpretation). */
  dispatch(block) {
    if (this.generation !== currentGeneration()) return;
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    }
    if (data.length === 0) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    if (type === 'window_exceeded') this.handlers.onExceeded();
    else this.handlers.onEvent(type, parsed);
  }
}

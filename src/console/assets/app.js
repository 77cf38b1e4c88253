// The console's entry: hash routing between the views, the token form (shown when the API
// answers 401, or the stream 403; the token stays in this tab's sessionStorage), and the one
// event stream that keeps the model current. The model is reloaded from the API (a resync)
// only when the stream opens or reopens, when it reports lost events, and every 5 minutes as
// a safety net (not the mechanism).

import * as api from './api.js';
import * as model from './model.js';
import { EventStream } from './events.js';
import * as activeflows from './activeflows.js';
import * as detail from './detail.js';
import * as calls from './calls.js';
import * as flows from './flows.js';
import { say } from './dom.js';

const RESYNC_MS = 5 * 60 * 1000;

const view = document.querySelector('[data-testid="view"]');
const tokenPanel = document.querySelector('[data-testid="token-panel"]');
const tokenForm = document.querySelector('[data-testid="token-form"]');
const tokenInput = document.querySelector('[data-testid="token-input"]');
const tokenError = document.querySelector('[data-testid="token-error"]');
const forget = document.querySelector('[data-testid="forget-token"]');
const streamState = document.querySelector('[data-testid="stream-state"]');

const routes = [
  [/^#\/activeflows\/([^/]+)$/, 'activeflows', (m) => detail.render(view, decodeURIComponent(m[1]))],
  [/^#\/activeflows\/?$/, 'activeflows', () => activeflows.render(view)],
  [/^#\/calls\/?$/, 'calls', () => calls.render(view)],
  [/^#\/flows\/([^/]+)$/, 'flows', (m) => flows.renderEditor(view, decodeURIComponent(m[1]))],
  [/^#\/flows\/?$/, 'flows', () => flows.renderList(view)],
];

let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  view.replaceChildren();
  const hash = location.hash || '#/activeflows';
  for (const [pattern, nav, show] of routes) {
    const m = pattern.exec(hash);
    if (!m) continue;
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('current', a.dataset.nav === nav);
    cleanup = show(m) || null;
    return;
  }
  location.replace('#/activeflows');
}

// ---- token ----

function showForget() {
  forget.hidden = !api.getToken();
}

api.onUnauthorized(() => {
  if (!tokenPanel.hidden) return;
  tokenPanel.hidden = false;
  tokenError.hidden = !api.getToken();
  tokenError.textContent = api.getToken() ? 'The API refused the token in use.' : '';
  tokenInput.focus();
});

tokenForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) return;
  api.setToken(token);
  try {
    await api.get('/v1/flows?page_size=1');
  } catch (e) {
    api.forgetToken();
    tokenError.textContent = e.status === 401 ? 'The API refused this token.' : e.message;
    tokenError.hidden = false;
    tokenPanel.hidden = false;
    return;
  }
  tokenInput.value = '';
  tokenError.hidden = true;
  tokenPanel.hidden = true;
  showForget();
  stream.reconnect();
  resyncUnlessOpened();
  route();
});

forget.addEventListener('click', () => {
  // Cancels every read in flight (and drops what the stream read with the token).
  api.forgetToken();
  pending.length = 0;
  showForget();
  model.clear();
  route();
  stream.reconnect();
  say('Token forgotten (this tab).', true);
});

// ---- events ----

let loading = false;
let rerun = false;
let opens = 0;
const pending = [];

/** The stream's opening resyncs; should it not open soon (refused, readers full), this
 * shows what the API has anyway. */
function resyncUnlessOpened() {
  const before = opens;
  setTimeout(() => { if (opens === before) resync(); }, 3000);
}

/** Reloads the model; asked again while one runs, it runs once more right after. */
async function resync() {
  if (loading) {
    rerun = true;
    return;
  }
  loading = true;
  try {
    do {
      rerun = false;
      try {
        await model.loadSnapshot();
      } catch (e) {
        if (!e.aborted && e.status !== 401) say(`Loading: ${e.message}`);
      }
    } while (rerun);
  } finally {
    loading = false;
    // Events that arrived meanwhile are newer than (or as new as) the snapshot; the model's
    // merge is monotonic, so one older than it changes nothing.
    for (const [type, data] of pending.splice(0)) model.applyEvent(type, data);
  }
}

const stream = new EventStream({
  onEvent(type, data) {
    if (loading) pending.push([type, data]);
    else model.applyEvent(type, data);
  },
  // The stream first, then the snapshot: nothing published between the two is missed. On a
  // reopen too (the engine may have restarted; a new token sees other things).
  onOpen() {
    opens += 1;
    resync();
  },
  onExceeded() {
    resync();
  },
  onForbidden(message) {
    tokenPanel.hidden = false;
    tokenError.textContent = `The event stream refused the token: ${message}`;
    tokenError.hidden = false;
  },
  onState(state) {
    streamState.textContent = state === 'live' ? 'live' : state;
    streamState.classList.toggle('live', state === 'live');
    streamState.classList.toggle('down', state !== 'live' && state !== 'connecting');
  },
});

window.addEventListener('hashchange', route);
showForget();
route();
stream.start();
resyncUnlessOpened();
setInterval(() => { if (api.getToken() || tokenPanel.hidden) resync(); }, RESYNC_MS);

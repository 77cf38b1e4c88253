// The API client: the bearer token (kept for this tab only, in sessionStorage) and JSON
// requests to /v1. The token travels in the Authorization header, never in a URL. Setting or
// forgetting the token cancels every request in flight: nothing read with one token lands on
// the page after it changed.

const KEY = 'activeflow.console.token';
const unauthorizedListeners = new Set();

// The token's generation: bumped (and in-flight requests aborted) whenever it changes.
let generation = 0;
let inFlight = new AbortController();

export const currentGeneration = () => generation;

function tokenChanged() {
  generation += 1;
  inFlight.abort();
  inFlight = new AbortController();
}

export function getToken() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  sessionStorage.setItem(KEY, token);
  tokenChanged();
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
  tokenChanged();
}

/** `fn` runs whenever the API answers 401 (no token, or a wrong one). */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

export function unauthorized() {
  for (const fn of unauthorizedListeners) fn();
}

/** A non-2xx answer: the API's `{"error": {"code", "message"}}` when it sent one. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : `HTTP ${status}`);
    this.status = status;
    this.code = e && e.code ? e.code : '';
    this.body = body;
    this.aborted = false;
  }
}

/** A request the token change cancelled (`aborted`: callers show nothing for it). */
function cancelled() {
  const e = new ApiError(0, { error: { code: 'cancelled', message: 'cancelled: the token changed' } });
  e.aborted = true;
  return e;
}

/** `fetch` tied to the token's generation: cancelled when the token changes meanwhile. */
async function fetchNow(path, init, read) {
  const mine = generation;
  let response;
  let body;
  try {
    response = await fetch(path, { ...init, signal: inFlight.signal, cache: 'no-store', credentials: 'omit' });
    body = await read(response);
  } catch (e) {
    if (mine !== generation) throw cancelled();
    throw e;
  }
  if (mine !== generation) throw cancelled();
  if (response.status === 401) unauthorized();
  return { response, body };
}

/** Request headers with the token, when the tab has one. */
export function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const token = getToken();
  if (token) headers.set('Authorization', `Bearer ${token}`);
  return headers;
}

/** One JSON request; resolves to the parsed body (null when empty), rejects with ApiError. */
export async function request(method, path, body) {
  const extra = { Accept: 'application/json' };
  if (body !== undefined) extra['Content-Type'] = 'application/json';
  const { response, body: text } = await fetchNow(path, {
    method,
    headers: authHeaders(extra),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  }, (r) => r.text());
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

/** A binary resource (a recording) as a Blob, fetched with the token. */
export async function blob(path) {
  const { response, body } = await fetchNow(path, { headers: authHeaders() },
    async (r) => (r.ok ? r.blob() : r.text()));
  if (!response.ok) {
    let json = null;
    try {
      json = JSON.parse(body);
    } catch {
      json = null;
    }
    throw new ApiError(response.status, json);
  }
  return body;
}

/** `encodeURIComponent` for ids put in paths. */
export const seg = (s) => encodeURIComponent(String(s));

// DOM and formatting helpers. Every text goes in through textContent (never parsed as HTML), so
// nothing the engine reports (caller names, variables, results) can become markup.

/**
 * Makes an element: h('td', {class: 'x', dataset: {testid: 'y'}, onclick: fn}, child, ...).
 * Children are nodes or strings; null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Sets `el`'s text only when it changed (cheap in-place row updates). */
export function setText(el, text) {
  const s = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** An RFC 3339 timestamp with microseconds as milliseconds since the epoch (fractional). */
export function parseTime(s) {
  if (!s) return NaN;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return Date.parse(s);
  const base = Date.parse(m[1] + m[3]);
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return base + frac;
}

/** "3 s", "4 min 5 s", "2 h 3 min". */
export function age(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A duration in ms with a sensible unit ("12.3 ms", "1.20 s"). */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return age(ms);
}

/** Local wall-clock time with milliseconds. */
export function clock(s) {
  const t = parseTime(s);
  if (!Number.isFinite(t)) return s || '';
  const d = new Date(t);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A UUID's last group (12 hex digits): time-ordered (v7) ids share their first digits. */
export const short = (id) => (id ? String(id).split('-').pop() : '');

/** Compact JSON for a table cell. */
export function compact(value) {
  if (value === undefined || value === null) return '';
  const s = JSON.stringify(value);
  return s === '{}' ? '' : s;
}

/** A status badge. */
export function badge(status, testid) {
  return h('span', { class: `status ${status}`, dataset: testid ? { testid } : undefined }, status);
}

/** The page's one message line (errors of actions); hides itself after a while. */
let messageTimer = null;
export function say(text, ok = false) {
  const el = document.querySelector('[data-testid="message"]');
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('ok', ok);
  el.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { el.hidden = true; }, ok ? 4000 : 10000);
}

export const NIL_ID = '00000000-0000-0000-0000-000000000000';

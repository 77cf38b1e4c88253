// Live and ended calls (#/calls): loaded from the API, kept current by the call events,
// newest first, at most MAX_SHOWN rows; Hangup (with confirm) for calls not yet ended.

import * as api from './api.js';
import * as model from './model.js';
import { h, setText, clock, badge, say, short } from './dom.js';

const MAX_SHOWN = 500;

export function render(root) {
  const tbody = h('tbody', { dataset: { testid: 'call-rows' } });
  const count = h('span', { class: 'count' });
  root.append(h('h1', {}, 'Calls'),
    h('div', { class: 'toolbar' }, count),
    h('table', { dataset: { testid: 'calls' } },
      h('thead', {}, h('tr', {}, h('th', {}, 'Status'), h('th', {}, 'Direction'), h('th', {}, 'From'),
        h('th', {}, 'To'), h('th', {}, 'Call-ID'), h('th', {}, 'Codec'), h('th', {}, 'Created'),
        h('th', {}, 'Answered'), h('th', {}, 'Ended'), h('th', {}, 'End cause'), h('th', {}, ''))),
      tbody));

  const rows = new Map(); // call id → {tr, cells, key}
  let closed = false;

  function makeRow(c) {
    const cells = {};
    for (const k of ['status', 'direction', 'source', 'destination', 'sip', 'codec', 'created', 'answered', 'ended', 'cause', 'actions']) cells[k] = h('td');
    cells.sip.className = 'mono';
    const tr = h('tr', { dataset: { testid: 'call-row', id: c.id } }, Object.values(cells));
    return { tr, cells, key: '' };
  }

  function update(entry, c) {
    const { cells } = entry;
    if (entry.status !== c.status) {
      entry.status = c.status;
      entry.tr.dataset.status = c.status;
      cells.status.replaceChildren(badge(c.status, 'call-status'));
      cells.actions.replaceChildren(c.status !== 'ended'
        ? h('button', { type: 'button', class: 'danger', dataset: { testid: 'hangup' }, onclick: () => hangup(c.id) }, 'Hangup')
        : '');
    }
    setText(cells.direction, c.direction);
    setText(cells.source, c.source);
    setText(cells.destination, c.destination);
    setText(cells.sip, c.sip_call_id || '');
    setText(cells.codec, c.codec || '');
    setText(cells.created, clock(c.tm_create));
    setText(cells.answered, c.tm_answer ? clock(c.tm_answer) : '');
    setText(cells.ended, c.tm_end ? clock(c.tm_end) : '');
    setText(cells.cause, c.end_cause ? `${c.end_cause}${c.end_code ? ` (${c.end_code})` : ''}` : '');
  }

  function redraw() {
    const all = [...model.calls.values()]
      .sort((a, b) => ((a.tm_create || '') < (b.tm_create || '') ? 1 : -1))
      .slice(0, MAX_SHOWN);
    const keep = new Set(all.map((c) => c.id));
    for (const [id, entry] of rows) if (!keep.has(id)) { entry.tr.remove(); rows.delete(id); }
    let at = tbody.firstChild;
    for (const c of all) {
      let entry = rows.get(c.id);
      if (!entry) { entry = makeRow(c); rows.set(c.id, entry); }
      update(entry, c);
      if (entry.tr === at) at = at.nextSibling;
      else tbody.insertBefore(entry.tr, at);
    }
    const live = all.filter((c) => c.status !== 'ended').length;
    setText(count, `${model.calls.size} calls (${live} live)`);
  }

  // A call first seen from an event has no Call-ID (nor, once answered, codec) yet: read it
  // from the API, once per status.
  const fetchedFor = new Map();
  function complete(id) {
    const c = model.calls.get(id);
    if (!c) return;
    const needs = !c.sip_call_id || (c.status === 'answered' && !c.codec);
    if (!needs || fetchedFor.get(id) === c.status) return;
    fetchedFor.set(id, c.status);
    api.get(`/v1/calls/${api.seg(id)}`).then((full) => {
      if (!closed) model.applyCall(full);
    }, () => {});
  }

  let timer = null;
  const unsubscribe = model.subscribe((kind, id) => {
    if (kind === 'call') {
      const entry = rows.get(id);
      const c = model.calls.get(id);
      if (entry && c) update(entry, c);
      else schedule();
      complete(id);
    } else if (kind === 'reset') schedule();
  });
  function schedule() {
    if (!timer) timer = setTimeout(() => { timer = null; redraw(); }, 100);
  }

  api.get('/v1/calls?page_size=500').then((page) => {
    if (closed) return;
    for (const c of (page && page.result) || []) model.applyCall(c);
    redraw();
  }, (e) => { if (!e.aborted) say(`Calls: ${e.message}`); });
  redraw();

  return () => {
    closed = true;
    unsubscribe();
    clearTimeout(timer);
  };
}

async function hangup(id) {
  if (!window.confirm(`Hang up call ${short(id)}?`)) return;
  try {
    model.applyCall(await api.post(`/v1/calls/${api.seg(id)}/hangup`));
    say(`Call ${short(id)}: hangup sent.`, true);
  } catch (e) {
    say(`Hangup failed: ${e.message}`);
  }
}

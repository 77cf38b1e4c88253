// One activeflow (#/activeflows/<id>): its facts, the executed-actions timeline (start time,
// duration until the next action started, result), its variables (editable while it runs),
// the SIP summary of its call and its recordings, playable in the page. Refreshed when the
// event stream reports a change to it.

import * as api from './api.js';
import * as model from './model.js';
import { stop, resume } from './activeflows.js';
import { h, parseTime, duration, clock, short, compact, badge, say, NIL_ID } from './dom.js';

export function render(root, id) {
  const head = h('div', { class: 'panel', dataset: { testid: 'detail' } }, 'Loading…');
  const timeline = h('div', { class: 'panel' });
  const variables = h('div', { class: 'panel' });
  const call = h('div', { class: 'panel' });
  const recordings = h('div', { class: 'panel' });
  root.append(
    h('h1', {}, 'Activeflow ', h('span', { class: 'mono' }, id)),
    head,
    h('div', { class: 'columns' }, timeline, h('div', {}, call, variables, recordings)));

  let closed = false;
  // Set while this view feeds the model, so its own updates do not trigger a reload.
  let applying = false;
  let record = null;
  let loadedCall = '';
  const players = new Map(); // recording id → audio element (kept across refreshes)
  // Loads overlap (an event, a Stop, a Continue): each is numbered, and only the answer to
  // the newest one is shown (an older answer may describe an older state).
  const latest = { record: 0, variables: 0, call: 0 };
  const begin = (kind) => ++latest[kind];
  const current = (kind, n) => !closed && latest[kind] === n;

  async function load() {
    const n = begin('record');
    let fresh;
    try {
      fresh = await api.get(`/v1/activeflows/${api.seg(id)}`);
    } catch (e) {
      if (current('record', n) && !e.aborted) {
        head.replaceChildren(h('p', { class: 'error', dataset: { testid: 'detail-error' } }, e.message));
      }
      return;
    }
    if (!current('record', n)) return;
    record = fresh;
    applying = true;
    model.applyRecord(record);
    applying = false;
    renderHead();
    renderTimeline();
    renderRecordings();
    loadVariables();
    if (record.reference_type === 'call' && (loadedCall !== record.status)) {
      loadedCall = record.status;
      loadCall(record.reference_id);
    }
  }

  function renderHead() {
    const r = record;
    const waiting = r.status === 'running' && r.current_action && r.current_action.type === 'block';
    const flowName = model.flowName(r.flow_id);
    head.replaceChildren(
      h('div', { class: 'toolbar' },
        badge(r.status, 'detail-status'),
        r.end_reason ? h('span', { dataset: { testid: 'detail-end-reason' } }, r.end_reason) : '',
        r.status === 'running' ? h('button', { type: 'button', class: 'danger', dataset: { testid: 'detail-stop' }, onclick: () => stop(id).then(load) }, 'Stop') : '',
        waiting ? h('button', { type: 'button', dataset: { testid: 'detail-continue' }, onclick: () => resume(id).then(load) }, 'Continue') : ''),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Flow'), h('dd', {}, r.flow_id === NIL_ID ? '(inline actions)' : h('a', { href: `#/flows/${r.flow_id}` }, flowName || r.flow_id)),
        h('dt', {}, 'Reference'), h('dd', {}, `${r.reference_type} ${r.reference_id || ''}`),
        h('dt', {}, 'Current action'), h('dd', { dataset: { testid: 'detail-current' } },
          r.current_action && r.current_action.type ? `${r.current_action.type} (${short(r.current_action.id)})` : '(start)'),
        h('dt', {}, 'Created'), h('dd', {}, clock(r.tm_create)),
        h('dt', {}, 'Ended'), h('dd', {}, r.tm_end ? clock(r.tm_end) : ''),
        r.node_id ? [h('dt', {}, 'Node'), h('dd', {}, r.node_id)] : ''));
  }

  function renderTimeline() {
    const r = record;
    const actions = r.executed_actions || [];
    const offset = r.executed_actions_dropped || 0;
    const end = r.tm_end ? parseTime(r.tm_end) : NaN;
    const rows = actions.map((a, i) => {
      const start = parseTime(a.tm_execute);
      const next = i + 1 < actions.length ? parseTime(actions[i + 1].tm_execute) : end;
      const last = i + 1 === actions.length;
      const took = Number.isFinite(next) ? duration(next - start) : 'running';
      return h('tr', { dataset: { testid: 'timeline-row', index: String(offset + i) } },
        h('td', { class: 'num' }, String(offset + i + 1)),
        h('td', {}, h('strong', {}, a.type)),
        h('td', { class: 'mono' }, clock(a.tm_execute)),
        h('td', { class: 'num', dataset: { testid: 'timeline-duration' } }, last && r.status === 'running' ? `${took === 'running' ? '' : took} running` : took),
        h('td', {}, h('pre', { class: 'json', dataset: { testid: 'timeline-result' } }, compact(a.result))),
        h('td', {}, compact(a.option) ? h('details', {}, h('summary', {}, 'option'), h('pre', { class: 'json' }, JSON.stringify(a.option, null, 1))) : ''));
    });
    timeline.replaceChildren(
      h('h2', {}, 'Executed actions'),
      offset ? h('p', { class: 'muted' }, `${offset} older actions are in storage only.`) : '',
      h('table', { dataset: { testid: 'timeline' } },
        h('thead', {}, h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'Action'), h('th', {}, 'Started'),
          h('th', { class: 'num' }, 'Duration'), h('th', {}, 'Result'), h('th', {}, 'Option'))),
        h('tbody', {}, rows)),
      h('p', { class: 'muted' }, 'Duration: until the next action started (the last: until the end).'));
  }

  // Variables: read-only once ended; a running one takes new values (PUT merges them).
  const varKey = h('input', { placeholder: 'name', dataset: { testid: 'variable-key' }, 'aria-label': 'variable name' });
  const varValue = h('input', { placeholder: 'value', dataset: { testid: 'variable-value' }, 'aria-label': 'variable value' });
  const varError = h('p', { class: 'error', dataset: { testid: 'variable-error' }, hidden: true });
  const varTable = h('tbody', { dataset: { testid: 'variables' } });
  const varForm = h('form', { class: 'form-row', dataset: { testid: 'variable-form' } }, varKey, varValue,
    h('button', { type: 'submit', dataset: { testid: 'variable-set' } }, 'Set'));
  varForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    varError.hidden = true;
    const key = varKey.value.trim();
    if (!key) return;
    const n = begin('variables');
    try {
      const body = await api.put(`/v1/activeflows/${api.seg(id)}/variables`, { variables: { [key]: varValue.value } });
      varKey.value = '';
      varValue.value = '';
      if (current('variables', n)) showVariables(body.variables);
    } catch (e) {
      varError.textContent = e.message;
      varError.hidden = false;
    }
  });
  variables.append(h('h2', {}, 'Variables'),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Value'))), varTable),
    varForm, varError);

  async function loadVariables() {
    varForm.hidden = record.status !== 'running';
    const n = begin('variables');
    try {
      const body = await api.get(`/v1/activeflows/${api.seg(id)}/variables`);
      if (current('variables', n)) showVariables(body.variables);
    } catch (e) {
      if (current('variables', n) && !e.aborted) {
        varTable.replaceChildren(h('tr', {}, h('td', { colspan: 2, class: 'error' }, e.message)));
      }
    }
  }

  function showVariables(vars) {
    const names = Object.keys(vars || {}).sort();
    varTable.replaceChildren(...names.map((k) => h('tr', { dataset: { testid: 'variable', name: k } },
      h('td', { class: 'mono' }, k),
      h('td', { class: 'mono' }, typeof vars[k] === 'string' ? vars[k] : JSON.stringify(vars[k])))));
  }

  async function loadCall(callId) {
    const n = begin('call');
    if (!call.querySelector('[data-testid="call-summary"]')) {
      call.replaceChildren(h('h2', {}, 'Call'), h('p', { class: 'muted' }, 'Loading…'));
    }
    let answer;
    try {
      answer = await api.get(`/v1/calls/${api.seg(callId)}`);
    } catch (e) {
      if (current('call', n) && !e.aborted) call.replaceChildren(h('h2', {}, 'Call'), h('p', { class: 'error' }, e.message));
      return;
    }
    if (!current('call', n)) return;
    applying = true;
    model.applyCall(answer);
    applying = false;
    // The model's call: the answer merged with what events said since (never older).
    const c = model.calls.get(callId) || answer;
    const fact = (label, value, testid) => [h('dt', {}, label), h('dd', { class: 'mono', dataset: testid ? { testid } : undefined }, value === null || value === undefined ? '' : String(value))];
    call.replaceChildren(h('h2', {}, 'Call'),
      h('dl', { class: 'facts', dataset: { testid: 'call-summary' } },
        fact('Call-ID', c.sip_call_id, 'call-sip-call-id'),
        fact('From', c.source, 'call-from'),
        fact('To', c.destination, 'call-to'),
        fact('Codec', c.codec || '', 'call-codec'),
        fact('Status', c.status, 'call-status'),
        fact('End cause', c.end_cause || '', 'call-end-cause'),
        c.end_code ? fact('SIP code', c.end_code) : '',
        fact('Direction', c.direction),
        fact('Peer', c.peer),
        fact('Created', clock(c.tm_create)),
        fact('Answered', c.tm_answer ? clock(c.tm_answer) : ''),
        fact('Ended', c.tm_end ? clock(c.tm_end) : '')),
      h('p', {}, h('a', { href: '#/calls' }, 'All calls')));
  }

  // Recordings: the ids `recording_start` results name; each fetched with the token into a
  // blob the <audio> element plays (media-src blob:).
  function renderRecordings() {
    const ids = [];
    for (const a of record.executed_actions || []) {
      const rid = a.result && a.result.recording_id;
      if (rid && !ids.includes(rid)) ids.push(rid);
    }
    if (ids.length === 0) {
      recordings.replaceChildren(h('h2', {}, 'Recordings'), h('p', { class: 'muted' }, 'None.'));
      return;
    }
    recordings.replaceChildren(h('h2', {}, 'Recordings'),
      h('ul', { dataset: { testid: 'recordings' } }, ids.map((rid) => recordingItem(rid))));
  }

  function recordingItem(rid) {
    const li = h('li', { dataset: { testid: 'recording', id: rid } }, h('span', { class: 'mono' }, short(rid)), ' ');
    const status = h('span', { class: 'muted' });
    li.append(status);
    if (players.has(rid)) {
      li.append(players.get(rid));
      return li;
    }
    api.get(`/v1/recordings/${api.seg(rid)}`).then((info) => {
      status.textContent = ` ${info.status}${info.duration_ms ? `, ${duration(info.duration_ms)}` : ''}`;
      if (info.status !== 'ended') return;
      const button = h('button', { type: 'button', dataset: { testid: 'recording-load' } }, 'Play');
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          const data = await api.blob(`/v1/recordings/${api.seg(rid)}/file`);
          const audio = h('audio', { controls: true, dataset: { testid: 'recording-audio' } });
          audio.src = URL.createObjectURL(data);
          players.set(rid, audio);
          button.replaceWith(audio);
          audio.play().catch(() => {});
        } catch (e) {
          button.disabled = false;
          say(`Recording: ${e.message}`);
        }
      });
      li.append(' ', button);
    }, (e) => { status.textContent = ` ${e.message}`; });
    return li;
  }

  // Refresh on this activeflow's events (and its call's), at most every 300 ms.
  let timer = null;
  const unsubscribe = model.subscribe((kind, changed) => {
    const mine = (kind === 'activeflow' && changed === id) ||
      (kind === 'call' && record && changed === record.reference_id);
    if (!mine || applying || timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (kind === 'call' && record) loadedCall = '';
      load();
    }, 300);
  });

  load();
  return () => {
    closed = true;
    unsubscribe();
    clearTimeout(timer);
    for (const audio of players.values()) URL.revokeObjectURL(audio.src);
  };
}

// The live activeflows list (the default view): rows kept current from the event stream,
// updated in place (one row per activeflow, only changed cells rewritten, at most once per
// animation frame), at most MAX_SHOWN rows shown, newest first. Filters by status and flow;
// Stop (with confirm) for running ones, Continue for those waiting in a `block` action.
// A grid of rows, not a <table>: a row that changes is laid out alone, and rows off screen
// (`content-visibility: auto`) are not styled or laid out at all, so a burst of events over
// hundreds of rows costs the browser little.

import * as api from './api.js';
import * as model from './model.js';
import { h, setText, age, parseTime, short, badge, say } from './dom.js';

const MAX_SHOWN = 500;
// New rows built per frame at most: a burst of new activeflows is drawn over a few frames
// rather than in one long task (building rows is most of a frame's script time).
const NEW_ROWS_PER_FRAME = 50;

export function render(root) {
  const filters = { status: sessionStorage.getItem('af.filter.status') || '', flow: '' };
  const statusSelect = h('select', { dataset: { testid: 'filter-status' }, 'aria-label': 'status' },
    h('option', { value: '' }, 'any status'),
    h('option', { value: 'running' }, 'running'),
    h('option', { value: 'ended' }, 'ended'));
  statusSelect.value = filters.status;
  const flowSelect = h('select', { dataset: { testid: 'filter-flow' }, 'aria-label': 'flow' });
  const count = h('span', { class: 'count', dataset: { testid: 'activeflow-count' } });
  const list = h('div', { class: 'body', role: 'rowgroup', dataset: { testid: 'activeflow-rows' } });
  const empty = h('p', { class: 'muted', dataset: { testid: 'activeflows-empty' } }, 'No activeflows.');
  const capped = h('p', { class: 'notice', dataset: { testid: 'snapshot-capped' }, hidden: true },
    `More than ${model.RUNNING_CAP.toLocaleString('en')} activeflows are running: the console loaded the ` +
    `newest ${model.RUNNING_CAP.toLocaleString('en')} of them; the older ones appear as events report them.`);
  const th = (label, cls) => h('div', { role: 'columnheader', class: cls }, label);
  const table = h('div', { class: 'grid no-node', role: 'table', 'aria-label': 'activeflows', dataset: { testid: 'activeflows' } },
    h('div', { class: 'head', role: 'rowgroup' }, h('div', { class: 'row', role: 'row' },
      th('Status'), th('Flow'), th('Caller'), th('Current action'), th('Age', 'num'),
      th('Node', 'node'), th('Activeflow'), th(''))),
    list);
  root.append(
    h('h1', {}, 'Activeflows'),
    h('div', { class: 'toolbar' },
      h('label', {}, 'Status ', statusSelect),
      h('label', {}, 'Flow ', flowSelect),
      count),
    capped,
    table,
    empty);

  const rows = new Map(); // id → {tr, cells, key}
  let dirty = new Set();
  let reorder = true;
  let frame = 0;

  function fillFlowOptions() {
    const current = flowSelect.value || filters.flow;
    const seen = new Map(model.flows);
    for (const r of model.activeflows.values()) if (!seen.has(r.flow_id)) seen.set(r.flow_id, model.flowName(r.flow_id));
    const options = [...seen.entries()]
      .map(([id, name]) => [id, name || short(id)])
      .sort((a, b) => a[1].localeCompare(b[1]));
    flowSelect.replaceChildren(h('option', { value: '' }, 'any flow'),
      ...options.map(([id, name]) => h('option', { value: id }, name)));
    flowSelect.value = current;
    if (flowSelect.value !== current) flowSelect.value = '';
    filters.flow = flowSelect.value;
  }

  const visible = (r) => (!filters.status || r.status === filters.status) &&
    (!filters.flow || r.flow_id === filters.flow);

  function makeRow(r) {
    const td = (name, cls) => h('div', { role: 'cell', class: cls, dataset: { cell: name } });
    const cells = {
      status: td('status'), flow: td('flow'), caller: td('caller'), current: td('current'),
      age: td('age', 'num'), node: td('node', 'mono node'), id: td('id', 'mono'),
      actions: td('actions', 'actions'),
    };
    cells.id.append(h('a', { href: `#/activeflows/${r.id}`, dataset: { testid: 'activeflow-link' } }, short(r.id)));
    const tr = h('div', { class: 'row', role: 'row', dataset: { testid: 'activeflow-row', id: r.id } },
      cells.status, cells.flow, cells.caller, cells.current, cells.age, cells.node, cells.id, cells.actions);
    const entry = { tr, cells, key: '' };
    update(entry, r);
    return entry;
  }

  function update(entry, r) {
    const { cells } = entry;
    const statusKey = `${r.status}/${r.end_reason}`;
    if (entry.statusKey !== statusKey) {
      entry.statusKey = statusKey;
      cells.status.replaceChildren(badge(r.status, 'activeflow-status'),
        r.end_reason ? h('span', { class: 'muted', dataset: { testid: 'end-reason' } }, ` ${r.end_reason}`) : '');
      entry.tr.dataset.status = r.status;
    }
    setText(cells.flow, model.flowName(r.flow_id) || short(r.flow_id));
    setText(cells.caller, model.callerOf(r) || (r.reference_type === 'api' ? '(api)' : ''));
    const waiting = r.status === 'running' && r.current_type === 'block';
    const currentKey = `${r.current_type}/${waiting}`;
    if (entry.currentKey !== currentKey) {
      entry.currentKey = currentKey;
      cells.current.replaceChildren(
        h('span', { dataset: { testid: 'current-action' } }, r.status === 'running' ? r.current_type || '(start)' : r.current_type),
        waiting ? h('span', { class: 'waiting' }, ' waiting') : '');
    }
    setText(cells.age, ageOf(r));
    setText(cells.node, r.node_id);
    const actionsKey = `${r.status}/${waiting}`;
    if (entry.actionsKey !== actionsKey) {
      entry.actionsKey = actionsKey;
      cells.actions.replaceChildren(
        r.status === 'running' ? h('button', { type: 'button', class: 'danger', dataset: { testid: 'stop' }, onclick: () => stop(r.id) }, 'Stop') : '',
        waiting ? h('button', { type: 'button', dataset: { testid: 'continue' }, onclick: () => resume(r.id) }, 'Continue') : '');
    }
  }

  function ageOf(r) {
    const start = parseTime(r.tm_create);
    const end = r.status === 'ended' && r.tm_end ? parseTime(r.tm_end) : Date.now();
    return age(end - start);
  }

  function flush() {
    frame = 0;
    if (reorder) {
      reorder = false;
      const wanted = [...model.activeflows.values()].filter(visible)
        .sort((a, b) => (a.tm_create < b.tm_create ? 1 : a.tm_create > b.tm_create ? -1 : 0));
      const shown = wanted.slice(0, MAX_SHOWN);
      const keep = new Set(shown.map((r) => r.id));
      for (const [id, entry] of rows) {
        if (!keep.has(id)) {
          entry.tr.remove();
          rows.delete(id);
        }
      }
      let built = 0;
      const ordered = [];
      for (const r of shown) {
        let entry = rows.get(r.id);
        if (!entry) {
          if (built === NEW_ROWS_PER_FRAME) {
            // The rest next frame (a row left out now keeps its place in the order then).
            reorder = true;
            continue;
          }
          built += 1;
          entry = makeRow(r);
          rows.set(r.id, entry);
        } else if (dirty.has(r.id)) {
          update(entry, r);
        }
        ordered.push(entry.tr);
      }
      // Moves only what is out of place.
      let at = list.firstChild;
      for (const tr of ordered) {
        if (tr === at) at = at.nextSibling;
        else list.insertBefore(tr, at);
      }
    } else {
      for (const id of dirty) {
        const entry = rows.get(id);
        const r = model.activeflows.get(id);
        if (entry && r) update(entry, r);
      }
    }
    // The count and the node column follow every change: a shown row may end (or learn its
    // node) in place, without a reorder.
    let matching = 0;
    let running = 0;
    for (const r of model.activeflows.values()) {
      if (!visible(r)) continue;
      matching += 1;
      if (r.status === 'running') running += 1;
    }
    setText(count, matching > rows.size
      ? `${rows.size} shown of ${matching} (${running} running)`
      : `${matching} (${running} running)`);
    empty.hidden = matching > 0;
    capped.hidden = !model.snapshot.capped;
    // The node column only in a cluster (records and events carry node_id there).
    let nodes = false;
    for (const id of rows.keys()) {
      const r = model.activeflows.get(id);
      if (r && r.node_id) {
        nodes = true;
        break;
      }
    }
    table.classList.toggle('no-node', !nodes);
    dirty = new Set();
    if (reorder) schedule();
  }

  // Once per frame; the timer covers a tab whose frames are paused (hidden).
  function schedule() {
    if (frame) return;
    const run = () => {
      cancelAnimationFrame(frame.raf);
      clearTimeout(frame.timer);
      flush();
    };
    frame = { raf: requestAnimationFrame(run), timer: setTimeout(run, 250) };
  }

  const unsubscribe = model.subscribe((kind, id) => {
    if (kind === 'activeflow') {
      const r = model.activeflows.get(id);
      // A row appears, leaves or changes filter membership: reorder; else update in place.
      if (rows.has(id) !== Boolean(r && visible(r))) reorder = true;
      dirty.add(id);
    } else if (kind === 'call') {
      for (const [rid, entry] of rows) {
        const r = model.activeflows.get(rid);
        if (r && r.reference_id === id && entry) dirty.add(rid);
      }
    } else {
      if (kind === 'flows' || kind === 'reset') fillFlowOptions();
      for (const rid of rows.keys()) dirty.add(rid);
      reorder = true;
    }
    schedule();
  });

  statusSelect.addEventListener('change', () => {
    filters.status = statusSelect.value;
    sessionStorage.setItem('af.filter.status', filters.status);
    reorder = true;
    for (const rid of rows.keys()) dirty.add(rid);
    schedule();
  });
  flowSelect.addEventListener('change', () => {
    filters.flow = flowSelect.value;
    reorder = true;
    schedule();
  });

  // Ages tick; rows stay current from events (no polling).
  const ticker = setInterval(() => {
    for (const [id, entry] of rows) {
      const r = model.activeflows.get(id);
      if (r && r.status === 'running') setText(entry.cells.age, ageOf(r));
    }
  }, 1000);

  fillFlowOptions();
  flush();
  return () => {
    unsubscribe();
    clearInterval(ticker);
    if (frame) {
      cancelAnimationFrame(frame.raf);
      clearTimeout(frame.timer);
    }
  };
}

export async function stop(id) {
  if (!window.confirm(`Stop activeflow ${short(id)}? Its call is hung up.`)) return;
  try {
    model.applyRecord(await api.post(`/v1/activeflows/${api.seg(id)}/stop`));
    say(`Activeflow ${short(id)} stopped.`, true);
  } catch (e) {
    say(`Stop failed: ${e.message}`);
  }
}

export async function resume(id) {
  try {
    model.applyRecord(await api.post(`/v1/activeflows/${api.seg(id)}/continue`));
    say(`Activeflow ${short(id)} continued.`, true);
  } catch (e) {
    say(`Continue failed: ${e.message}`);
  }
}

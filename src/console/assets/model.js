// The console's live picture of the engine: activeflows, calls and flow names, loaded from the
// API (a snapshot) and kept current by the event stream. Views subscribe to changes; nothing
// here touches the DOM. Bounded: the oldest ended activeflows and calls go past MAX_KEPT.
// Monotonic: whatever order snapshots, API answers and events arrive in, an activeflow never
// goes from ended back to running nor to an earlier action, and a call never moves back along
// ringing → answered → ended; an older view only fills in what is not known yet.

import * as api from './api.js';
import { NIL_ID } from './dom.js';

export const MAX_KEPT = 5000;
// The snapshot: every running activeflow, page by page up to RUNNING_CAP, and the newest
// SNAPSHOT_RECENT of any status, as summaries (no executed actions: the detail reads those).
const PAGE = 1000;
export const RUNNING_CAP = 10000;
const SNAPSHOT_RECENT = 200;
// Running rows the last complete snapshot did not list are read again one by one, at most
// this many per snapshot (a few at a time); the rest are dropped (they are no longer running).
const RECHECK_MAX = 100;
const RECHECK_PARALLEL = 4;

export const activeflows = new Map(); // id → row (see rowFromRecord)
export const calls = new Map(); // call id → call (the API's call JSON, merged with events)
export const flows = new Map(); // flow id → flow name
export let routes = []; // [{number, flow, flow_id}]
/** What the last snapshot found: `capped` when more than RUNNING_CAP were running. */
export const snapshot = { capped: false };

const listeners = new Set();

/** fn(kind, id): kind is 'activeflow' | 'call' | 'flows' | 'reset'; returns an unsubscribe. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify(kind, id) {
  for (const fn of listeners) {
    try {
      fn(kind, id);
    } catch (e) {
      console.error(e);
    }
  }
}

// ---- monotonic merging ----

const ACTIVEFLOW_ORDER = { running: 0, ended: 1 };
const CALL_ORDER = { ringing: 0, answered: 1, ended: 2 };
const rank = (order, status) => (status in order ? order[status] : -1);
const blank = (v) => v === undefined || v === null || v === '';

/**
 * Merges `fresh` into `old`. When `ahead` (as new as what is known, or newer), its values
 * win, but an empty one never erases a known one (a codec, a Call-ID, a node); when behind,
 * it only fills in what `old` lacks. Returns whether anything changed.
 */
function mergeInto(old, fresh, ahead) {
  let changed = false;
  for (const [key, value] of Object.entries(fresh)) {
    if (blank(value) && !blank(old[key])) continue;
    if (!ahead && !blank(old[key])) continue;
    if (old[key] !== value) {
      old[key] = value;
      changed = true;
    }
  }
  return changed;
}

/** An activeflow record (API JSON: whole or `fields=summary`) as a row. */
export function rowFromRecord(a) {
  const current = a.current_action || {};
  const count = typeof a.execute_count === 'number'
    ? a.execute_count
    : (a.executed_actions_dropped || 0) + (a.executed_actions || []).length;
  return {
    id: a.id,
    flow_id: a.flow_id,
    status: a.status,
    end_reason: a.end_reason || '',
    reference_type: a.reference_type,
    reference_id: a.reference_id || '',
    // VoIPBIN's start marker (no type) is no action yet.
    current_type: current.type || '',
    current_id: current.type ? current.id || '' : '',
    execute_count: count,
    tm_create: a.tm_create,
    tm_end: a.tm_end || '',
    node_id: a.node_id || '',
  };
}

/** Merges a view of one activeflow; returns whether the row changed. */
function mergeRow(row) {
  const old = activeflows.get(row.id);
  if (!old) {
    activeflows.set(row.id, row);
    lookUpFlow(row.flow_id);
    return true;
  }
  const oldRank = rank(ACTIVEFLOW_ORDER, old.status);
  const newRank = rank(ACTIVEFLOW_ORDER, row.status);
  const ahead = newRank > oldRank ||
    (newRank === oldRank && (row.execute_count || 0) >= (old.execute_count || 0));
  return mergeInto(old, row, ahead);
}

/** Applies a record the API returned (after stop, continue, a detail load, a recheck). */
export function applyRecord(record) {
  if (!record || !record.id) return;
  if (record.tm_delete) {
    // Deleted: listings leave it out, and so does the console.
    if (activeflows.delete(record.id)) notify('activeflow', record.id);
    return;
  }
  if (mergeRow(rowFromRecord(record))) notify('activeflow', record.id);
}

/** Merges a view of one call (API JSON or an event's facts). */
function mergeCall(call) {
  const old = calls.get(call.id);
  if (!old) {
    calls.set(call.id, { ...call });
    return true;
  }
  const ahead = rank(CALL_ORDER, call.status) >= rank(CALL_ORDER, old.status);
  return mergeInto(old, call, ahead);
}

/** Applies a call the API returned (a list, a detail, a hangup's answer). */
export function applyCall(call) {
  if (!call || !call.id) return;
  if (mergeCall(call)) notify('call', call.id);
}

/** A row for an activeflow first seen in event `e`. */
function eventRow(e, status) {
  return {
    id: e.id, flow_id: e.flow_id, status, end_reason: '',
    reference_type: e.reference_type, reference_id: e.reference_id || '',
    current_type: '', current_id: '', execute_count: e.execute_count || 0,
    tm_create: e.tm, tm_end: '', node_id: e.node_id || '',
  };
}

/** One event from the stream. */
export function applyEvent(type, e) {
  switch (type) {
    case 'activeflow_created':
      if (mergeRow(eventRow(e, 'running'))) notify('activeflow', e.id);
      break;
    case 'activeflow_updated': {
      const action = e.action || {};
      const update = activeflows.has(e.id) ? {
        id: e.id, status: 'running', execute_count: e.execute_count || 0, node_id: e.node_id || '',
      } : eventRow(e, 'running');
      Object.assign(update, { current_type: action.type || '', current_id: action.id || '' });
      if (mergeRow(update)) notify('activeflow', e.id);
      break;
    }
    case 'activeflow_ended': {
      // The node that publishes an end may be another (a survivor ends a lost node's ones):
      // a known node stays.
      const known = activeflows.get(e.id);
      const update = known ? { id: e.id, node_id: known.node_id || e.node_id || '' } : eventRow(e, 'ended');
      Object.assign(update, {
        status: 'ended', end_reason: e.end_reason || '', tm_end: e.tm,
        execute_count: Math.max((known && known.execute_count) || 0, e.execute_count || 0),
      });
      if (mergeRow(update)) notify('activeflow', e.id);
      break;
    }
    case 'activeflow_deleted':
      activeflows.delete(e.id);
      notify('activeflow', e.id);
      break;
    case 'call_created':
    case 'call_answered':
    case 'call_ended': {
      const call = { id: e.id, direction: e.direction, source: e.source, destination: e.destination, status: e.status };
      if (type === 'call_created') call.tm_create = e.tm;
      if (type === 'call_answered') call.tm_answer = e.tm;
      if (type === 'call_ended') Object.assign(call, { tm_end: e.tm, end_cause: e.end_cause || null });
      applyCall(call);
      break;
    }
    default:
      break;
  }
  trim();
}

/** The caller of an activeflow's call, when the call is known. */
export function callerOf(row) {
  if (row.reference_type !== 'call') return '';
  const call = calls.get(row.reference_id);
  return call ? call.source || '' : '';
}

/** A flow's name; activeflows started with inline actions (nil flow id) have none. */
export const flowName = (id) => (id === NIL_ID ? '(inline actions)' : flows.get(id) || '');

/** Forgets everything (the token was forgotten: nothing read with it stays on screen). */
export function clear() {
  activeflows.clear();
  calls.clear();
  flows.clear();
  lookedUp.clear();
  routes = [];
  snapshot.capped = false;
  notify('reset');
}

// ---- snapshot ----

/** Every running activeflow (summaries), following next_page_token up to RUNNING_CAP. */
async function loadRunning() {
  const records = [];
  let token = '';
  for (;;) {
    const from = token ? `&page_token=${encodeURIComponent(token)}` : '';
    const page = await api.get(`/v1/activeflows?status=running&fields=summary&page_size=${PAGE}${from}`);
    records.push(...((page && page.result) || []));
    token = (page && page.next_page_token) || '';
    if (!token) return { records, complete: true };
    if (records.length >= RUNNING_CAP) return { records, complete: false };
  }
}

/** Reloads everything from the API (when the stream opens, after lost events, and slowly in
 * between as a safety net). */
export async function loadSnapshot() {
  const [running, recent, cs] = await Promise.all([
    loadRunning(),
    api.get(`/v1/activeflows?fields=summary&page_size=${SNAPSHOT_RECENT}`),
    api.get(`/v1/calls?page_size=${PAGE}`),
    loadFlows(),
  ]);
  for (const c of (cs && cs.result) || []) mergeCall(c);
  const listed = new Set();
  for (const a of [...running.records, ...((recent && recent.result) || [])]) {
    listed.add(a.id);
    mergeRow(rowFromRecord(a));
  }
  snapshot.capped = !running.complete;
  // The list of running ones is complete: a row still running here that it left out ended
  // (or was deleted) while the console missed the event. Read those again.
  if (running.complete) {
    const stale = [...activeflows.values()].filter((r) => r.status === 'running' && !listed.has(r.id));
    recheck(stale.map((r) => r.id));
  }
  trim();
  notify('reset');
}

/** Reads `ids` again one by one (a few at a time): ended ones turn ended, gone ones go. */
function recheck(ids) {
  const queue = ids.slice(0, RECHECK_MAX);
  for (const id of ids.slice(RECHECK_MAX)) {
    activeflows.delete(id);
    notify('activeflow', id);
  }
  const worker = async () => {
    for (let id = queue.shift(); id; id = queue.shift()) {
      try {
        applyRecord(await api.get(`/v1/activeflows/${api.seg(id)}`));
      } catch (e) {
        if (e.status === 404 && activeflows.delete(id)) notify('activeflow', id);
        if (e.aborted) return;
      }
    }
  };
  for (let i = 0; i < RECHECK_PARALLEL; i += 1) worker();
}

// ---- flows ----

/** Flow names and routes. */
export async function loadFlows() {
  const [list, rs] = await Promise.all([
    api.get('/v1/flows?page_size=1000'),
    api.get('/v1/routes'),
  ]);
  flows.clear();
  for (const f of (list && list.result) || []) flows.set(f.id, f.name || '');
  routes = (rs && rs.result) || [];
  notify('flows');
}

// Flow ids already asked for (found or not: a deleted flow is not asked for again; the
// snapshot's flow list renews the names).
const lookedUp = new Set();

/** Reads the name of a flow not known yet, once per id; inline actions (nil id) have none. */
function lookUpFlow(id) {
  if (blank(id) || id === NIL_ID || flows.has(id) || lookedUp.has(id)) return;
  lookedUp.add(id);
  api.get(`/v1/flows/${api.seg(id)}`).then((f) => {
    if (f && f.id) {
      flows.set(f.id, f.name || '');
      notify('flows');
    }
  }, () => {});
}

/** Keeps the maps bounded: the oldest ended entries go first. */
function trim() {
  for (const [map, isEnded] of [
    [activeflows, (r) => r.status === 'ended'],
    [calls, (c) => c.status === 'ended'],
  ]) {
    if (map.size <= MAX_KEPT) continue;
    const ended = [...map.values()].filter(isEnded).sort((x, y) => (x.tm_create < y.tm_create ? -1 : 1));
    const excess = map.size - Math.floor(MAX_KEPT * 0.9);
    for (const r of ended.slice(0, excess)) map.delete(r.id);
  }
}

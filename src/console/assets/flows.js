// Flows: the list (#/flows) with the routes that point to each, and the editor
// (#/flows/<id>, #/flows/new): the flow's JSON in a textarea beside an outline of its actions.
// On save the server validates; its 400 names the action index and field
// ("actions[2].option.duration: ..."), and the console shows that error next to the editor
// and at that action in the outline.

import * as api from './api.js';
import * as model from './model.js';
import { h, short, say } from './dom.js';

const TEMPLATE = {
  name: 'new-flow',
  detail: '',
  actions: [
    { type: 'answer' },
    { type: 'talk', option: { text: 'Hello', language: 'en-US' } },
    { type: 'hangup' },
  ],
};

export function renderList(root) {
  const tbody = h('tbody', { dataset: { testid: 'flow-rows' } });
  const unrouted = h('p', { class: 'muted' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Flows'),
      h('a', { href: '#/flows/new', dataset: { testid: 'flow-new' } }, 'New flow')),
    h('table', { dataset: { testid: 'flows' } },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Id'), h('th', { class: 'num' }, 'Actions'),
        h('th', {}, 'Routes'), h('th', {}, 'Detail'))),
      tbody),
    unrouted);
  let closed = false;
  Promise.all([api.get('/v1/flows?page_size=1000'), model.loadFlows()]).then(([page]) => {
    if (closed) return;
    const list = (page && page.result) || [];
    tbody.replaceChildren(...list.map((f) => h('tr', { dataset: { testid: 'flow-row', id: f.id } },
      h('td', {}, h('a', { href: `#/flows/${f.id}` }, f.name || '(unnamed)')),
      h('td', { class: 'mono' }, short(f.id)),
      h('td', { class: 'num' }, String((f.actions || []).length)),
      h('td', { dataset: { testid: 'flow-routes' } }, routesOf(f.id)),
      h('td', {}, f.detail || ''))));
    const dangling = model.routes.filter((r) => !r.flow_id);
    unrouted.textContent = dangling.length
      ? `Routes naming no flow: ${dangling.map((r) => `${r.number} → ${r.flow}`).join(', ')}`
      : '';
  }, (e) => { if (!e.aborted) say(`Flows: ${e.message}`); });
  return () => { closed = true; };
}

/** The numbers routed to flow `id` ("*" is any number). */
function routesOf(id) {
  return model.routes.filter((r) => r.flow_id === id).map((r) => r.number).join(', ');
}

/** The field an API error names: {index, field, message} for an action, else {field}. */
export function parseError(message) {
  const m = /^actions\[(\d+)\]\.([^:]+): ([\s\S]*)$/.exec(message || '');
  if (m) return { index: Number(m[1]), field: m[2], message: m[3] };
  const f = /^([a-z_][a-z0-9_.]*): ([\s\S]*)$/.exec(message || '');
  if (f) return { index: null, field: f[1], message: f[2] };
  return { index: null, field: '', message: message || '' };
}

export function renderEditor(root, id) {
  const isNew = id === 'new';
  const editor = h('textarea', { class: 'editor', spellcheck: 'false', dataset: { testid: 'flow-editor' }, 'aria-label': 'flow JSON' });
  const error = h('div', { class: 'editor-error error', dataset: { testid: 'flow-error' }, hidden: true });
  const outline = h('ol', { class: 'outline', dataset: { testid: 'flow-outline' } });
  const routes = h('p', { dataset: { testid: 'flow-routes' } });
  const save = h('button', { type: 'button', class: 'primary', dataset: { testid: 'flow-save' } }, isNew ? 'Create' : 'Save');
  const format = h('button', { type: 'button', dataset: { testid: 'flow-format' } }, 'Format');
  const remove = isNew ? '' : h('button', { type: 'button', class: 'danger', dataset: { testid: 'flow-delete' } }, 'Delete');
  const title = h('h1', {}, isNew ? 'New flow' : 'Flow');
  root.append(title,
    h('div', { class: 'columns' },
      h('div', { class: 'panel' },
        h('div', { class: 'toolbar' }, save, format, remove, h('a', { href: '#/flows' }, 'All flows')),
        error, editor),
      h('div', { class: 'panel' }, h('h2', {}, 'Actions'), outline, h('h2', {}, 'Routes'), routes)));

  let closed = false;
  let serverError = null; // {index, field, message} of the last refused save

  function showError(text, parsed) {
    serverError = parsed || null;
    error.replaceChildren();
    if (!text) {
      error.hidden = true;
    } else {
      error.hidden = false;
      error.append(parsed && parsed.index !== null
        ? h('span', {}, `Action #${parsed.index} `, h('code', {}, parsed.field), `: ${parsed.message}`)
        : text);
    }
    drawOutline();
  }

  function drawOutline() {
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch (e) {
      outline.replaceChildren(h('li', { class: 'error' }, `Invalid JSON: ${e.message}`));
      return;
    }
    const actions = Array.isArray(doc && doc.actions) ? doc.actions : [];
    const items = actions.map((a, i) => {
      const li = h('li', { dataset: { testid: 'outline-action', index: String(i) } },
        h('span', { class: 'index' }, `#${i}`),
        h('span', { class: 'type' }, (a && a.type) || '(no type)'),
        a && a.id ? h('span', { class: 'muted mono' }, ` ${short(a.id)}`) : '',
        a && a.next_id ? h('span', { class: 'muted mono' }, ` → ${short(a.next_id)}`) : '');
      if (serverError && serverError.index === i) {
        li.classList.add('has-error');
        li.append(h('div', {
          class: 'action-error',
          dataset: { testid: 'action-error', index: String(i), field: serverError.field },
        }, h('code', {}, serverError.field), `: ${serverError.message}`));
      }
      return li;
    });
    outline.replaceChildren(...items);
    if (items.length === 0) outline.append(h('li', { class: 'muted' }, 'No actions.'));
  }

  function drawRoutes(flowId) {
    const numbers = flowId ? routesOf(flowId) : '';
    routes.textContent = numbers ? `Numbers routed here: ${numbers}` : 'No route points to this flow.';
  }

  let typing = null;
  editor.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(drawOutline, 200);
  });
  format.addEventListener('click', () => {
    try {
      editor.value = JSON.stringify(JSON.parse(editor.value), null, 2);
      drawOutline();
    } catch (e) {
      showError(`Invalid JSON: ${e.message}`);
    }
  });
  save.addEventListener('click', async () => {
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch (e) {
      showError(`Invalid JSON: ${e.message}`);
      return;
    }
    save.disabled = true;
    try {
      const stored = isNew
        ? await api.post('/v1/flows', doc)
        : await api.put(`/v1/flows/${api.seg(id)}`, doc);
      showError('');
      say(`Flow ${stored.name || short(stored.id)} saved.`, true);
      model.loadFlows().catch(() => {});
      if (isNew) location.hash = `#/flows/${stored.id}`;
      else show(stored);
    } catch (e) {
      showError(e.message, e.status === 400 || e.status === 409 ? parseError(e.message) : null);
    } finally {
      save.disabled = false;
    }
  });
  if (remove) {
    remove.addEventListener('click', async () => {
      if (!window.confirm('Delete this flow? Running activeflows keep their copy.')) return;
      try {
        await api.del(`/v1/flows/${api.seg(id)}`);
        say('Flow deleted.', true);
        model.loadFlows().catch(() => {});
        location.hash = '#/flows';
      } catch (e) {
        showError(e.message);
      }
    });
  }

  function show(flow) {
    title.textContent = `Flow ${flow.name || ''}`;
    editor.value = JSON.stringify(flow, null, 2);
    drawOutline();
    drawRoutes(flow.id);
  }

  if (isNew) {
    editor.value = JSON.stringify(TEMPLATE, null, 2);
    drawOutline();
    drawRoutes(null);
  } else {
    api.get(`/v1/flows/${api.seg(id)}`).then((flow) => {
      if (!closed) show(flow);
    }, (e) => { if (!closed && !e.aborted) showError(e.message); });
    // Routes may not be loaded yet: draw them again once they are.
    model.loadFlows().then(() => { if (!closed) drawRoutes(id); }, () => {});
  }
  return () => {
    closed = true;
    clearTimeout(typing);
  };
}

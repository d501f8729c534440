// Disconnect and speed changes, shared by the table and the detail page.
import { api } from './api.js';
import { h } from './dom.js';
import { toast, confirmDialog, typedConfirmDialog, promptDialog, openDialog, badge } from './ui.js';
import { describeControl, fmtInt } from './format.js';

function who(s) {
  return s.customer ? `${s.username} (${s.customer})` : s.username;
}

// disconnectOne confirms, disconnects and reports. Resolves with the
// answer, or null when cancelled or failed before an answer.
export async function disconnectOne(s) {
  const ok = await confirmDialog({
    title: 'Disconnect session',
    message: h('p', {}, 'Disconnect ', h('strong', {}, who(s)), ` on ${s.router || 'its router'}`,
      s.ip ? ` (${s.ip})` : '', '? The subscriber\'s PPPoE session is dropped; their router will usually redial.'),
    confirmLabel: 'Disconnect',
    danger: true,
  });
  if (!ok) return null;
  try {
    const r = await api('POST', `/api/sessions/${encodeURIComponent(s.id)}/disconnect`);
    toast(`${s.username}: ${describeControl(r)}`, r.ok ? 'ok' : 'error');
    return r;
  } catch (e) {
    toast(`${s.username}: Failed: ${e.message}`, 'error');
    return null;
  }
}

const rateRe = /^\d+(\.\d+)?[kKmMgG]?(\/\d+(\.\d+)?[kKmMgG]?)?(\s+\S.*)?$/;

export async function changeSpeed(s) {
  const v = await promptDialog({
    title: 'Change speed',
    message: `New rate limit for ${who(s)}. Sent as a CoA-Request (Mikrotik-Rate-Limit); the session stays up.`,
    label: 'Rate limit (upload/download)',
    placeholder: '10M/20M',
    value: s.rate_limit || '',
    hint: 'MikroTik format rx/tx as the router sees it: upload/download, e.g. 10M/20M, 512k/2M.',
    validate: (x) => (rateRe.test(x) ? '' : 'Use a MikroTik rate limit like 10M/20M'),
    confirmLabel: 'Send CoA',
  });
  if (v === null) return null;
  try {
    const r = await api('POST', `/api/sessions/${encodeURIComponent(s.id)}/coa`, { rate_limit: v });
    toast(`${s.username}: ${describeControl(r, `Speed set to ${v}`)}`, r.ok ? 'ok' : 'error');
    return r;
  } catch (e) {
    toast(`${s.username}: Failed: ${e.message}`, 'error');
    return null;
  }
}

function resultsDialog(title, results) {
  const good = results.filter((r) => r.ok).length;
  const bad = results.length - good;
  const rows = results.map((r) => h('tr', { testid: 'bulk-result', dataset: { username: r.username || '', ok: String(!!r.ok) } },
    h('td', {}, r.username || `#${r.id}`),
    h('td', {}, r.ok ? badge('OK', 'ok') : badge('Failed', 'bad')),
    h('td', {}, describeControl(r))));
  return openDialog({
    title,
    wide: true,
    testid: 'results-dialog',
    body: h('div', {},
      h('p', { class: 'summary', testid: 'result' }, `${fmtInt(good)} disconnected, ${fmtInt(bad)} failed`),
      results.length
        ? h('div', { class: 'table-wrap dlg-scroll' }, h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Username'), h('th', {}, 'Result'), h('th', {}, 'Detail'))),
          h('tbody', {}, rows)))
        : h('p', { class: 'muted' }, 'No sessions matched.')),
    actions: [({ done }) => h('button', { type: 'submit', class: 'btn btn-primary', onclick: () => done(true) }, 'Close')],
  });
}

export async function disconnectSelected(sessions) {
  const names = sessions.map((s) => s.username);
  const shown = names.slice(0, 12).join(', ') + (names.length > 12 ? `, and ${names.length - 12} more` : '');
  const ok = await confirmDialog({
    title: `Disconnect ${names.length} sessions`,
    message: h('div', {}, h('p', {}, `Disconnect these ${names.length} sessions?`), h('p', { class: 'mono small' }, shown)),
    confirmLabel: `Disconnect ${names.length}`,
    danger: true,
  });
  if (!ok) return null;
  try {
    const r = await api('POST', '/api/disconnect', { ids: sessions.map((s) => s.id) });
    await resultsDialog('Disconnect results', r.results || []);
    return r;
  } catch (e) {
    toast(`Failed: ${e.message}`, 'error');
    return null;
  }
}

export async function disconnectRouter(router, count) {
  const ok = await typedConfirmDialog({
    title: `Disconnect every session on ${router}`,
    message: h('p', {}, 'This drops ', h('strong', {}, count === null ? 'every open session' : `all ${fmtInt(count)} open sessions`),
      ' on router ', h('strong', {}, router), '. Use it for maintenance. Each session gets a Disconnect-Request, with the RouterOS API as fallback.'),
    expect: router,
    confirmLabel: 'Disconnect all',
  });
  if (!ok) return null;
  try {
    const r = await api('POST', '/api/disconnect', { router });
    await resultsDialog(`Disconnect results: ${router}`, r.results || []);
    return r;
  } catch (e) {
    toast(`Failed: ${e.message}`, 'error');
    return null;
  }
}

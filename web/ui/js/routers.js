// Routers: state of every router; admins add, edit and remove them.
import { h, clear } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtInt, fmtAgo, fmtDateTime } from './format.js';
import { toast, openDialog, confirmDialog, badge, emptyRow } from './ui.js';

// reach shows a probe result. Nothing known yet is not a fault: CoA is
// only learnt from a Disconnect or CoA answer, so a router that has sent
// no complaint yet is shown as waiting for its first test, not greyed out.
function reach(v, what) {
  if (v === true) return badge('Reachable', 'ok');
  if (v === false) return badge('Unreachable', 'bad');
  const b = badge('Not tested yet', 'info');
  b.title = `No ${what} sent yet; the first answer (or its absence) sets this.`;
  return b;
}

function reconcileBadge(r) {
  const res = r.last_reconcile_result;
  if (!r.last_reconcile_at && !res) return badge('Never', 'muted');
  const ok = /^(ok|success)/i.test(res || 'ok');
  const unreachable = /^unreachable/i.test(res || '');
  const text = (res || '').replace(/^(ok|error|unreachable):?\s*/i, '');
  return h('span', { title: `${fmtDateTime(r.last_reconcile_at)}: ${res || ''}` },
    badge(ok ? 'OK' : unreachable ? 'Unreachable' : 'Error', ok ? 'ok' : 'bad'), ' ',
    h('span', { class: 'muted small reconcile-detail' }, `${text ? text + ' · ' : ''}${fmtAgo(r.last_reconcile_at)}`));
}

function accountingCell(r) {
  const at = r.last_accounting_at || r.last_acct_at;
  const notes = [];
  // Without interims silent sessions are never swept as stale; say how to enable them.
  if (r.interims_seen === false) {
    notes.push(h('div', { class: 'small muted', testid: 'no-interims', title: 'Sessions of this router are not closed as stale. Enable interims on the router:' },
      'no interims seen: ', h('code', {}, '/ppp aaa set interim-update=5m')));
  }
  // The RouterOS API certificate is not verified for this router (router add --api-tls-insecure).
  if (r.api_tls_warning) {
    notes.push(h('div', { class: 'small text-warn', testid: 'api-tls-warning' }, r.api_tls_warning));
  }
  // Event-Timestamps a minute or more off: the router needs NTP.
  if (typeof r.clock_skew_seconds === 'number' && Math.abs(r.clock_skew_seconds) >= 60) {
    const off = Math.abs(r.clock_skew_seconds);
    const text = off >= 86400 ? `${fmtInt(Math.round(off / 86400))} days` : off >= 3600 ? `${fmtInt(Math.round(off / 3600))} h` : `${fmtInt(Math.round(off))} s`;
    notes.push(h('div', { class: 'small text-warn', testid: 'clock-skew', title: 'Set up NTP on the router: /system ntp client set enabled=yes' },
      `router clock is off by ${text} (${r.clock_skew_seconds > 0 ? 'ahead' : 'behind'})`));
  }
  if (r.quarantined_records > 0) {
    notes.push(h('div', { class: 'small text-warn', testid: 'quarantined' },
      h('button', { type: 'button', class: 'link-btn text-warn', testid: 'show-quarantine', onclick: () => showQuarantine(r),
        title: 'Records PostgreSQL refused, answered and kept in the accounting_quarantine table: show them' },
      `${fmtInt(r.quarantined_records)} quarantined`)));
  }
  if (!at) return h('span', {}, h('span', { class: 'muted' }, 'never'), ...notes);
  const age = (Date.now() - Date.parse(at)) / 1000;
  return h('span', {}, h('span', { title: fmtDateTime(at), class: age > 900 ? 'text-warn' : '' }, fmtAgo(at)), ...notes);
}

// quarantineLimit bounds the dialog; the API says when there are more.
const quarantineLimit = 100;

// showQuarantine lists a router's quarantined records: what the router
// sent, why PostgreSQL refused it, and how often it sent it again. Strings
// are shown as stored: bytes that are not text appear as \xNN.
async function showQuarantine(r) {
  let res;
  try {
    res = await api('GET', `/api/quarantine${query({ router: r.id, limit: quarantineLimit })}`);
  } catch (e) {
    toast(`Could not load the quarantine of ${r.name}: ${e.message}`, 'error');
    return;
  }
  const recs = listOf(res, 'records');
  const rows = recs.map((q) => h('tr', { testid: 'quarantine-row', dataset: { session: q.acct_session_id } },
    h('td', { class: 'nowrap', title: `first ${fmtDateTime(q.first_seen)}` }, fmtDateTime(q.last_seen)),
    h('td', {}, q.status),
    h('td', { class: 'mono' }, q.username || '—'),
    h('td', { class: 'mono' }, q.acct_session_id || '—'),
    h('td', { class: 'num', testid: 'quarantine-repeats' }, fmtInt(q.repeats)),
    h('td', { class: 'detail-cell' }, h('div', {}, q.error), h('div', { class: 'muted small' }, `SQLSTATE ${q.sqlstate || '?'} · from ${q.source || 'unknown'}`),
      q.raw_hex ? h('details', {}, h('summary', { class: 'small' }, 'Packet (hex)'), h('div', { class: 'mono small hex' }, q.raw_hex)) : null)));
  await openDialog({
    title: `Quarantined records of ${r.name}`,
    testid: 'quarantine-dialog',
    wide: true,
    body: h('div', {},
      h('p', { class: 'muted small' }, 'Accounting PostgreSQL refused. Each was answered and is kept in accounting_quarantine; a copy the router sent again is counted, not stored twice.'),
      h('div', { class: 'dlg-scroll' }, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['Last seen', 'Type', 'User', 'Session id', 'Copies', 'Error'].map((c, i) => h('th', { class: i === 4 ? 'num' : '' }, c)))),
        h('tbody', {}, rows.length ? rows : emptyRow(6, 'Nothing quarantined.')))),
      res && res.more ? h('p', { class: 'muted small', testid: 'quarantine-more' }, `The newest ${fmtInt(recs.length)} are shown.`) : null),
    actions: [({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Close')],
  });
}

export class RoutersPage {
  constructor(app) {
    this.app = app;
    this.admin = app.role === 'admin';
    this.tbody = h('tbody', { testid: 'router-rows' });
    const cols = ['Name', 'IP', 'CoA port', 'RouterOS API', 'Open sessions', 'Last accounting', 'CoA', 'API', 'Last reconciliation'];
    if (this.admin) cols.push('');
    this.ncols = cols.length;
    this.el = h('div', { class: 'page' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Routers'), h('span', { class: 'spacer' }),
        this.admin ? h('button', { type: 'button', class: 'btn btn-primary', testid: 'add-router', onclick: () => this.edit(null) }, 'Add router') : null),
      h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { class: 'grid routers', testid: 'routers-table' },
        h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: i === 4 ? 'num' : '' }, c)))), this.tbody))),
      this.skippedEl = h('div', { testid: 'skipped-nas' }),
      h('p', { class: 'muted small' }, 'CoA: the router answers Disconnect/CoA on its incoming port. API: NettPortal can log in to the RouterOS API (reconciler and disconnect fallback).'));
    this.tbody.append(emptyRow(this.ncols, 'Loading…'));
    this.load();
    this.timer = setInterval(() => this.load(), 10000);
  }

  destroy() {
    clearInterval(this.timer);
  }

  async load() {
    let routers, skipped;
    try {
      const res = await api('GET', '/api/routers');
      routers = listOf(res, 'routers');
      skipped = (res && res.skipped) || [];
    } catch (e) {
      clear(this.tbody).append(emptyRow(this.ncols, `Could not load routers: ${e.message}`));
      return;
    }
    this.app.setRouters(routers);
    this.showSkipped(skipped);
    clear(this.tbody);
    if (!routers.length) {
      this.tbody.append(emptyRow(this.ncols, this.admin ? 'No routers yet. Add one, then point its /radius at this server.' : 'No routers yet.'));
      return;
    }
    for (const r of routers) {
      const tr = h('tr', { testid: 'router-row', dataset: { name: r.name } },
        h('td', {}, h('a', { href: '#/sessions?router=' + encodeURIComponent(r.name), title: 'Show its sessions' }, h('strong', {}, r.name))),
        h('td', { class: 'mono' }, r.ip || '—'),
        h('td', { class: 'mono' }, r.coa_port || '—'),
        h('td', { class: 'mono' }, r.api_addr ? `${r.api_user || ''}${r.api_user ? '@' : ''}${r.api_addr}` : h('span', { class: 'muted' }, 'not configured')),
        h('td', { class: 'num' }, fmtInt(r.open_sessions ?? 0)),
        h('td', {}, accountingCell(r)),
        h('td', {}, reach(r.coa_reachable, 'Disconnect or CoA request')),
        h('td', {}, r.api_addr ? reach(r.api_reachable, 'API login') : badge('—', 'muted')),
        h('td', {}, reconcileBadge(r)));
      if (this.admin) {
        tr.append(h('td', { class: 'col-actions' },
          h('button', { type: 'button', class: 'btn btn-small', testid: 'edit-router', onclick: () => this.edit(r) }, 'Edit'),
          h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', testid: 'remove-router', onclick: () => this.remove(r) }, 'Remove')));
      }
      this.tbody.append(tr);
    }
  }

  // nas rows FreeRADIUS accepts but this server cannot use as a router.
  showSkipped(skipped) {
    clear(this.skippedEl);
    if (!skipped.length) return;
    this.skippedEl.append(h('div', { class: 'panel' },
      h('h2', { class: 'panel-title' }, `Skipped nas rows (${skipped.length})`),
      h('p', { class: 'muted small' }, 'Kept for FreeRADIUS; not used as routers here.'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['ID', 'Name', 'nasname', 'Reason'].map((c) => h('th', {}, c)))),
        h('tbody', {}, skipped.map((n) => h('tr', { testid: 'skipped-nas-row' },
          h('td', {}, String(n.id)), h('td', {}, n.shortname), h('td', { class: 'mono' }, n.nasname), h('td', {}, n.reason))))))));
  }

  async edit(r) {
    const f = {};
    const field = (name, label, attrs = {}, hint = '') => {
      const id = 'rf-' + name;
      f[name] = h('input', { id, name, ...attrs });
      return h('div', { class: 'form-row' }, h('label', { for: id }, label), f[name], hint ? h('div', { class: 'field-hint' }, hint) : null);
    };
    const errBox = h('div', { class: 'field-error', role: 'alert' });
    const body = h('div', { class: 'form-grid' },
      field('name', 'Name', { required: true, value: r ? r.name : '', autocomplete: 'off' }),
      field('ip', 'IP address (NAS-IP)', { required: true, value: r ? r.ip : '', autocomplete: 'off' }, 'The address its RADIUS packets come from.'),
      field('secret', 'RADIUS secret', { type: 'password', autocomplete: 'new-password', placeholder: r && r.secret_set ? 'unchanged (set)' : '' }, r ? 'Leave empty to keep the current secret.' : ''),
      field('coa_port', 'CoA port', { type: 'number', min: 1, max: 65535, value: r ? r.coa_port || 3799 : 3799 }),
      field('api_addr', 'RouterOS API address', { value: r ? r.api_addr || '' : '', placeholder: '10.0.0.1:8728', autocomplete: 'off' }),
      field('api_user', 'API user', { value: r ? r.api_user || '' : '', autocomplete: 'off' }),
      field('api_password', 'API password', { type: 'password', autocomplete: 'new-password', placeholder: r && r.api_password_set ? 'unchanged (set)' : '' }, r ? 'Leave empty to keep it.' : ''),
      errBox);
    const saved = await openDialog({
      title: r ? `Edit router ${r.name}` : 'Add router',
      testid: 'router-dialog',
      body,
      actions: [
        ({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        ({ done, form }) => h('button', { type: 'submit', class: 'btn btn-primary', testid: 'confirm', onclick: async () => {
          if (!form.reportValidity()) return;
          if (!r && !f.secret.value) {
            errBox.textContent = 'A new router needs its RADIUS secret.';
            return;
          }
          const payload = {
            name: f.name.value.trim(), ip: f.ip.value.trim(), coa_port: parseInt(f.coa_port.value, 10) || 3799,
            api_addr: f.api_addr.value.trim(), api_user: f.api_user.value.trim(),
          };
          if (f.secret.value) payload.secret = f.secret.value;
          if (f.api_password.value) payload.api_password = f.api_password.value;
          try {
            if (r) await api('PUT', `/api/routers/${encodeURIComponent(r.id)}`, payload);
            else await api('POST', '/api/routers', payload);
            done(true);
          } catch (e) {
            errBox.textContent = e.message;
          }
        } }, r ? 'Save' : 'Add router'),
      ],
      onOpen: () => f.name.focus(),
    });
    if (saved) {
      toast(r ? `Router ${f.name.value.trim()} saved` : `Router ${f.name.value.trim()} added`, 'ok');
      this.load();
    }
  }

  async remove(r) {
    const ok = await confirmDialog({
      title: 'Remove router',
      message: h('p', {}, 'Remove ', h('strong', {}, r.name), ` (${r.ip})? Its accounting packets will be dropped from now on. Session history stays.`),
      confirmLabel: 'Remove', danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/api/routers/${encodeURIComponent(r.id)}`);
      toast(`Router ${r.name} removed`, 'ok');
    } catch (e) {
      toast(`Could not remove ${r.name}: ${e.message}`, 'error');
    }
    this.load();
  }
}

// Audit: every disconnect and CoA attempt, who asked, how it went.
import { h, clear } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtDateTime, errorCauseText } from './format.js';
import { badge, emptyRow } from './ui.js';

const PAGE = 100;

export class AuditPage {
  constructor(app, params) {
    this.app = app;
    this.offset = Math.max(0, parseInt(params.get('offset'), 10) || 0);
    this.tbody = h('tbody', { testid: 'audit-rows' });
    this.info = h('span', { class: 'page-info' });
    this.prev = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(Math.max(0, this.offset - PAGE)) }, '‹ Newer');
    this.next = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(this.offset + PAGE) }, 'Older ›');
    const cols = ['When', 'Who', 'Action', 'Username', 'Router', 'Method', 'Result', 'Detail'];
    this.el = h('div', { class: 'page' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Audit'), h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn', onclick: () => this.load() }, 'Refresh')),
      h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'audit-table' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))), this.tbody)),
      h('div', { class: 'pager' }, h('span', { class: 'spacer' }), this.info, this.prev, this.next)));
    this.tbody.append(emptyRow(8, 'Loading…'));
    this.load();
  }

  destroy() {}

  go(offset) {
    this.offset = offset;
    history.replaceState(null, '', '#/audit' + query({ offset: offset || '' }));
    this.load();
  }

  async load() {
    let list;
    try {
      list = await api('GET', '/api/audit' + query({ limit: PAGE, offset: this.offset }));
    } catch (e) {
      clear(this.tbody).append(emptyRow(8, `Could not load the audit: ${e.message}`));
      return;
    }
    list = listOf(list, 'entries');
    clear(this.tbody);
    if (!list.length) this.tbody.append(emptyRow(8, this.offset ? 'No older entries.' : 'No disconnects or speed changes yet.'));
    for (const a of list) {
      const action = a.action === 'rate-limit' ? `Speed ${a.rate_limit || ''}`.trim() : a.action === 'disconnect' ? 'Disconnect' : a.action;
      const detail = [a.error_cause ? errorCauseText(a.error_cause) : '', a.detail || ''].filter(Boolean).join(' — ');
      this.tbody.append(h('tr', { testid: 'audit-row', dataset: { username: a.username || '', action: a.action || '' } },
        h('td', { class: 'mono nowrap' }, fmtDateTime(a.at)),
        h('td', {}, a.actor || '—'),
        h('td', {}, action),
        h('td', {}, a.session_id ? h('a', { href: `#/session/${a.session_id}` }, a.username || `#${a.session_id}`) : a.username || '—'),
        h('td', {}, a.router || '—'),
        h('td', {}, a.method === 'routeros' ? 'RouterOS API' : a.method === 'radius' ? 'RADIUS' : a.method || '—'),
        h('td', {}, badge(`${a.ok ? 'OK' : 'Failed'}${a.result ? ' · ' + String(a.result).toUpperCase() : ''}`, a.ok ? 'ok' : 'bad')),
        h('td', { class: 'detail-cell' }, detail || '—')));
    }
    const from = list.length ? this.offset + 1 : this.offset;
    this.info.textContent = list.length ? `${from}–${this.offset + list.length}` : '';
    this.prev.disabled = this.offset === 0;
    this.next.disabled = list.length < PAGE;
  }
}

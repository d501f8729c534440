// Overview: the network at a glance: top users by current rate and each
// router's health (accounting arriving, CoA and API reachable, warnings).
import { h, clear, setText } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtRate, fmtAgo, fmtDateTime, fmtInt } from './format.js';
import { badge, emptyRow } from './ui.js';

// warnings lists what needs an operator's eye on one router. Fields that
// older servers do not send (interims_seen, clock_skew_seconds,
// quarantined) are judged only when present.
export function routerWarnings(r, now = Date.now()) {
  const w = [];
  const at = r.last_accounting_at || r.last_acct_at;
  if (!at) w.push('no accounting received yet');
  else if (now - Date.parse(at) > 15 * 60 * 1000) w.push(`no accounting for ${fmtAgo(at, now).replace(/ ago$/, '')}`);
  if (r.coa_reachable === false) w.push('CoA unreachable');
  if (r.api_addr && r.api_reachable === false) w.push('API unreachable');
  const interims = r.interims_seen;
  if (interims === false || interims === 0) w.push('no interim updates seen');
  const skew = r.clock_skew_seconds ?? r.clock_skew;
  if (typeof skew === 'number' && Math.abs(skew) >= 60) w.push(`clock ${skew > 0 ? 'ahead' : 'behind'} by ${fmtInt(Math.round(Math.abs(skew)))} s`);
  const q = r.quarantined;
  if (typeof q === 'number' && q > 0) w.push(`${fmtInt(q)} quarantined record${q === 1 ? '' : 's'}`);
  return w;
}

export class OverviewPage {
  constructor(app) {
    this.app = app;
    this.top = h('tbody', { testid: 'top-users' });
    this.health = h('tbody', { testid: 'router-health' });
    this.summary = h('span', { class: 'muted small', testid: 'overview-summary' });
    this.el = h('div', { class: 'page page-overview' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Overview'), h('span', { class: 'spacer' }), this.summary),
      h('div', { class: 'overview-grid' },
        h('section', { class: 'panel' }, h('h2', { class: 'panel-title' }, 'Top 10 users by current download rate'),
          h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'top-users-table' },
            h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'User'), h('th', {}, 'Router'), h('th', { class: 'num' }, 'Download'), h('th', { class: 'num' }, 'Upload'))),
            this.top))),
        h('section', { class: 'panel' }, h('h2', { class: 'panel-title' }, 'Router health'),
          h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'router-health-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'Router'), h('th', { class: 'num' }, 'Sessions'), h('th', {}, 'Last accounting'), h('th', {}, 'CoA'), h('th', {}, 'API'), h('th', {}, 'Warnings'))),
            this.health)))));
    this.top.append(emptyRow(5, 'Loading…'));
    this.health.append(emptyRow(6, 'Loading…'));
    this.load();
    this.timer = setInterval(() => this.load(), 10000);
  }

  destroy() { clearInterval(this.timer); }

  async load() {
    let page;
    let routers;
    try {
      [page, routers] = await Promise.all([
        api('GET', '/api/sessions' + query({ sort: 'output_bps', order: 'desc', limit: 10 })),
        api('GET', '/api/routers').then((r) => listOf(r, 'routers')),
      ]);
    } catch (e) {
      clear(this.top).append(emptyRow(5, `Could not load: ${e.message}`));
      return;
    }
    this.renderTop(page.sessions || []);
    this.renderHealth(routers);
    const warn = routers.filter((r) => routerWarnings(r).length).length;
    setText(this.summary, `${fmtInt(page.total ?? 0)} sessions · ${fmtInt(routers.length)} routers${warn ? ` · ${warn} with warnings` : ''}`);
  }

  renderTop(list) {
    clear(this.top);
    if (!list.length) this.top.append(emptyRow(5, 'No open sessions.'));
    list.forEach((s, i) => {
      this.top.append(h('tr', { testid: 'top-user', dataset: { username: s.username } },
        h('td', { class: 'num muted' }, String(i + 1)),
        h('td', {}, h('a', { href: `#/session/${encodeURIComponent(s.id)}`, class: 'user-link' }, s.username),
          s.customer ? h('div', { class: 'muted small' }, s.customer) : null),
        h('td', {}, s.router || '—'),
        h('td', { class: 'num rate-down' }, fmtRate(s.output_bps || 0)),
        h('td', { class: 'num rate-up' }, fmtRate(s.input_bps || 0))));
    });
  }

  renderHealth(routers) {
    clear(this.health);
    if (!routers.length) this.health.append(emptyRow(6, 'No routers yet.'));
    const reach = (v) => (v === true ? badge('Reachable', 'ok') : v === false ? badge('Unreachable', 'bad') : badge('Not tested yet', 'info'));
    for (const r of routers) {
      const warnings = routerWarnings(r);
      const at = r.last_accounting_at || r.last_acct_at;
      this.health.append(h('tr', { testid: 'health-row', dataset: { name: r.name, warnings: warnings.length } },
        h('td', {}, h('a', { href: '#/sessions?router=' + encodeURIComponent(r.name) }, h('strong', {}, r.name))),
        h('td', { class: 'num' }, fmtInt(r.open_sessions ?? 0)),
        h('td', { title: at ? fmtDateTime(at) : '' }, at ? fmtAgo(at) : h('span', { class: 'muted' }, 'never')),
        h('td', {}, reach(r.coa_reachable)),
        h('td', {}, r.api_addr ? reach(r.api_reachable) : badge('not configured', 'muted')),
        h('td', { class: 'detail-cell', testid: 'health-warnings' }, warnings.length ? warnings.map((w) => badge(w, 'warn')) : badge('OK', 'ok'))));
    }
  }
}

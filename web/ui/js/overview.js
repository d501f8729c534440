// Overview: the network at a glance: top users by current rate and each
// router's health (accounting arriving, CoA and API reachable, warnings).
import { h, clear, setText } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtRate, fmtAgo, fmtDateTime, fmtInt, fmtClock } from './format.js';
import { badge, emptyRow } from './ui.js';
import { drawGrid, sizeCanvas } from './chart.js';

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
  const q = r.quarantined_records ?? r.quarantined;
  if (typeof q === 'number' && q > 0) w.push(`${fmtInt(q)} quarantined record${q === 1 ? '' : 's'}`);
  return w;
}

const palette = ['#1f6feb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#65a30d', '#db2777', '#475569', '#ca8a04'];

// stackedChart draws one series per router, stacked, over time buckets.
// Each bucket is drawn as a step over its width, so one bucket shows too.
function stackedChart(canvas, buckets, routers, value, fmt, step) {
  const { g, w, hh } = sizeCanvas(canvas, 180);
  const ink = getComputedStyle(document.documentElement).getPropertyValue('--muted').trim() || '#6b7686';
  const left = 70;
  const bottom = hh - 18;
  const top = 6;
  const totals = buckets.map((b) => routers.reduce((a, r) => a + (value(b.by.get(r)) || 0), 0));
  const max = Math.max(1, ...totals);
  drawGrid(g, { width: w, left, top, bottom, max, steps: 3, fmt, ink });
  if (!buckets.length) {
    g.textAlign = 'center';
    g.fillText('No samples in this period yet', (w + left) / 2, hh / 2);
    return;
  }
  const t0 = buckets[0].at;
  const t1 = buckets[buckets.length - 1].at + step;
  const x = (t) => left + ((w - left - 4) * (t - t0)) / (t1 - t0);
  const y = (v) => bottom - ((bottom - top) * v) / max;
  const base = buckets.map(() => 0);
  routers.forEach((r, ri) => {
    const tops = buckets.map((b, i) => base[i] + (value(b.by.get(r)) || 0));
    g.beginPath();
    g.moveTo(x(t0), y(base[0]));
    buckets.forEach((b, i) => { g.lineTo(x(b.at), y(tops[i])); g.lineTo(x(b.at + step), y(tops[i])); });
    for (let i = buckets.length - 1; i >= 0; i--) { g.lineTo(x(buckets[i].at + step), y(base[i])); g.lineTo(x(buckets[i].at), y(base[i])); }
    g.closePath();
    g.fillStyle = palette[ri % palette.length];
    g.globalAlpha = 0.75;
    g.fill();
    g.globalAlpha = 1;
    tops.forEach((v, i) => { base[i] = v; });
  });
  g.fillStyle = ink;
  g.textAlign = 'left';
  g.fillText(fmtClock(t0), left, hh - 4);
  g.textAlign = 'right';
  g.fillText(fmtClock(t1), w - 4, hh - 4);
}

export class OverviewPage {
  constructor(app) {
    this.app = app;
    this.top = h('tbody', { testid: 'top-users' });
    this.health = h('tbody', { testid: 'router-health' });
    this.summary = h('span', { class: 'muted small', testid: 'overview-summary' });
    this.el = h('div', { class: 'page page-overview' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Overview'), h('span', { class: 'spacer' }), this.summary),
      this.historyPanel(),
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

  destroy() {
    clearInterval(this.timer);
    window.removeEventListener('resize', this.onResize);
  }

  historyPanel() {
    this.hours = h('select', { testid: 'overview-hours', 'aria-label': 'History span', onchange: () => this.loadHistory() },
      [1, 3, 6, 12, 24, 48].map((n) => h('option', { value: n }, `last ${n} h`)));
    this.hours.value = '6';
    this.rateCanvas = h('canvas', { class: 'chart chart-overview', testid: 'throughput-chart', role: 'img', 'aria-label': 'Download throughput per router, stacked' });
    this.sessCanvas = h('canvas', { class: 'chart chart-overview', testid: 'sessions-chart', role: 'img', 'aria-label': 'Sessions per router, stacked' });
    this.legend = h('div', { class: 'legend', testid: 'overview-legend' });
    this.onResize = () => this.drawHistory();
    window.addEventListener('resize', this.onResize);
    return h('section', { class: 'panel panel-pad overview-history' },
      h('div', { class: 'inline' }, h('h2', {}, 'Throughput and sessions per router'), h('span', { class: 'spacer' }), this.hours),
      this.legend,
      h('div', { class: 'overview-charts' },
        h('div', {}, h('div', { class: 'muted small' }, 'Download rate (stacked)'), this.rateCanvas),
        h('div', {}, h('div', { class: 'muted small' }, 'Sessions reporting (stacked)'), this.sessCanvas)));
  }

  async loadHistory() {
    let data;
    try {
      data = await api('GET', '/api/throughput' + query({ hours: this.hours.value }));
    } catch (e) {
      clear(this.legend).append(h('span', { class: 'muted' }, `History unavailable: ${e.message}`));
      return;
    }
    const byAt = new Map();
    const routers = new Set();
    for (const p of data.points || []) {
      const at = Date.parse(p.at);
      if (!byAt.has(at)) byAt.set(at, { at, by: new Map() });
      byAt.get(at).by.set(p.router, p);
      routers.add(p.router);
    }
    this.history = { step: (data.bucket_seconds || 60) * 1000, buckets: [...byAt.values()].sort((a, b) => a.at - b.at), routers: [...routers].sort() };
    clear(this.legend).append(...this.history.routers.map((r, i) => {
      const key = h('span', { class: 'key' });
      key.style.background = palette[i % palette.length]; // CSSOM: the CSP forbids style attributes
      return h('span', { class: 'legend-item', testid: 'legend-router' }, key, r);
    }));
    this.drawHistory();
  }

  drawHistory() {
    if (!this.history) return;
    const { buckets, routers, step } = this.history;
    stackedChart(this.rateCanvas, buckets, routers, (p) => p && p.output_bps, fmtRate, step);
    stackedChart(this.sessCanvas, buckets, routers, (p) => p && p.sessions, (v) => fmtInt(Math.round(v)), step);
  }

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
    this.loadHistory();
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

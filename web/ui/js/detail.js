// Session detail: every attribute and the rate over the session's life.
import { h, clear } from './dom.js';
import { api } from './api.js';
import { fmtBytes, fmtRate, fmtUptime, fmtDateTime, fmtInt, parseTime } from './format.js';
import { RateChart } from './chart.js';
import { disconnectOne, changeSpeed } from './actions.js';
import { badge } from './ui.js';

const labels = {
  id: 'ID (radacctid)', acct_session_id: 'Acct-Session-Id', acct_unique_id: 'Acct-Unique-Id', unique_id: 'Acct-Unique-Id',
  username: 'Username', customer: 'Customer', router: 'Router', router_id: 'Router ID', nas_ip: 'NAS IP', ip: 'IP Address',
  mac: 'MAC (Calling-Station-Id)', profile: 'Profile', service: 'Service (Called-Station-Id)', interface: 'Interface (NAS-Port-Id)',
  started_at: 'Started', updated_at: 'Last update', stopped_at: 'Stopped', session_time: 'Session time (router)',
  uptime_seconds: 'Uptime', input_octets: 'Upload (input octets)', output_octets: 'Download (output octets)',
  input_bps: 'Upload rate', output_bps: 'Download rate', terminate_cause: 'Terminate cause', closed_by: 'Closed by',
  has_start: 'Start seen', interim_seconds: 'Interim interval',
};

// Bookkeeping of the accounting pipeline, not facts about the session:
// an operator reading the page has no use for them.
function internalKey(k) {
  return /^(flush_|mark_|prev_)/.test(k) || k === 'has_start' || k === 'from_api' || k === 'fromapi';
}

function humanKey(k) {
  if (labels[k]) return labels[k];
  const s = k.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function fmtValue(k, v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (k.endsWith('_octets') && typeof v === 'number') return `${fmtBytes(v)} (${fmtInt(v)} B)`;
  if (k.endsWith('_bps') && typeof v === 'number') return fmtRate(v);
  if ((k === 'uptime_seconds' || k === 'session_time' || k === 'interim_seconds') && typeof v === 'number') return fmtUptime(v);
  if ((k.endsWith('_at') || k.endsWith('_time')) && typeof v === 'string' && parseTime(v) !== null) return fmtDateTime(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export class DetailPage {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.canvas = h('canvas', { class: 'chart', testid: 'rate-chart', role: 'img', 'aria-label': 'Download and upload rate over the session' });
    this.chart = new RateChart(this.canvas);
    this.title = h('h1', { class: 'page-title' }, `Session #${id}`);
    this.status = h('span');
    this.actions = h('div', { class: 'detail-actions' });
    this.attrs = h('dl', { class: 'attrs', testid: 'session-attrs' });
    this.radius = h('dl', { class: 'attrs', testid: 'session-radius' });
    this.radiusPanel = h('section', { class: 'panel panel-pad', hidden: true }, h('h2', {}, 'Accounting attributes (radacct)'), this.radius);
    this.err = h('div', { class: 'banner banner-error', hidden: true, role: 'alert' });
    this.el = h('div', { class: 'page page-detail' },
      h('div', { class: 'detail-head' },
        h('a', { href: app.sessionsHash(), class: 'back-link' }, '← Sessions'), this.title, this.status, h('span', { class: 'spacer' }),
        this.usageLink = h('a', { class: 'btn', testid: 'usage-link', href: '#/usage' }, 'Usage'), this.actions),
      this.err,
      h('div', { class: 'detail-grid' },
        h('section', { class: 'panel panel-pad' }, h('h2', {}, 'Rate over the session'),
          h('div', { class: 'legend' }, h('span', { class: 'key key-down' }), 'Download (to subscriber)', h('span', { class: 'key key-up' }), 'Upload (from subscriber)'),
          this.canvas),
        h('div', { class: 'detail-side' },
          h('section', { class: 'panel panel-pad' }, h('h2', {}, 'Session'), this.attrs),
          this.radiusPanel)));
    this.load();
    this.timer = setInterval(() => this.load(), 10000);
  }

  destroy() {
    clearInterval(this.timer);
    this.chart.destroy();
  }

  async load() {
    try {
      const [s, samples] = await Promise.all([
        api('GET', `/api/sessions/${encodeURIComponent(this.id)}`),
        api('GET', `/api/sessions/${encodeURIComponent(this.id)}/samples`).catch(() => []),
      ]);
      this.err.hidden = true;
      this.show(s);
      this.chart.setSamples(Array.isArray(samples) ? samples : samples && samples.samples);
    } catch (e) {
      this.err.hidden = false;
      this.err.textContent = e.status === 404 ? 'No such session.' : `Could not load the session: ${e.message}`;
    }
  }

  showRadius(attrs) {
    clear(this.radius);
    const entries = attrs && typeof attrs === 'object' ? Object.entries(attrs).filter(([k]) => !internalKey(k)) : [];
    this.radiusPanel.hidden = entries.length === 0;
    for (const [k, v] of entries) {
      this.radius.append(h('dt', {}, k), h('dd', { class: 'mono' }, v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v)));
    }
  }

  show(s) {
    this.session = s;
    this.title.textContent = s.customer ? `${s.username} — ${s.customer}` : s.username || `Session #${this.id}`;
    const open = s.open !== undefined ? !!s.open : !s.stopped_at;
    clear(this.status).append(open ? badge('Online', 'ok') : badge(`Closed${s.terminate_cause ? ': ' + s.terminate_cause : ''}`, 'muted'));
    this.showRadius(s.attributes);
    this.usageLink.href = '#/usage?q=' + encodeURIComponent(s.username || '') + '&user=' + encodeURIComponent(s.username || '');
    clear(this.actions);
    if (this.app.role !== 'viewer' && open) {
      this.actions.append(
        h('button', { type: 'button', class: 'btn', testid: 'change-speed', onclick: () => changeSpeed(s) }, 'Change speed'),
        h('button', { type: 'button', class: 'btn btn-danger', testid: 'disconnect', onclick: async () => {
          const r = await disconnectOne(s);
          if (r && r.ok) setTimeout(() => this.load(), 1500);
        } }, 'Disconnect'));
    }
    clear(this.attrs);
    for (const [k, v] of Object.entries(s)) {
      if (k === 'attributes' && v && typeof v === 'object') continue;
      if (internalKey(k)) continue;
      // 0 means the router never said (no Acct-Interim-Interval seen).
      if (k === 'interim_seconds' && !v) continue;
      this.attrs.append(h('dt', {}, humanKey(k)), h('dd', { class: typeof v === 'number' || k === 'ip' || k === 'mac' ? 'mono' : '', dataset: { key: k } }, fmtValue(k, v)));
    }
  }
}

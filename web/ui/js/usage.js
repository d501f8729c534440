// Usage: what each subscriber used per day or month, from the same SQL
// functions billing reads (usage_by_day, usage_by_month via /api/usage).
import { h, clear, setText, debounce } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtBytes, fmtInt } from './format.js';
import { emptyRow } from './ui.js';
import { drawGrid, sizeCanvas } from './chart.js';

const isoDay = (d) => d.toISOString().slice(0, 10);

// csvCell keeps a spreadsheet from running a cell as a formula, whichever
// separator (',' or ';', as in Norwegian Excel) it splits on: a cell that
// starts with = + - @ tab or CR gets a leading quote, and any cell holding
// a separator, a quote or a line break is quoted (as the server's CSVs do).
function csvCell(v) {
  let s = String(v ?? '');
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",;\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export class UsagePage {
  constructor(app, params) {
    this.app = app;
    const today = new Date();
    const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1));
    this.v = {
      from: params.get('from') || isoDay(first), to: params.get('to') || isoDay(today),
      period: params.get('period') === 'month' ? 'month' : 'day', q: params.get('q') || '',
      sort: ['total', 'download', 'upload', 'sessions', 'username'].includes(params.get('sort')) ? params.get('sort') : 'total',
      user: params.get('user') || '',
    };
    this.names = new Map();
    const input = (type, key, label) => {
      const el = h('input', { type, id: 'usage-' + key, testid: 'usage-' + key, value: this.v[key], onchange: () => this.set({ [key]: el.value }) });
      return h('div', { class: 'field' }, h('label', { for: 'usage-' + key }, label), el);
    };
    this.period = h('select', { id: 'usage-period', testid: 'usage-period', onchange: () => this.set({ period: this.period.value }) },
      h('option', { value: 'day' }, 'Per day'), h('option', { value: 'month' }, 'Per month'));
    this.period.value = this.v.period;
    const searchNow = debounce(() => this.set({ q: this.search.value.trim() }), 250);
    this.search = h('input', { type: 'search', id: 'usage-search', testid: 'usage-search', value: this.v.q, placeholder: 'Username or customer name', oninput: searchNow });
    this.csv = h('button', { type: 'button', class: 'btn', testid: 'usage-csv', onclick: () => this.download() }, 'Export CSV (shown)');
    this.summary = h('span', { class: 'muted small', testid: 'usage-summary' });
    this.thead = h('thead');
    this.tbody = h('tbody', { testid: 'usage-rows' });
    this.canvas = h('canvas', { class: 'chart chart-usage', testid: 'usage-chart', role: 'img', 'aria-label': 'Daily usage of the selected subscriber' });
    this.chartTitle = h('h2', {}, 'Daily usage');
    this.chartPanel = h('section', { class: 'panel panel-pad usage-chart-panel', hidden: true, testid: 'usage-chart-panel' }, this.chartTitle,
      h('div', { class: 'legend' }, h('span', { class: 'key key-down' }), 'Download', h('span', { class: 'key key-up' }), 'Upload'), this.canvas);
    this.el = h('div', { class: 'page page-usage' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Usage'), h('span', { class: 'spacer' }), this.summary),
      h('div', { class: 'panel' },
        h('div', { class: 'toolbar' },
          input('date', 'from', 'From'), input('date', 'to', 'To'),
          h('div', { class: 'field' }, h('label', { for: 'usage-period' }, 'Period'), this.period),
          h('div', { class: 'field field-grow' }, h('label', { for: 'usage-search' }, 'Search'), this.search),
          h('div', { class: 'toolbar-actions' }, this.csv)),
        h('div', { class: 'table-wrap' }, h('table', { class: 'grid usage', testid: 'usage-table' }, this.thead, this.tbody))),
      this.chartPanel);
    this.renderHead();
    this.tbody.append(emptyRow(7, 'Loading…'));
    this.onResize = () => this.drawChart();
    window.addEventListener('resize', this.onResize);
    this.load();
  }

  destroy() { window.removeEventListener('resize', this.onResize); }

  set(patch) {
    this.v = { ...this.v, ...patch };
    const p = {};
    for (const [k, val] of Object.entries(this.v)) if (val && !(k === 'sort' && val === 'total') && !(k === 'period' && val === 'day')) p[k] = val;
    history.replaceState(null, '', '#/usage' + query(p));
    if ('sort' in patch && Object.keys(patch).length === 1) this.render();
    else if ('user' in patch && Object.keys(patch).length === 1) this.showUser();
    else this.load();
  }

  renderHead() {
    const cols = [['username', 'Username'], ['customer', 'Customer'], ['download', 'Download'], ['upload', 'Upload'], ['total', 'Total'], ['sessions', 'Sessions'], ['periods', this.v.period === 'month' ? 'Months' : 'Days']];
    const tr = h('tr');
    for (const [key, label] of cols) {
      const sortable = ['username', 'download', 'upload', 'total', 'sessions'].includes(key);
      const th = h('th', { class: key === 'username' || key === 'customer' ? '' : 'num', scope: 'col' });
      if (sortable) {
        const active = this.v.sort === key;
        th.append(h('button', { type: 'button', class: 'sort' + (active ? ' sort-active' : ''), testid: 'usage-sort-' + key,
          onclick: () => this.set({ sort: key }) }, label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, active ? (key === 'username' ? '▲' : '▼') : '')));
        if (active) th.setAttribute('aria-sort', key === 'username' ? 'ascending' : 'descending');
      } else th.append(label);
      tr.append(th);
    }
    clear(this.thead).append(tr);
  }

  async load() {
    const v = this.v;
    let data;
    try {
      data = await api('GET', '/api/usage' + query({ from: v.from, to: v.to, period: v.period }));
      if (v.q) {
        // A search by customer name: the usernames of the matching customers.
        const cs = listOf(await api('GET', '/api/customers' + query({ q: v.q, limit: 1000 })), 'customers');
        this.matchUsers = new Set(cs.map((c) => c.username));
        for (const c of cs) this.names.set(c.username, c.name);
      } else this.matchUsers = null;
    } catch (e) {
      clear(this.tbody).append(emptyRow(7, `Could not load usage: ${e.message}`));
      return;
    }
    if (this.v !== v) return; // a newer request is on its way
    this.rows = data.usage || [];
    await this.loadNames();
    this.render();
  }

  async loadNames() {
    const missing = [...new Set(this.rows.map((r) => r.username))].filter((u) => !this.names.has(u));
    if (!missing.length) return;
    try {
      // One page of customers covers a small ISP; bigger ones see names as
      // they search.
      const cs = listOf(await api('GET', '/api/customers' + query({ limit: 1000 })), 'customers');
      for (const c of cs) this.names.set(c.username, c.name);
    } catch { /* names are a convenience */ }
    for (const u of missing) if (!this.names.has(u)) this.names.set(u, '');
  }

  // users sums the rows per username over the range and applies the search.
  users() {
    const q = this.v.q.toLowerCase();
    const by = new Map();
    for (const r of this.rows) {
      let u = by.get(r.username);
      if (!u) by.set(r.username, u = { username: r.username, customer: this.names.get(r.username) || '', download: 0, upload: 0, sessions: 0, periods: 0 });
      u.download += r.output_octets;
      u.upload += r.input_octets;
      u.sessions += r.sessions || 0;
      u.periods++;
    }
    let list = [...by.values()];
    if (q) list = list.filter((u) => u.username.toLowerCase().includes(q) || u.customer.toLowerCase().includes(q) || (this.matchUsers && this.matchUsers.has(u.username)));
    for (const u of list) u.total = u.download + u.upload;
    const k = this.v.sort;
    list.sort((a, b) => (k === 'username' ? a.username.localeCompare(b.username) : b[k] - a[k] || a.username.localeCompare(b.username)));
    return list;
  }

  render() {
    this.renderHead();
    const list = this.shown = this.users();
    clear(this.tbody);
    if (!list.length) this.tbody.append(emptyRow(7, this.v.q ? 'No usage matches this search.' : 'No usage in this range.'));
    let down = 0;
    let up = 0;
    for (const u of list) {
      down += u.download;
      up += u.upload;
      const tr = h('tr', { testid: 'usage-row', dataset: { username: u.username }, class: u.username === this.v.user ? 'row-selected' : '' },
        h('td', {}, h('a', { href: '#', class: 'user-link', testid: 'usage-user', onclick: (e) => { e.preventDefault(); this.set({ user: u.username }); } }, u.username)),
        h('td', { class: u.customer ? '' : 'muted' }, u.customer || '—'),
        h('td', { class: 'num', testid: 'usage-download' }, fmtBytes(u.download)),
        h('td', { class: 'num', testid: 'usage-upload' }, fmtBytes(u.upload)),
        h('td', { class: 'num', testid: 'usage-total', dataset: { octets: u.total } }, fmtBytes(u.total)),
        h('td', { class: 'num' }, fmtInt(u.sessions)),
        h('td', { class: 'num' }, fmtInt(u.periods)));
      this.tbody.append(tr);
    }
    setText(this.summary, `${fmtInt(list.length)} users · ↓ ${fmtBytes(down)} · ↑ ${fmtBytes(up)} · ${this.v.from} – ${this.v.to}`);
    this.showUser();
  }

  showUser() {
    for (const tr of this.tbody.querySelectorAll('tr[data-username]')) tr.classList.toggle('row-selected', tr.dataset.username === this.v.user);
    const user = this.v.user;
    this.chartPanel.hidden = !user;
    if (!user) return;
    const name = this.names.get(user);
    setText(this.chartTitle, `${this.v.period === 'month' ? 'Monthly' : 'Daily'} usage of ${user}${name ? ' — ' + name : ''}`);
    this.points = (this.rows || []).filter((r) => r.username === user).sort((a, b) => a.day.localeCompare(b.day));
    this.drawChart();
  }

  // drawChart draws stacked download/upload bars per day or month.
  drawChart() {
    if (this.chartPanel.hidden || !this.points) return;
    const { g, w, hh } = sizeCanvas(this.canvas, 220);
    const css = getComputedStyle(document.documentElement);
    const ink = css.getPropertyValue('--muted').trim() || '#6b7686';
    const down = css.getPropertyValue('--down').trim() || '#1f6feb';
    const up = css.getPropertyValue('--up').trim() || '#d97706';
    const pts = this.points;
    const max = Math.max(1, ...pts.map((p) => p.output_octets + p.input_octets));
    const left = 64;
    const bottom = hh - 22;
    const top = 8;
    drawGrid(g, { width: w, left, top, bottom, max, steps: 4, fmt: fmtBytes, ink });
    const n = Math.max(1, pts.length);
    const slot = (w - left - 4) / n;
    const bw = Math.max(2, Math.min(40, slot * 0.7));
    g.textAlign = 'center';
    pts.forEach((p, i) => {
      const x = left + slot * i + (slot - bw) / 2;
      const hd = ((bottom - top) * p.output_octets) / max;
      const hu = ((bottom - top) * p.input_octets) / max;
      g.fillStyle = down;
      g.fillRect(x, bottom - hd, bw, hd);
      g.fillStyle = up;
      g.fillRect(x, bottom - hd - hu, bw, hu);
      if (n <= 16 || i % Math.ceil(n / 12) === 0) {
        g.fillStyle = ink;
        g.fillText(this.v.period === 'month' ? p.day.slice(0, 7) : p.day.slice(5), x + bw / 2, hh - 6);
      }
    });
  }

  download() {
    const rows = [['username', 'customer', 'from', 'to', 'download_octets', 'upload_octets', 'total_octets', 'sessions']];
    for (const u of this.shown || []) rows.push([u.username, u.customer, this.v.from, this.v.to, u.download, u.upload, u.total, u.sessions]);
    const text = rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
    const a = h('a', { download: `usage-${this.v.from}-${this.v.to}.csv` });
    // A blob: URL this page made itself, set directly: the DOM builder
    // refuses every scheme but http, https and mailto in attributes.
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    this.lastCSV = text;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
}

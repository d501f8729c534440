// The Active Sessions page: totals, filters, a live table fed by /ws.
//
// The table holds every matching session, however many: its height is
// that of all rows (so the scrollbar is true), but only the rows around
// what is on screen exist in the DOM, and the page subscribes to just that
// window (offset and limit) of the server's sorted, filtered list. Each
// snapshot is one bounded query on the server whatever the total; sort,
// filter and search apply to the whole set because the server does them.
import { h, clear, setText, debounce } from './dom.js';
import { query } from './api.js';
import { parseTime, fmtDateTime } from './format.js';
import { disconnectOne, disconnectSelected, disconnectRouter } from './actions.js';
import { windowMethods } from './sessionwindow.js';
import { rowMethods } from './sessionrows.js';

// The heaviest current downloaders first: what an operator opens the page
// for. Newest first put brand-new 0 B sessions on top.
export const defaultView = { router: '', q: '', sort: 'output_bps', order: 'desc' };
const sortStoreKey = 'nettportal.sessions.sort';
const FIRST_WINDOW = { offset: 0, limit: 75 };
const ROW_HEIGHT = 39; // until a rendered row is measured
const sortKeys = new Set(['username', 'customer', 'router', 'ip', 'profile', 'started_at', 'uptime',
  'input_octets', 'output_octets', 'input_bps', 'output_bps']);
// Numbers sort largest first on the first click: that is what one looks for.
const descFirst = new Set(['started_at', 'uptime', 'input_octets', 'output_octets', 'input_bps', 'output_bps']);

// baseView is the default view with this browser's last chosen sort, so a
// link without a sort opens the way this operator last sorted.
function baseView() {
  const v = { ...defaultView };
  try {
    const saved = JSON.parse(localStorage.getItem(sortStoreKey) || 'null');
    if (saved && sortKeys.has(saved.sort) && (saved.order === 'asc' || saved.order === 'desc')) {
      v.sort = saved.sort;
      v.order = saved.order;
    }
  } catch { /* storage off or garbage: the default */ }
  return v;
}

function rememberSort(sort, order) {
  try { localStorage.setItem(sortStoreKey, JSON.stringify({ sort, order })); } catch { /* storage off */ }
}

export function viewFromParams(p) {
  const v = baseView();
  if (p.get('router')) v.router = p.get('router');
  if (p.get('q')) v.q = p.get('q');
  if (sortKeys.has(p.get('sort'))) v.sort = p.get('sort');
  if (p.get('order') === 'asc' || p.get('order') === 'desc') v.order = p.get('order');
  return v;
}

// liveViewFor is the subscription of a view before the page has laid out:
// its first window.
export function liveViewFor(v) {
  return { ...v, ...FIRST_WINDOW };
}

export function viewToHash(v) {
  // Against the product default, not this browser's: a copied link then
  // shows the same order to a colleague.
  const p = {};
  for (const k of Object.keys(defaultView)) if (v[k] !== defaultView[k]) p[k] = v[k];
  return '#/sessions' + query(p);
}

export class SessionsPage {
  constructor(app, params) {
    this.app = app;
    this.view = viewFromParams(params);
    this.win = { ...FIRST_WINDOW }; // the window subscribed to
    this.canControl = app.role !== 'viewer';
    this.rows = new Map(); // id -> {tr, c, s}, the rows in the DOM
    this.start = 0; // index of the first row in the DOM
    this.block = ''; // offset/limit of the snapshot the DOM rows came from
    this.total = 0;
    this.rowH = ROW_HEIGHT;
    this.selected = new Map(); // id -> session, kept while scrolled away
    this.last = null; // last snapshot
    this.offset = 0; // server clock minus ours, ms
    this.viewChangedAt = Date.now();
    this.pending = new Set(); // ids disconnected, waiting for their Stop
    this.frame = 0;
    this.el = this.render();
    this.tick = setInterval(() => this.tickUptime(), 1000);
    this.onScroll = () => {
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.updateWindow(); });
    };
    this.wrap.addEventListener('scroll', this.onScroll, { passive: true });
    window.addEventListener('scroll', this.onScroll, { passive: true });
    window.addEventListener('resize', this.onScroll, { passive: true });
    // Once laid out, the window fits the screen.
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.updateWindow(); });
  }

  destroy() {
    clearInterval(this.tick);
    this.searchDebounced.cancel();
    cancelAnimationFrame(this.frame);
    window.removeEventListener('scroll', this.onScroll);
    window.removeEventListener('resize', this.onScroll);
  }

  // liveView is what the page subscribes to: the view and its window.
  liveView() {
    return { ...this.view, offset: this.win.offset, limit: this.win.limit };
  }

  // --- view -------------------------------------------------------------

  setView(patch) {
    const prev = this.view;
    this.view = { ...this.view, ...patch };
    if (JSON.stringify(this.view) === JSON.stringify(prev)) return;
    // Another filter selects other sessions: a selection made under the
    // old one must not be disconnected unseen.
    if (this.view.router !== prev.router || this.view.q !== prev.q) this.selected.clear();
    this.viewChanged();
    history.replaceState(null, '', viewToHash(this.view));
    this.app.rememberSessionsHash(viewToHash(this.view));
  }

  // applyParams handles a hash change from outside (back/forward, reload).
  applyParams(params) {
    const v = viewFromParams(params);
    if (JSON.stringify(v) === JSON.stringify(this.view)) return;
    this.view = v;
    this.selected.clear();
    this.viewChanged();
  }

  // viewChanged starts the new order or filter from its top.
  viewChanged() {
    this.viewChangedAt = Date.now();
    this.block = '';
    this.scrollToTop();
    this.win = this.wantWindow(0, Math.max(1, this.visibleRows()));
    this.app.live.subscribe(this.liveView());
    this.syncControls();
    this.renderHead();
  }

  // --- layout -----------------------------------------------------------

  render() {
    const card = (label, testid, sub) => {
      const value = h('div', { class: 'card-value', testid }, '—');
      const subEl = h('div', { class: 'card-sub', testid: testid + '-sub' }, sub || '');
      return { el: h('section', { class: 'card', 'aria-label': label }, h('div', { class: 'card-label' }, label), value, subEl), value, sub: subEl };
    };
    this.cards = {
      sessions: card('Total Sessions', 'total-sessions'),
      download: card('Total Download', 'total-download'),
      upload: card('Total Upload', 'total-upload'),
      combined: card('Combined', 'total-combined'),
      rate: card('Current Rate ↓ / ↑', 'total-rate'),
    };

    this.routerSelect = h('select', { id: 'router-filter', testid: 'router-filter', onchange: () => this.setView({ router: this.routerSelect.value }) },
      h('option', { value: '' }, 'All routers'));
    this.searchDebounced = debounce(() => this.setView({ q: this.search.value.trim() }), 250);
    this.search = h('input', { type: 'search', id: 'search', testid: 'search', placeholder: 'Username, customer name or IP', autocomplete: 'off', spellcheck: 'false',
      oninput: () => this.searchDebounced(),
      onkeydown: (e) => { if (e.key === 'Enter') { this.searchDebounced.cancel(); this.setView({ q: this.search.value.trim() }); } } });
    this.csv = h('a', { class: 'btn', testid: 'export-csv', href: '/api/sessions.csv', download: 'sessions.csv' }, 'Export CSV');

    this.bulkBtn = h('button', { type: 'button', class: 'btn btn-danger-outline', testid: 'disconnect-selected', disabled: true, onclick: () => this.onDisconnectSelected() }, 'Disconnect selected');
    this.routerBtn = h('button', { type: 'button', class: 'btn btn-danger-outline', testid: 'disconnect-router', hidden: true, onclick: () => this.onDisconnectRouter() }, 'Disconnect all on router');

    this.updated = h('span', { class: 'muted small', testid: 'updated-at', 'aria-live': 'off' });
    this.pageInfo = h('span', { class: 'page-info', testid: 'page-info' }, '');
    this.topBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'scroll-top', 'aria-label': 'Scroll to the first row', onclick: () => this.scrollToTop() }, '⇡ First');
    this.endBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'scroll-end', 'aria-label': 'Scroll to the last row', onclick: () => this.scrollToEnd() }, 'Last ⇣');

    this.thead = h('thead');
    this.tbody = h('tbody', { testid: 'session-rows' });
    // Spacers stand for the rows before and after the ones in the DOM, so
    // the table is as tall as all of them.
    this.topPad = this.padRow('pad-top');
    this.botPad = this.padRow('pad-bottom');
    this.tbody.append(this.topPad.tr, this.botPad.tr);
    this.table = h('table', { class: 'grid sessions', testid: 'sessions-table', 'aria-rowcount': '-1' }, this.thead, this.tbody);
    this.renderHead();
    this.tbody.append(this.messageRow('Connecting…'));
    // Focusable, so the keyboard scrolls it (PageDown, End, arrows).
    this.wrap = h('div', { class: 'table-wrap vscroll', testid: 'sessions-scroll', tabindex: '0', role: 'region', 'aria-label': 'Sessions table' }, this.table);

    const toolbar = h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'router-filter' }, 'Router'), this.routerSelect),
      h('div', { class: 'field field-grow' }, h('label', { for: 'search' }, 'Search'), this.search),
      h('div', { class: 'toolbar-actions' }, this.canControl ? [this.bulkBtn, this.routerBtn] : null, this.csv));

    const pager = h('div', { class: 'pager' }, this.updated, h('span', { class: 'spacer' }), this.pageInfo, this.topBtn, this.endBtn);

    this.syncControls();
    this.loadRouters();
    return h('div', { class: 'page page-sessions' },
      h('div', { class: 'cards' }, Object.values(this.cards).map((c) => c.el)),
      h('div', { class: 'panel' }, toolbar, this.wrap, pager));
  }

  async loadRouters() {
    const routers = await this.app.routers();
    const cur = this.view.router;
    clear(this.routerSelect);
    this.routerSelect.append(h('option', { value: '' }, 'All routers'));
    let found = !cur;
    for (const r of routers) {
      this.routerSelect.append(h('option', { value: r.name }, r.name));
      if (r.name === cur || String(r.id) === cur) found = true;
    }
    if (!found) this.routerSelect.append(h('option', { value: cur }, cur));
    this.syncControls();
  }

  syncControls() {
    const v = this.view;
    this.routerSelect.value = v.router;
    if (document.activeElement !== this.search) this.search.value = v.q;
    this.csv.href = '/api/sessions.csv' + query({ router: v.router, q: v.q, sort: v.sort, order: v.order });
    this.routerBtn.hidden = !v.router;
    if (v.router) setText(this.routerBtn, `Disconnect all on ${v.router}`);
  }

  columns() {
    const cols = [];
    if (this.canControl) cols.push({ key: 'sel', cls: 'col-sel' });
    cols.push(
      { key: 'username', label: 'Username', sort: 'username' },
      { key: 'customer', label: 'Customer Name', sort: 'customer' },
      { key: 'router', label: 'Router', sort: 'router' },
      { key: 'ip', label: 'IP Address', sort: 'ip' },
      { key: 'profile', label: 'Profile', sort: 'profile' },
      { key: 'uptime', label: 'Uptime', sort: 'uptime', cls: 'num' },
      { key: 'download', label: 'Download', sort: 'output_octets', cls: 'num' },
      { key: 'upload', label: 'Upload', sort: 'input_octets', cls: 'num' },
      { key: 'rate', label: 'Rate', cls: 'num col-rate' },
    );
    if (this.canControl) cols.push({ key: 'actions', label: 'Actions', cls: 'col-actions' });
    return cols;
  }

  sortButton(key, label, title) {
    const active = this.view.sort === key || (key === 'uptime' && this.view.sort === 'started_at');
    // started_at desc (newest first) is uptime ascending.
    let dir = '';
    if (this.view.sort === key) dir = this.view.order;
    else if (key === 'uptime' && this.view.sort === 'started_at') dir = this.view.order === 'desc' ? 'asc' : 'desc';
    return h('button', { type: 'button', class: 'sort' + (active ? ' sort-active' : ''), testid: 'sort-' + key, title: title || `Sort by ${label}`,
      dataset: { sort: key, dir }, onclick: () => this.onSort(key) },
    label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, dir === 'asc' ? '▲' : dir === 'desc' ? '▼' : ''));
  }

  onSort(key) {
    let order;
    if (this.view.sort === key) order = this.view.order === 'asc' ? 'desc' : 'asc';
    else order = descFirst.has(key) ? 'desc' : 'asc';
    rememberSort(key, order);
    this.setView({ sort: key, order });
  }

  renderHead() {
    const tr = h('tr', { 'aria-rowindex': '1' });
    for (const c of this.columns()) {
      const th = h('th', { class: c.cls || '', scope: 'col' });
      if (c.key === 'sel') {
        this.selAll = h('input', { type: 'checkbox', 'aria-label': 'Select all shown rows', title: 'Select the rows around what is on screen', testid: 'select-all', onchange: () => this.onSelectAll() });
        th.append(this.selAll);
      } else if (c.key === 'rate') {
        th.append(h('span', { class: 'th-label' }, 'Rate'), ' ',
          this.sortButton('output_bps', '↓', 'Sort by current download rate'), ' / ',
          this.sortButton('input_bps', '↑', 'Sort by current upload rate'));
        const sortKey = this.view.sort === 'output_bps' || this.view.sort === 'input_bps';
        if (sortKey) th.setAttribute('aria-sort', this.view.order === 'asc' ? 'ascending' : 'descending');
      } else if (c.sort) {
        th.append(this.sortButton(c.sort, c.label));
        if (this.view.sort === c.sort) th.setAttribute('aria-sort', this.view.order === 'asc' ? 'ascending' : 'descending');
      } else {
        th.append(c.label || '');
      }
      tr.append(th);
    }
    clear(this.thead).append(tr);
    this.ncols = this.columns().length;
    for (const pad of [this.topPad, this.botPad]) if (pad) pad.td.colSpan = this.ncols;
    this.syncSelection();
  }

  messageRow(text) {
    return h('tr', { class: 'empty-row', testid: 'empty-row' }, h('td', { colspan: this.ncols || 12 }, text));
  }

  // --- live data --------------------------------------------------------

  onSnapshot(msg) {
    const now = Date.now();
    const st = parseTime(msg.server_time);
    if (st !== null) this.offset = st - now;
    this.last = msg;
    this.total = msg.total || 0;
    this.renderCards(msg);
    this.renderRows(msg, now - this.viewChangedAt > 1500);
    this.routerBtn.disabled = this.total === 0;
    // Nothing to disconnect: the router-wide button would only open a
    // dialog that can do nothing.
    this.routerBtn.title = this.total === 0 ? 'No open sessions on this router' : '';
    setText(this.updated, st !== null ? `Updated ${fmtDateTime(st).slice(11)}` : '');
    this.measure();
    this.updateWindow();
  }

  // --- selection and actions ---------------------------------------------

  syncSelection() {
    if (!this.canControl) return;
    const n = this.selected.size;
    this.bulkBtn.disabled = n === 0;
    setText(this.bulkBtn, n ? `Disconnect selected (${n})` : 'Disconnect selected');
    if (this.selAll && this.rows) {
      let shown = 0;
      for (const id of this.rows.keys()) if (this.selected.has(id)) shown++;
      const total = this.rows.size;
      this.selAll.checked = total > 0 && shown === total;
      this.selAll.indeterminate = shown > 0 && shown < total;
    }
    if (this.rows) for (const row of this.rows.values()) row.tr.classList.toggle('row-selected', this.selected.has(row.s.id));
  }

  onSelectAll() {
    const on = this.selAll.checked;
    for (const row of this.rows.values()) {
      if (on) this.selected.set(row.s.id, row.s);
      else this.selected.delete(row.s.id);
      if (row.c.sel) row.c.sel.checked = on;
    }
    this.syncSelection();
  }

  markPending(ids) {
    for (const id of ids) {
      this.pending.add(id);
      const row = this.rows.get(id);
      if (row) row.tr.classList.add('row-pending');
    }
  }

  async onDisconnect(row) {
    const s = row.s;
    const r = await disconnectOne(s);
    if (r && r.ok) this.markPending([s.id]);
  }

  async onDisconnectSelected() {
    const list = [...this.selected.values()];
    if (!list.length) return;
    const r = await disconnectSelected(list);
    if (r && r.results) {
      this.markPending(r.results.filter((x) => x.ok).map((x) => x.id));
      for (const x of r.results) if (x.ok) this.selected.delete(x.id);
      this.syncSelection();
    }
  }

  async onDisconnectRouter() {
    const router = this.view.router;
    if (!router) return;
    const count = this.view.q ? null : (this.last ? this.last.total : null);
    const r = await disconnectRouter(router, count);
    if (r && r.results) this.markPending(r.results.filter((x) => x.ok).map((x) => x.id));
  }
}

// The class is long: its scrolling window (sessionwindow.js) and its rows
// and cards (sessionrows.js) are methods kept in modules of their own.
Object.assign(SessionsPage.prototype, windowMethods, rowMethods);

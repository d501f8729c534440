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
import { fmtInt, fmtBytes, fmtRate, fmtUptime, parseTime, fmtDateTime } from './format.js';
import { disconnectOne, changeSpeed, disconnectSelected, disconnectRouter } from './actions.js';

// The heaviest current downloaders first: what an operator opens the page
// for. Newest first put brand-new 0 B sessions on top.
export const defaultView = { router: '', q: '', sort: 'output_bps', order: 'desc' };
const sortStoreKey = 'nettportal.sessions.sort';
// The window of rows the page asks for: what is on screen plus MARGIN rows
// each side, rounded out to CHUNK so small scrolls keep the subscription
// (and the server's shared query) unchanged.
const MARGIN = 30;
const CHUNK = 25;
const MAX_WINDOW = 500; // a very tall screen; the store allows 1000
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

  padRow(testid) {
    const td = h('td', { colspan: 12 });
    const tr = h('tr', { class: 'pad-row', testid, 'aria-hidden': 'true' }, td);
    tr.hidden = true;
    return { tr, td, px: 0 };
  }

  setPad(pad, px) {
    px = Math.max(0, Math.round(px));
    if (pad.px === px) return;
    pad.px = px;
    pad.td.style.height = px + 'px';
    pad.tr.hidden = px === 0;
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

  // --- scrolling ----------------------------------------------------------

  // boxed reports whether the table scrolls in its own box (wide screens)
  // rather than with the page (phones).
  boxed() {
    return getComputedStyle(this.wrap).maxHeight !== 'none';
  }

  // viewport is the band of the screen rows can be seen in, in client
  // coordinates.
  viewport() {
    if (this.boxed()) {
      const b = this.wrap.getBoundingClientRect();
      return { top: b.top + this.thead.offsetHeight, bottom: b.bottom };
    }
    return { top: 0, bottom: window.innerHeight };
  }

  visibleRows() {
    const v = this.viewport();
    return Math.ceil(Math.max(0, v.bottom - v.top) / this.rowH);
  }

  // firstRowTop is where row 0 is (or would be) on screen.
  firstRowTop() {
    return this.tbody.getBoundingClientRect().top;
  }

  // wantWindow is the window to subscribe to for rows first..first+n.
  wantWindow(first, n) {
    const offset = Math.max(0, Math.floor((first - MARGIN) / CHUNK) * CHUNK);
    const end = Math.ceil((first + n + MARGIN) / CHUNK) * CHUNK;
    return { offset, limit: Math.min(MAX_WINDOW, Math.max(CHUNK, end - offset)) };
  }

  // updateWindow works out which rows are on screen, says so, and
  // subscribes to the window around them when that changed.
  updateWindow() {
    const v = this.viewport();
    const top = this.firstRowTop();
    let first = Math.floor((v.top - top) / this.rowH);
    let last = Math.ceil((v.bottom - top) / this.rowH);
    const total = this.total;
    first = Math.max(0, Math.min(first, total - 1));
    last = Math.max(first, Math.min(last, total));
    this.visible = { first, last };
    setText(this.pageInfo, total === 0 ? '0 of 0' : `${fmtInt(first + 1)}–${fmtInt(last)} of ${fmtInt(total)}`);
    this.topBtn.disabled = first === 0;
    this.endBtn.disabled = last >= total;
    const w = this.wantWindow(first, last - first);
    if (w.offset !== this.win.offset || w.limit !== this.win.limit) {
      this.win = w;
      this.app.live.subscribe(this.liveView());
    }
  }

  scrollToTop() {
    if (!this.wrap) return;
    if (this.boxed()) this.wrap.scrollTop = 0;
    else if (this.table.getBoundingClientRect().top < 0) this.table.scrollIntoView({ block: 'start' });
  }

  scrollToEnd() {
    if (this.boxed()) this.wrap.scrollTop = this.wrap.scrollHeight;
    else window.scrollTo(0, document.documentElement.scrollHeight);
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

  renderCards(msg) {
    const s = msg.stats || {};
    const filtered = this.view.router || this.view.q;
    const scope = filtered ? 'matching the filter' : 'all routers';
    setText(this.cards.sessions.value, fmtInt(s.sessions ?? msg.total ?? 0));
    setText(this.cards.sessions.sub, scope);
    setText(this.cards.download.value, fmtBytes(s.output_octets ?? 0));
    setText(this.cards.download.sub, 'to subscribers, open sessions');
    setText(this.cards.upload.value, fmtBytes(s.input_octets ?? 0));
    setText(this.cards.upload.sub, 'from subscribers, open sessions');
    setText(this.cards.combined.value, fmtBytes((s.output_octets ?? 0) + (s.input_octets ?? 0)));
    setText(this.cards.combined.sub, 'download + upload');
    let down = s.output_bps;
    let up = s.input_bps;
    let rateScope = scope;
    if (down === undefined || up === undefined) {
      // Older servers give no rate totals: sum what is on screen.
      down = 0;
      up = 0;
      for (const x of msg.sessions || []) {
        down += x.output_bps || 0;
        up += x.input_bps || 0;
      }
      rateScope = 'sessions on this page';
    }
    if (!this.cards.rate.down) {
      this.cards.rate.down = h('span', { class: 'down' });
      this.cards.rate.up = h('span', { class: 'up' });
      clear(this.cards.rate.value).append('↓ ', this.cards.rate.down, h('span', { class: 'gap' }), '↑ ', this.cards.rate.up);
      this.cards.rate.value.classList.add('card-value-rate');
    }
    setText(this.cards.rate.down, fmtRate(down));
    setText(this.cards.rate.up, fmtRate(up));
    setText(this.cards.rate.sub, rateScope);
  }

  // calm reports that the operator is pointing at or working in the table:
  // rows then keep their places (new ones go to the end) so the row under
  // the pointer or focus never moves; the order catches up afterwards.
  calm() {
    return this.tbody.matches(':hover') || this.tbody.contains(document.activeElement) ||
      !!document.querySelector('dialog[open]');
  }

  renderRows(msg, settled) {
    const sessions = msg.sessions || [];
    const offset = Number.isInteger(msg.offset) ? msg.offset : this.win.offset;
    const block = offset + '/' + (Number.isInteger(msg.limit) ? msg.limit : this.win.limit);
    // The same window as the rows on screen: an update. Another one (the
    // operator scrolled): rows are placed where they are in the list, and
    // rows that came into the window are not news.
    const sameBlock = block === this.block;
    const seen = new Set();
    const empty = this.tbody.querySelector('.empty-row');
    if (empty) empty.remove();
    const calm = sameBlock && this.calm();
    let prev = this.topPad.tr;
    for (const s of sessions) {
      seen.add(s.id);
      let row = this.rows.get(s.id);
      // Calm, the rows on screen stay; a new one joins at the end only
      // while the DOM holds fewer rows than the window (a session that
      // started), not in place of a row that moved elsewhere in the order.
      if (!row && calm && this.rows.size >= sessions.length) continue;
      if (!row) {
        row = this.createRow(s);
        this.rows.set(s.id, row);
        if (settled && sameBlock) {
          row.tr.classList.add('row-new');
          setTimeout(() => row.tr.classList.remove('row-new'), 4000);
        }
      }
      this.updateRow(row, s);
      if (this.selected.has(s.id)) this.selected.set(s.id, s);
      if (calm) {
        if (!row.tr.parentNode) this.tbody.insertBefore(row.tr, this.botPad.tr);
        continue;
      }
      // Keep DOM order equal to the server's order, moving only what moved.
      const want = prev.nextSibling;
      if (want !== row.tr) this.tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    this.tbody.classList.toggle('tbody-calm', calm);
    for (const [id, row] of this.rows) {
      // Calm, a row that left the window stays where it is (it may only
      // have moved in the order) unless this operator disconnected it.
      if (!seen.has(id) && (!calm || this.pending.has(id))) {
        row.tr.remove();
        this.rows.delete(id);
        this.pending.delete(id);
      }
    }
    this.start = offset;
    this.block = block;
    this.table.setAttribute('aria-rowcount', String(this.total + 1));
    let i = offset + 2; // the header is row 1
    for (let tr = this.topPad.tr.nextSibling; tr && tr !== this.botPad.tr; tr = tr.nextSibling, i++) {
      if (tr.getAttribute('aria-rowindex') !== String(i)) tr.setAttribute('aria-rowindex', String(i));
    }
    this.placePads();
    if (this.total === 0) {
      this.tbody.append(this.messageRow(this.view.q || this.view.router ? 'No open sessions match this filter.' : 'No open sessions.'));
    }
    this.syncSelection();
  }

  // placePads sizes the spacers for the rows before and after the DOM's.
  placePads() {
    const n = this.rows.size;
    this.setPad(this.topPad, this.start * this.rowH);
    this.setPad(this.botPad, Math.max(0, this.total - this.start - n) * this.rowH);
  }

  // measure takes the row height from the rows rendered (cards on a phone
  // are taller than table rows), so spacers and row positions agree.
  measure() {
    const first = this.topPad.tr.nextSibling;
    const last = this.botPad.tr.previousSibling;
    if (!first || first === this.botPad.tr || !this.rows.size) return;
    const hgt = (last.getBoundingClientRect().bottom - first.getBoundingClientRect().top) / this.rows.size;
    if (hgt > 8 && Math.abs(hgt - this.rowH) > 0.5) {
      this.rowH = hgt;
      this.placePads();
    }
  }

  createRow(s) {
    const c = {};
    const tr = h('tr', { testid: 'session-row', dataset: { id: s.id, username: s.username } });
    if (this.canControl) {
      c.sel = h('input', { type: 'checkbox', 'aria-label': `Select ${s.username}`, testid: 'select-row',
        onchange: () => { if (c.sel.checked) this.selected.set(row.s.id, row.s); else this.selected.delete(row.s.id); this.syncSelection(); } });
      tr.append(h('td', { class: 'col-sel' }, c.sel));
    }
    c.userLink = h('a', { href: `#/session/${encodeURIComponent(s.id)}`, class: 'user-link', testid: 'session-link' });
    c.usageLink = h('a', { class: 'usage-link', testid: 'row-usage-link', title: 'Usage of this user', 'aria-label': `Usage of ${s.username}` }, 'usage');
    tr.append(h('td', { class: 'col-user' }, c.userLink, ' ', c.usageLink));
    c.customer = h('td', { class: 'col-customer', testid: 'cell-customer' });
    c.router = h('td', { class: 'col-router', testid: 'cell-router' });
    c.ip = h('td', { class: 'mono', testid: 'cell-ip' });
    c.profile = h('td', { testid: 'cell-profile' });
    c.uptime = h('td', { class: 'num mono', testid: 'cell-uptime' });
    c.download = h('td', { class: 'num', testid: 'cell-download' });
    c.upload = h('td', { class: 'num', testid: 'cell-upload' });
    c.rateDown = h('span', { class: 'rate rate-down' });
    c.rateUp = h('span', { class: 'rate rate-up' });
    c.rateBar = h('span', { class: 'rate-bar', 'aria-hidden': 'true' });
    tr.append(c.customer, c.router, c.ip, c.profile, c.uptime, c.download, c.upload,
      h('td', { class: 'num col-rate', testid: 'cell-rate' }, h('span', { class: 'rate-wrap' }, c.rateBar, c.rateDown, c.rateUp)));
    if (this.canControl) {
      c.speed = h('button', { type: 'button', class: 'btn btn-small', testid: 'change-speed', title: 'Change speed (CoA)', onclick: () => changeSpeed(row.s) }, 'Speed');
      c.disc = h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', testid: 'disconnect', onclick: () => this.onDisconnect(row) }, 'Disconnect');
      tr.append(h('td', { class: 'col-actions' }, c.speed, c.disc));
    }
    const row = { tr, c, s };
    return row;
  }

  updateRow(row, s) {
    const c = row.c;
    row.s = s;
    row.started = parseTime(s.started_at);
    row.uptimeAt = Date.now();
    setText(c.userLink, s.username || '(no username)');
    const usageHref = '#/usage?q=' + encodeURIComponent(s.username || '') + '&user=' + encodeURIComponent(s.username || '');
    if (c.usageLink.getAttribute('href') !== usageHref) c.usageLink.setAttribute('href', usageHref);
    if (row.tr.dataset.username !== s.username) row.tr.dataset.username = s.username;
    setText(c.customer, s.customer || '—');
    c.customer.classList.toggle('muted', !s.customer);
    setText(c.router, s.router || '—');
    setText(c.ip, s.ip || '—');
    setText(c.profile, s.profile || '—');
    c.profile.classList.toggle('muted', !s.profile);
    setText(c.uptime, fmtUptime(this.uptimeOf(row)));
    setText(c.download, fmtBytes(s.output_octets));
    setText(c.upload, fmtBytes(s.input_octets));
    setText(c.rateDown, '↓ ' + fmtRate(s.output_bps || 0));
    setText(c.rateUp, '↑ ' + fmtRate(s.input_bps || 0));
    // A log-scale bar: 10 kbps .. 1 Gbps spans the cell.
    const bps = s.output_bps || 0;
    const frac = bps <= 1e4 ? 0 : Math.min(1, Math.log10(bps / 1e4) / 5);
    const w = Math.round(frac * 100) + '%';
    if (c.rateBar.style.width !== w) c.rateBar.style.width = w;
    c.rateBar.classList.toggle('rate-heavy', bps >= 20e6);
    if (c.sel) c.sel.checked = this.selected.has(s.id);
    row.tr.classList.toggle('row-pending', this.pending.has(s.id));
    row.tr.classList.toggle('row-selected', this.selected.has(s.id));
  }

  uptimeOf(row) {
    if (row.started !== null) return (Date.now() + this.offset - row.started) / 1000;
    return (row.s.uptime_seconds || 0) + (Date.now() - row.uptimeAt) / 1000;
  }

  tickUptime() {
    for (const row of this.rows.values()) setText(row.c.uptime, fmtUptime(this.uptimeOf(row)));
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

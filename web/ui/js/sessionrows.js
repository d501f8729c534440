// The Active Sessions page's totals cards and table rows: built once per
// session and updated in place from each snapshot. Methods of SessionsPage
// (sessions.js), kept here to keep that module readable.
import { h, clear, setText } from './dom.js';
import { fmtInt, fmtBytes, fmtRate, fmtUptime, parseTime } from './format.js';
import { changeSpeed } from './actions.js';

export const rowMethods = {
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
  },

  // calm reports that the operator is pointing at or working in the table:
  // rows then keep their places (new ones go to the end) so the row under
  // the pointer or focus never moves; the order catches up afterwards.
  calm() {
    return this.tbody.matches(':hover') || this.tbody.contains(document.activeElement) ||
      !!document.querySelector('dialog[open]');
  },

  renderRows(msg, settled) {
    const sessions = msg.sessions || [];
    const offset = Number.isInteger(msg.offset) ? msg.offset : this.win.offset;
    const limit = Number.isInteger(msg.limit) ? msg.limit : this.win.limit;
    const block = offset + '/' + limit;
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
    // Calm, a row that left the window stays where it is (it may only
    // have moved in the order) unless this operator disconnected it, and
    // only while the window has room for it: a list that shrank loses the
    // rows it no longer has, pointer or not. (An old view's snapshot still
    // on its way after a filter change is rendered as the new view's
    // first rows, and kept the old router's rows beside the new ones.)
    let room = Math.max(0, Math.min(limit, this.total - offset));
    for (const id of this.rows.keys()) if (seen.has(id)) room--;
    for (const [id, row] of this.rows) {
      if (seen.has(id)) continue;
      if (calm && !this.pending.has(id) && room > 0) {
        room--;
      } else {
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
  },

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
  },

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
  },

  uptimeOf(row) {
    if (row.started !== null) return (Date.now() + this.offset - row.started) / 1000;
    return (row.s.uptime_seconds || 0) + (Date.now() - row.uptimeAt) / 1000;
  },

  tickUptime() {
    for (const row of this.rows.values()) setText(row.c.uptime, fmtUptime(this.uptimeOf(row)));
  },
};

// The Active Sessions table's scrolling window: which rows are on screen,
// the spacers that stand for the rows not in the DOM, and the window of
// the server's list the page subscribes to. Methods of SessionsPage
// (sessions.js), kept here to keep that module readable.
import { h, setText } from './dom.js';
import { fmtInt } from './format.js';

// The window of rows the page asks for: what is on screen plus MARGIN rows
// each side, rounded out to CHUNK so small scrolls keep the subscription
// (and the server's shared query) unchanged.
const MARGIN = 30;
const CHUNK = 25;
const MAX_WINDOW = 500; // a very tall screen; the store allows 1000

export const windowMethods = {
  padRow(testid) {
    const td = h('td', { colspan: 12 });
    const tr = h('tr', { class: 'pad-row', testid, 'aria-hidden': 'true' }, td);
    tr.hidden = true;
    return { tr, td, px: 0 };
  },

  setPad(pad, px) {
    px = Math.max(0, Math.round(px));
    if (pad.px === px) return;
    pad.px = px;
    pad.td.style.height = px + 'px';
    pad.tr.hidden = px === 0;
  },

  // boxed reports whether the table scrolls in its own box (wide screens)
  // rather than with the page (phones).
  boxed() {
    return getComputedStyle(this.wrap).maxHeight !== 'none';
  },

  // viewport is the band of the screen rows can be seen in, in client
  // coordinates.
  viewport() {
    if (this.boxed()) {
      const b = this.wrap.getBoundingClientRect();
      return { top: b.top + this.thead.offsetHeight, bottom: b.bottom };
    }
    return { top: 0, bottom: window.innerHeight };
  },

  visibleRows() {
    const v = this.viewport();
    return Math.ceil(Math.max(0, v.bottom - v.top) / this.rowH);
  },

  // firstRowTop is where row 0 is (or would be) on screen.
  firstRowTop() {
    return this.tbody.getBoundingClientRect().top;
  },

  // wantWindow is the window to subscribe to for rows first..first+n.
  wantWindow(first, n) {
    const offset = Math.max(0, Math.floor((first - MARGIN) / CHUNK) * CHUNK);
    const end = Math.ceil((first + n + MARGIN) / CHUNK) * CHUNK;
    return { offset, limit: Math.min(MAX_WINDOW, Math.max(CHUNK, end - offset)) };
  },

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
  },

  scrollToTop() {
    if (!this.wrap) return;
    if (this.boxed()) this.wrap.scrollTop = 0;
    else if (this.table.getBoundingClientRect().top < 0) this.table.scrollIntoView({ block: 'start' });
  },

  scrollToEnd() {
    if (this.boxed()) this.wrap.scrollTop = this.wrap.scrollHeight;
    else window.scrollTo(0, document.documentElement.scrollHeight);
  },

  // placePads sizes the spacers for the rows before and after the DOM's.
  placePads() {
    const n = this.rows.size;
    this.setPad(this.topPad, this.start * this.rowH);
    this.setPad(this.botPad, Math.max(0, this.total - this.start - n) * this.rowH);
  },

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
  },
};

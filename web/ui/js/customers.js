// Customers: the names behind PPPoE usernames; add/link and CSV import.
import { h, clear, debounce } from './dom.js';
import { api, listOf, query } from './api.js';
import { fmtInt } from './format.js';
import { toast, openDialog, emptyRow, busy } from './ui.js';

export class CustomersPage {
  constructor(app, params) {
    this.app = app;
    this.canEdit = app.role !== 'viewer';
    this.canImport = app.role === 'admin';
    this.q = params.get('q') || '';
    this.tbody = h('tbody', { testid: 'customer-rows' });
    this.count = h('span', { class: 'muted small' });
    const reload = debounce(() => {
      this.q = this.search.value.trim();
      history.replaceState(null, '', '#/customers' + query({ q: this.q }));
      this.load();
    }, 250);
    this.search = h('input', { type: 'search', id: 'cust-search', testid: 'customer-search', value: this.q, placeholder: 'Name, username, phone…', oninput: reload });
    this.file = h('input', { type: 'file', id: 'cust-csv', accept: '.csv,text/csv', testid: 'import-file' });
    this.importBtn = h('button', { type: 'button', class: 'btn', testid: 'import-csv', onclick: () => this.importCSV() }, 'Import CSV');
    this.importResult = h('div', { class: 'import-result', testid: 'import-result', 'aria-live': 'polite' });
    this.el = h('div', { class: 'page' },
      h('div', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Customers'), h('span', { class: 'spacer' }),
        this.canEdit ? h('button', { type: 'button', class: 'btn btn-primary', testid: 'add-customer', onclick: () => this.add() }, 'Add / link customer') : null),
      h('div', { class: 'panel' },
        h('div', { class: 'toolbar' },
          h('div', { class: 'field field-grow' }, h('label', { for: 'cust-search' }, 'Search'), this.search),
          this.canImport ? h('div', { class: 'field' }, h('label', { for: 'cust-csv' }, 'CSV from billing (name,username,profile,phone,address)'),
            h('div', { class: 'inline' }, this.file, this.importBtn)) : null),
        this.importResult,
        h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'customers-table' },
          h('thead', {}, h('tr', {}, ['Name', 'PPPoE username', 'Profile', 'Phone', 'Address'].map((c) => h('th', {}, c)))), this.tbody)),
        h('div', { class: 'pager' }, this.count)));
    this.tbody.append(emptyRow(5, 'Loading…'));
    this.load();
  }

  destroy() {}

  async load() {
    let list;
    try {
      list = await api('GET', '/api/customers' + query({ q: this.q }));
    } catch (e) {
      clear(this.tbody).append(emptyRow(5, `Could not load customers: ${e.message}`));
      return;
    }
    const total = list && typeof list.total === 'number' ? list.total : null;
    list = listOf(list, 'customers');
    clear(this.tbody);
    if (!list.length) this.tbody.append(emptyRow(5, this.q ? 'No customer matches.' : 'No customers yet. Add one or import a CSV from your billing system.'));
    for (const c of list) {
      this.tbody.append(h('tr', { testid: 'customer-row', dataset: { username: c.username || '' } },
        h('td', {}, c.name || '—'),
        h('td', { class: 'mono' }, c.username ? h('a', { href: '#/sessions?q=' + encodeURIComponent(c.username), title: 'Show sessions' }, c.username) : '—'),
        h('td', {}, c.profile || '—'), h('td', {}, c.phone || '—'), h('td', {}, c.address || '—')));
    }
    const n = total ?? list.length;
    this.count.textContent = `${total !== null && total > list.length ? `${fmtInt(list.length)} shown of ` : ''}${fmtInt(n)} customer${n === 1 ? '' : 's'}`;
  }

  async add() {
    const f = {};
    const field = (name, label, attrs = {}) => {
      const id = 'cf-' + name;
      f[name] = h('input', { id, name, autocomplete: 'off', ...attrs });
      return h('div', { class: 'form-row' }, h('label', { for: id }, label), f[name]);
    };
    const errBox = h('div', { class: 'field-error', role: 'alert' });
    const ok = await openDialog({
      title: 'Add or link customer',
      testid: 'customer-dialog',
      body: h('div', { class: 'form-grid' },
        h('p', { class: 'muted small' }, 'An existing username is updated (linked) with these details.'),
        field('name', 'Name', { required: true }), field('username', 'PPPoE username', { required: true }),
        field('profile', 'Profile / plan'), field('phone', 'Phone', { type: 'tel' }), field('address', 'Address'), errBox),
      actions: [
        ({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        ({ done, form }) => h('button', { type: 'submit', class: 'btn btn-primary', testid: 'confirm', onclick: async () => {
          if (!form.reportValidity()) return;
          const body = {};
          for (const k of Object.keys(f)) body[k] = f[k].value.trim();
          try {
            await api('POST', '/api/customers', body);
            done(true);
          } catch (e) {
            errBox.textContent = e.message;
          }
        } }, 'Save'),
      ],
      onOpen: () => f.name.focus(),
    });
    if (ok) {
      toast('Customer saved', 'ok');
      this.load();
    }
  }

  async importCSV() {
    const file = this.file.files && this.file.files[0];
    if (!file) {
      toast('Choose a CSV file first', 'error');
      return;
    }
    await busy(this.importBtn, async () => {
      try {
        const text = await file.text();
        const r = await api('POST', '/api/customers/import', text, { raw: true, contentType: 'text/csv' });
        const errs = (r && r.errors) || [];
        clear(this.importResult).append(
          h('div', { class: errs.length ? 'banner banner-warn' : 'banner banner-ok' },
            `Imported ${file.name}: ${fmtInt(r.created || 0)} created, ${fmtInt(r.updated || 0)} updated, ${fmtInt(errs.length)} errors.`,
            errs.length ? h('ul', { class: 'small' }, errs.slice(0, 20).map((e) => h('li', {}, typeof e === 'string' ? e : e && e.line ? `line ${e.line}: ${e.error}` : JSON.stringify(e)))) : null));
        this.load();
      } catch (e) {
        clear(this.importResult).append(h('div', { class: 'banner banner-error' }, `Import failed: ${e.message}`));
      }
    });
  }
}

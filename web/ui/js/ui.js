// Toasts and <dialog>-based confirmations (keyboard usable: Esc cancels,
// focus moves into the dialog and back to where it was).
import { h, clear } from './dom.js';

export function toast(message, kind = 'info', timeout = 8000) {
  const box = document.getElementById('toasts');
  const close = h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', testid: 'toast', dataset: { kind } },
    h('span', { class: 'toast-msg', testid: 'result' }, message), close);
  close.addEventListener('click', () => el.remove());
  box.appendChild(el);
  if (timeout) setTimeout(() => el.remove(), kind === 'error' ? timeout * 2 : timeout);
  return el;
}

// openDialog shows a modal built from parts; resolves with the value passed
// to done(), or null on cancel/Esc.
export function openDialog({ title, body, actions, wide, testid, onOpen }) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: wide ? 'dlg dlg-wide' : 'dlg', testid: testid || 'dialog', 'aria-labelledby': 'dlg-title' });
    const prevFocus = document.activeElement;
    let settled = false;
    const done = (v) => {
      if (settled) return;
      settled = true;
      dlg.close();
      dlg.remove();
      if (prevFocus && prevFocus.focus && document.contains(prevFocus)) prevFocus.focus();
      resolve(v);
    };
    const head = h('header', { class: 'dlg-head' }, h('h2', { id: 'dlg-title' }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: () => done(null) }, '×'));
    const form = h('form', { method: 'dialog', class: 'dlg-form' });
    const content = h('div', { class: 'dlg-body' });
    const foot = h('footer', { class: 'dlg-foot' });
    form.append(content, foot);
    dlg.append(head, form);
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(null);
    });
    form.addEventListener('submit', (e) => e.preventDefault());
    const ctx = { done, dlg, form, content, foot };
    const bodyNode = typeof body === 'function' ? body(ctx) : body;
    if (bodyNode) content.append(bodyNode);
    for (const a of actions || []) foot.append(typeof a === 'function' ? a(ctx) : a);
    document.body.appendChild(dlg);
    dlg.showModal();
    if (onOpen) onOpen(ctx);
  });
}

// confirmDialog: a yes/no question. danger styles the confirm button red.
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  return openDialog({
    title,
    testid: 'confirm-dialog',
    body: h('div', {}, message),
    actions: [
      ({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, 'Cancel'),
      ({ done }) => {
        const b = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary', testid: 'confirm', onclick: () => done(true) }, confirmLabel);
        return b;
      },
    ],
    onOpen: ({ foot }) => foot.querySelector('[data-testid="confirm"]').focus(),
  }).then((v) => v === true);
}

// typedConfirmDialog asks the operator to type a word (a router name)
// before the confirm button unlocks.
export function typedConfirmDialog({ title, message, expect, confirmLabel }) {
  let input;
  let btn;
  return openDialog({
    title,
    testid: 'confirm-dialog',
    body: () => {
      input = h('input', { type: 'text', id: 'typed-confirm', autocomplete: 'off', spellcheck: 'false', testid: 'confirm-input' });
      input.addEventListener('input', () => {
        btn.disabled = input.value.trim() !== expect;
      });
      return h('div', {}, message,
        h('label', { for: 'typed-confirm', class: 'field-label' }, 'Type ', h('strong', { class: 'mono' }, expect), ' to confirm'),
        input);
    },
    actions: [
      ({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, 'Cancel'),
      ({ done }) => {
        btn = h('button', { type: 'submit', class: 'btn btn-danger', testid: 'confirm', disabled: true,
          onclick: () => { if (input.value.trim() === expect) done(true); } }, confirmLabel);
        return btn;
      },
    ],
    onOpen: () => input.focus(),
  }).then((v) => v === true);
}

// promptDialog asks for one value; validate returns an error text or ''.
export function promptDialog({ title, message, label, placeholder, value = '', hint, validate, confirmLabel = 'OK' }) {
  let input;
  let err;
  return openDialog({
    title,
    testid: 'prompt-dialog',
    body: () => {
      input = h('input', { type: 'text', id: 'prompt-input', value, placeholder, autocomplete: 'off', spellcheck: 'false', testid: 'prompt-input' });
      err = h('div', { class: 'field-error', role: 'alert' });
      return h('div', {}, message ? h('p', {}, message) : null,
        h('label', { for: 'prompt-input', class: 'field-label' }, label), input,
        hint ? h('div', { class: 'field-hint' }, hint) : null, err);
    },
    actions: [
      ({ done }) => h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
      ({ done }) => h('button', { type: 'submit', class: 'btn btn-primary', testid: 'confirm', onclick: () => {
        const v = input.value.trim();
        const e = validate ? validate(v) : '';
        if (e) {
          err.textContent = e;
          input.focus();
          return;
        }
        done(v);
      } }, confirmLabel),
    ],
    onOpen: () => { input.focus(); input.select(); },
  });
}

// busy disables a button while a promise runs.
export async function busy(btn, fn) {
  const was = btn.disabled;
  btn.disabled = true;
  btn.classList.add('is-busy');
  try {
    return await fn();
  } finally {
    btn.disabled = was;
    btn.classList.remove('is-busy');
  }
}

export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind}` }, text);
}

export function emptyRow(cols, text) {
  return h('tr', { class: 'empty-row' }, h('td', { colspan: cols }, text));
}

export { clear };

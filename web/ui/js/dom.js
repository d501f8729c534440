// h builds elements: h('td', {class: 'num', dataset: {id: 1}}, 'text', child).
// Never takes HTML strings, so nothing from the server is parsed as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'testid') el.setAttribute('data-testid', v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (v === true) el.setAttribute(k, '');
      else if (URL_ATTRS.has(k.toLowerCase()) && !safeURL(String(v))) console.warn('refused ' + k + ' with a scheme other than http, https or mailto');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

// URL_ATTRS are attributes a URL goes into; a javascript: (or data:, or
// any other scheme's) URL there would run or show whatever a hostile
// RADIUS string or customer field put in it.
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'poster', 'srcset', 'background']);

// safeURL allows relative URLs, fragments and http, https and mailto. The
// browser's own parser decides the scheme, so tricks with whitespace,
// case or entities resolve exactly as the browser would follow them.
export function safeURL(v) {
  let u;
  try {
    u = new URL(v, document.baseURI);
  } catch {
    return false;
  }
  return u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:';
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// setText changes a node's text only when it differs, so live updates do
// not disturb selection or cause needless layout.
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

export function debounce(fn, ms) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

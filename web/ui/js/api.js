// JSON API client: same-origin cookie session, CSRF header on every change.

let csrfToken = '';
let onUnauthorized = () => {};

export function setCSRF(token) {
  csrfToken = token || '';
}

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export class APIError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// api(method, path, body, {raw, contentType, quiet401}) returns the parsed
// JSON answer or throws APIError with the server's {"error"} message.
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    if (opts.raw) {
      headers['Content-Type'] = opts.contentType || 'text/plain';
      init.body = body;
    } else {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, 'Server unreachable: ' + e.message);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    let msg = (data && data.error) || text.trim() || resp.statusText || `HTTP ${resp.status}`;
    if (resp.status === 403 && !(data && data.error)) msg = 'Not allowed for your role';
    const err = new APIError(resp.status, msg, data);
    err.retryAfter = resp.headers.get('Retry-After');
    if (resp.status === 401 && !opts.quiet401) onUnauthorized();
    throw err;
  }
  return data;
}

// listOf accepts a bare array or an object wrapping one under key
// ({"routers": [...]}), so the page reads either form of a list.
export function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  return [];
}

export function query(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s ? '?' + s : '';
}

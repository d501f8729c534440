// NettPortal sessions: boot, login, header, hash routing.
import { h, clear, setText } from './dom.js';
import { api, listOf, setCSRF, setUnauthorizedHandler } from './api.js';
import { Live } from './live.js';
import { toast } from './ui.js';
import { SessionsPage, viewFromParams, liveViewFor } from './sessions.js';
import { DetailPage } from './detail.js';
import { RoutersPage } from './routers.js';
import { CustomersPage } from './customers.js';
import { AuditPage } from './audit.js';
import { UsagePage } from './usage.js';
import { OverviewPage } from './overview.js';

const $ = (id) => document.getElementById(id);

const app = {
  user: '',
  role: '',
  live: null,
  page: null,
  pageKind: '',
  lastSessionsHash: '#/sessions',
  routerList: null,
  routerListAt: 0,

  async routers() {
    if (this.routerList && Date.now() - this.routerListAt < 30000) return this.routerList;
    try {
      this.setRouters(await api('GET', '/api/routers'));
    } catch {
      this.routerList = this.routerList || [];
    }
    return this.routerList;
  },
  setRouters(list) {
    this.routerList = listOf(list, 'routers');
    this.routerListAt = Date.now();
  },
  rememberSessionsHash(hash) {
    this.lastSessionsHash = hash;
  },
  sessionsHash() {
    return this.lastSessionsHash;
  },
};

// --- connection indicator ----------------------------------------------

const connText = { live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

function showConn(state) {
  const el = $('conn-status');
  el.dataset.state = state;
  el.className = 'conn conn-' + state;
  setText(el.querySelector('.conn-text'), connText[state] || state);
  el.title = state === 'live' ? 'Receiving live updates' : state === 'reconnecting' ? 'Connection lost; reconnecting' : 'No connection to the server; still retrying';
}

// --- routing -------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts, params: new URLSearchParams(qs || '') };
}

function route() {
  if (!app.role) return;
  const { parts, params } = parseHash();
  // The overview is where an operator starts: how the network is doing,
  // then the sessions behind it.
  let kind = parts[0] || 'overview';
  if (!parts[0]) history.replaceState(null, '', '#/overview');
  if (!['sessions', 'session', 'routers', 'customers', 'audit', 'usage', 'overview'].includes(kind)) kind = 'overview';
  const key = kind === 'session' ? 'session/' + parts[1] : kind;

  if (kind === 'sessions' && app.pageKind === 'sessions') {
    app.page.applyParams(params);
    return;
  }
  if (app.page && app.pageKind === key) return;
  if (app.page) app.page.destroy();
  app.page = null;
  const main = clear($('main'));
  switch (kind) {
    case 'session':
      app.page = new DetailPage(app, parts[1]);
      break;
    case 'routers':
      app.page = new RoutersPage(app);
      break;
    case 'customers':
      app.page = new CustomersPage(app, params);
      break;
    case 'audit':
      app.page = new AuditPage(app, params);
      break;
    case 'usage':
      app.page = new UsagePage(app, params);
      break;
    case 'overview':
      app.page = new OverviewPage(app);
      break;
    default: {
      const page = new SessionsPage(app, params);
      app.page = page;
      app.rememberSessionsHash(location.hash && location.hash.startsWith('#/sessions') ? location.hash : '#/sessions');
      app.live.subscribe(page.liveView());
      if (app.lastSnapshot && sameView(app.lastSnapshotView, page.liveView())) page.onSnapshot(app.lastSnapshot);
    }
  }
  app.pageKind = key;
  main.append(app.page.el);
  setMenu(false);
  for (const a of document.querySelectorAll('.nav a')) {
    const active = a.dataset.nav === (kind === 'session' ? 'sessions' : kind);
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const titles = { sessions: 'Active Sessions', session: 'Session', routers: 'Routers', customers: 'Customers', audit: 'Audit', usage: 'Usage', overview: 'Overview' };
  document.title = `${titles[kind]} · NettPortal`;
}

// setMenu opens or closes the navigation menu of narrow screens.
function setMenu(open) {
  $('menu-btn').setAttribute('aria-expanded', String(open));
  $('topmenu').classList.toggle('open', open);
}

function sameView(a, b) {
  return a && b && JSON.stringify(a) === JSON.stringify(b);
}

// --- login / session -------------------------------------------------------

function showLogin(message) {
  app.role = '';
  if (app.live) app.live.stop();
  if (app.page) app.page.destroy();
  app.page = null;
  app.pageKind = '';
  clear($('main'));
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.textContent = message || '';
  err.hidden = !message;
  document.title = 'Sign in · NettPortal';
  $('login-user').focus();
}

function enter(me) {
  app.user = me.user;
  app.role = me.role;
  setCSRF(me.csrf_token);
  document.body.dataset.role = me.role;
  $('login').hidden = true;
  $('app').hidden = false;
  setText($('user-name'), me.user);
  setText($('user-role'), me.role);
  $('user-role').className = 'role role-' + me.role;
  // The audit is for operators and admins; the API refuses viewers.
  document.querySelector('[data-nav="audit"]').hidden = me.role === 'viewer';
  app.routerList = null;
  if (!app.live) {
    app.live = new Live({
      onState: showConn,
      onSnapshot: (msg) => {
        app.lastSnapshot = msg;
        app.lastSnapshotView = app.live.view;
        if (app.pageKind === 'sessions' && app.page) app.page.onSnapshot(msg);
      },
      onError: (msg) => toast(`Live view: ${msg}`, 'error'),
      checkAuth: async () => {
        try {
          await api('GET', '/api/me', undefined, { quiet401: true });
          return true;
        } catch (e) {
          return e.status !== 401;
        }
      },
      onAuthLost: () => showLogin('Your login expired. Sign in again.'),
    });
  }
  // The live view starts from the URL so the first subscribe is right.
  const { parts, params } = parseHash();
  if (parts[0] === 'sessions') app.live.view = liveViewFor(viewFromParams(params));
  else app.live.view = liveViewFor(viewFromParams(new URLSearchParams()));
  app.live.start();
  route();
}

async function onLogin(e) {
  e.preventDefault();
  const btn = $('login-submit');
  const err = $('login-error');
  err.hidden = true;
  btn.disabled = true;
  try {
    const me = await api('POST', '/api/login', { username: $('login-user').value.trim(), password: $('login-pass').value }, { quiet401: true });
    $('login-pass').value = '';
    enter(me);
  } catch (ex) {
    let msg = ex.message;
    if (ex.status === 401) msg = 'Wrong username or password.';
    else if (ex.status === 429) msg = `Too many login attempts. Wait ${ex.retryAfter ? ex.retryAfter + ' seconds' : 'a minute'} and try again.`;
    else if (ex.status === 0) msg = 'The server does not answer. Check the connection and try again.';
    err.textContent = msg;
    err.hidden = false;
    $('login-pass').select();
  } finally {
    btn.disabled = false;
  }
}

async function onLogout() {
  try {
    await api('POST', '/api/logout');
  } catch {
    // Logged out locally either way.
  }
  showLogin('');
}

async function boot() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('menu-btn').addEventListener('click', () => setMenu($('menu-btn').getAttribute('aria-expanded') !== 'true'));
  window.addEventListener('hashchange', route);
  window.addEventListener('online', () => app.live && app.live.reconnectNow());
  setUnauthorizedHandler(() => {
    if (app.role) showLogin('Your login expired. Sign in again.');
  });
  try {
    const me = await api('GET', '/api/me', undefined, { quiet401: true });
    enter(me);
  } catch (e) {
    showLogin(e.status === 401 || e.status === undefined ? '' : e.message);
  }
}

window.addEventListener('unhandledrejection', (e) => {
  const msg = e.reason && e.reason.message ? e.reason.message : String(e.reason);
  toast('Error: ' + msg, 'error');
});

boot();

// Exposed for debugging from the console and for tests.
window.nettportal = { app, h };

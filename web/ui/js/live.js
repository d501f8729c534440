// Live connection to /ws: subscribes with the current view, reconnects
// with exponential backoff (and jitter), resubscribes after a server
// restart, and reports its state: 'live', 'reconnecting' or 'offline'.
// There is no polling fallback: the page shows it is not live instead.

const MIN_DELAY = 500;
const MAX_DELAY = 15000;
const OFFLINE_AFTER = 20000; // ms without a connection before "Offline"
const STALE_AFTER = 16000; // the server sends a snapshot every ~5 s
// The server closes a socket that subscribes more than 5 times a second
// (bursts of 10); scrolling through all rows subscribes to each window it
// passes, so sends stay under that: the latest view waits for a token.
const SUB_RATE = 3; // per second
const SUB_BURST = 6;

export class Live {
  constructor({ onSnapshot, onHello, onState, onAuthLost, checkAuth, onError }) {
    this.onSnapshot = onSnapshot;
    this.onHello = onHello || (() => {});
    this.onError = onError || (() => {});
    this.onState = onState;
    this.onAuthLost = onAuthLost || (() => {});
    this.checkAuth = checkAuth || (async () => true);
    this.view = null;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.stopped = true;
    this.downSince = null;
    this.lastMessage = 0;
    this.state = '';
    this.tokens = SUB_BURST;
    this.tokensAt = Date.now();
    this.sendTimer = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.downSince = Date.now();
    this.setState('reconnecting');
    this.connect();
    this.watchdog = setInterval(() => this.check(), 1000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.sendTimer);
    this.sendTimer = null;
    clearInterval(this.watchdog);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.setState('offline');
  }

  // subscribe replaces the view; sent now when connected, else on connect.
  subscribe(view) {
    this.view = { ...view };
    this.send();
  }

  send() {
    if (!(this.ws && this.ws.readyState === WebSocket.OPEN && this.view)) return;
    if (this.sendTimer) return; // a send is scheduled; it takes the latest view
    const now = Date.now();
    this.tokens = Math.min(SUB_BURST, this.tokens + ((now - this.tokensAt) / 1000) * SUB_RATE);
    this.tokensAt = now;
    if (this.tokens < 1) {
      const wait = Math.ceil(((1 - this.tokens) / SUB_RATE) * 1000);
      this.sendTimer = setTimeout(() => { this.sendTimer = null; this.send(); }, wait);
      return;
    }
    this.tokens -= 1;
    this.sent = { ...this.view };
    this.ws.send(JSON.stringify({ type: 'subscribe', ...this.view }));
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.onState(s);
  }

  connect() {
    clearTimeout(this.timer);
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      // A new socket has a fresh budget on the server.
      this.tokens = SUB_BURST;
      this.tokensAt = Date.now();
      clearTimeout(this.sendTimer);
      this.sendTimer = null;
      this.lastMessage = Date.now();
      this.send();
    };
    ws.onmessage = (ev) => {
      this.lastMessage = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'hello') {
        this.onHello(msg);
        return;
      }
      if (msg.type === 'error') {
        this.onError(msg.error || 'error');
        return;
      }
      if (msg.type === 'sessions') {
        this.attempt = 0;
        this.downSince = null;
        this.setState('live');
        this.onSnapshot(msg);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (this.downSince === null) this.downSince = Date.now();
      this.setState(Date.now() - this.downSince > OFFLINE_AFTER ? 'offline' : 'reconnecting');
      // A refused upgrade looks like any other close: ask whether the
      // login is still good before hammering the server.
      if (!opened) {
        this.checkAuth().then((ok) => {
          if (ok) this.retry();
          else this.onAuthLost();
        });
      } else {
        this.retry();
      }
    };
    ws.onerror = () => {};
  }

  retry() {
    if (this.stopped) return;
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    this.attempt++;
    const delay = base / 2 + Math.random() * (base / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  // reconnectNow skips the backoff (the browser came back online).
  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  check() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.lastMessage > STALE_AFTER) {
      // Open but silent: a half-dead connection. Drop it and reconnect.
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
      if (this.downSince === null) this.downSince = Date.now();
      this.setState('reconnecting');
      this.retry();
      return;
    }
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'live') {
      if (this.downSince !== null && Date.now() - this.downSince > OFFLINE_AFTER) this.setState('offline');
    }
  }
}

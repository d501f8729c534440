// Human units for the live page. Bytes are binary (KiB, MiB, ...), rates
// are decimal bits per second (kbps, Mbps, ...), as operators read them on
// MikroTik's own tools.

const intFmt = new Intl.NumberFormat('en-US');

export function fmtInt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return intFmt.format(n);
}

function scaled(v, units, step) {
  let i = 0;
  let x = Math.abs(v);
  while (x >= step && i < units.length - 1) {
    x /= step;
    i++;
  }
  const sign = v < 0 ? '-' : '';
  if (i === 0) return sign + Math.round(x) + ' ' + units[0];
  const digits = x < 10 ? 2 : x < 100 ? 1 : 0;
  return sign + x.toFixed(digits) + ' ' + units[i];
}

export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return scaled(Number(n), ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'], 1024);
}

export function fmtRate(bps) {
  if (bps === null || bps === undefined || Number.isNaN(Number(bps))) return '—';
  return scaled(Number(bps), ['bps', 'kbps', 'Mbps', 'Gbps', 'Tbps'], 1000);
}

// fmtUptime: 1d 2h 3m under a week, seconds shown only in the first hour.
export function fmtUptime(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

export function parseTime(v) {
  if (!v) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

const pad = (n) => String(n).padStart(2, '0');

// fmtDateTime: local time, ISO-like, unambiguous for a NOC log.
export function fmtDateTime(v) {
  const t = typeof v === 'number' ? v : parseTime(v);
  if (t === null) return '—';
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(t) {
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// fmtAgo: "12 s ago", "5 min ago", "3 h ago", "2 d ago"; now is in ms.
export function fmtAgo(v, now = Date.now()) {
  const t = typeof v === 'number' ? v : parseTime(v);
  if (t === null) return 'never';
  const s = Math.round((now - t) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// RFC 5176 Error-Cause values, for failed disconnects and CoA.
const errorCauses = {
  201: 'Residual Session Context Removed',
  202: 'Invalid EAP Packet (Ignored)',
  401: 'Unsupported Attribute',
  402: 'Missing Attribute',
  403: 'NAS Identification Mismatch',
  404: 'Invalid Request',
  405: 'Unsupported Service',
  406: 'Unsupported Extension',
  407: 'Invalid Attribute Value',
  501: 'Administratively Prohibited',
  502: 'Request Not Routable (Proxy)',
  503: 'Session Context Not Found',
  504: 'Session Context Not Removable',
  505: 'Other Proxy Processing Error',
  506: 'Resources Unavailable',
  507: 'Request Initiated',
  508: 'Multiple Session Selection Unsupported',
};

export function errorCauseText(code) {
  if (!code) return '';
  const name = errorCauses[code];
  return name ? `Error-Cause ${code} (${name})` : `Error-Cause ${code}`;
}

// describeControl turns a disconnect/CoA answer into one operator sentence.
export function describeControl(r, verb = 'Disconnected') {
  if (!r) return 'No answer';
  const detail = r.detail ? ` — ${r.detail}` : '';
  if (r.ok) {
    if (r.method === 'routeros') return `${verb} via RouterOS API fallback${detail}`;
    return `${verb} (RADIUS ${String(r.result || 'ack').toUpperCase()})`;
  }
  const what = String(r.result || 'error').toUpperCase();
  const cause = r.error_cause ? ' ' + errorCauseText(r.error_cause) : '';
  const via = r.method === 'routeros' ? ' (RouterOS API)' : '';
  return `Failed: ${what}${cause}${via}${detail}`;
}

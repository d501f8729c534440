// Unit tests of the live page's formatting, run by `make check` with
// node's own test runner (TZ=UTC so local-time output is fixed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fmtInt, fmtBytes, fmtRate, fmtUptime, parseTime, fmtDateTime, fmtClock,
  fmtAgo, errorCauseText, describeControl,
} from '../ui/js/format.js';

test('fmtInt groups thousands and shows a dash for no value', () => {
  assert.equal(fmtInt(0), '0');
  assert.equal(fmtInt(1234567), '1,234,567');
  assert.equal(fmtInt(null), '—');
  assert.equal(fmtInt(undefined), '—');
  assert.equal(fmtInt(NaN), '—');
});

test('fmtBytes is binary with two, one or no decimals by magnitude', () => {
  assert.equal(fmtBytes(0), '0 B');
  assert.equal(fmtBytes(1023), '1023 B');
  assert.equal(fmtBytes(1024), '1.00 KiB');
  assert.equal(fmtBytes(1536), '1.50 KiB');
  assert.equal(fmtBytes(10 * 1024 * 1024), '10.0 MiB');
  assert.equal(fmtBytes(150 * 1024 ** 3), '150 GiB');
  assert.equal(fmtBytes(-2048), '-2.00 KiB');
  // Counters arrive as strings when they exceed 2^53 in JSON.
  assert.equal(fmtBytes('5368709120'), '5.00 GiB');
  assert.equal(fmtBytes(2 ** 70), '1024 EiB');
  assert.equal(fmtBytes(null), '—');
  assert.equal(fmtBytes('not a number'), '—');
});

test('fmtRate is decimal bits per second', () => {
  assert.equal(fmtRate(999), '999 bps');
  assert.equal(fmtRate(1000), '1.00 kbps');
  assert.equal(fmtRate(1500000), '1.50 Mbps');
  assert.equal(fmtRate(250e9), '250 Gbps');
  assert.equal(fmtRate(undefined), '—');
});

test('fmtUptime shows seconds only in the first hour', () => {
  assert.equal(fmtUptime(0), '0s');
  assert.equal(fmtUptime(59.9), '59s');
  assert.equal(fmtUptime(61), '1m 1s');
  assert.equal(fmtUptime(3600), '1h 0m');
  assert.equal(fmtUptime(90061), '1d 1h 1m');
  assert.equal(fmtUptime(-5), '0s');
  assert.equal(fmtUptime(null), '—');
});

test('parseTime accepts RFC 3339 and rejects garbage', () => {
  assert.equal(parseTime('2026-01-02T03:04:05Z'), Date.UTC(2026, 0, 2, 3, 4, 5));
  assert.equal(parseTime(''), null);
  assert.equal(parseTime(null), null);
  assert.equal(parseTime('yesterday'), null);
});

test('fmtDateTime and fmtClock are local time, zero padded', () => {
  assert.equal(process.env.TZ, 'UTC', 'run with TZ=UTC');
  const t = Date.UTC(2026, 0, 2, 3, 4, 5);
  assert.equal(fmtDateTime(t), '2026-01-02 03:04:05');
  assert.equal(fmtDateTime('2026-01-02T03:04:05Z'), '2026-01-02 03:04:05');
  assert.equal(fmtDateTime('garbage'), '—');
  assert.equal(fmtClock(t), '03:04');
});

test('fmtAgo picks the unit by age', () => {
  const now = Date.UTC(2026, 5, 1, 12, 0, 0);
  assert.equal(fmtAgo(now - 5000, now), '5 s ago');
  assert.equal(fmtAgo(now - 300000, now), '5 min ago');
  assert.equal(fmtAgo(now - 3700000, now), '1 h 1 min ago');
  assert.equal(fmtAgo(now - 3 * 86400000, now), '3 d ago');
  assert.equal(fmtAgo(now + 10000, now), 'just now');
  assert.equal(fmtAgo(null, now), 'never');
  assert.equal(fmtAgo(new Date(now - 42000).toISOString(), now), '42 s ago');
});

test('errorCauseText names RFC 5176 causes and keeps unknown codes', () => {
  assert.equal(errorCauseText(503), 'Error-Cause 503 (Session Context Not Found)');
  assert.equal(errorCauseText(999), 'Error-Cause 999');
  assert.equal(errorCauseText(0), '');
  assert.equal(errorCauseText(undefined), '');
});

test('describeControl is one operator sentence per answer', () => {
  assert.equal(describeControl(null), 'No answer');
  assert.equal(describeControl({ ok: true, method: 'radius', result: 'ack' }), 'Disconnected (RADIUS ACK)');
  assert.equal(describeControl({ ok: true, method: 'radius' }, 'Changed'), 'Changed (RADIUS ACK)');
  assert.equal(
    describeControl({ ok: true, method: 'routeros', detail: 'no CoA answer' }),
    'Disconnected via RouterOS API fallback — no CoA answer');
  assert.equal(
    describeControl({ ok: false, method: 'radius', result: 'nak', error_cause: 503 }),
    'Failed: NAK Error-Cause 503 (Session Context Not Found)');
  assert.equal(
    describeControl({ ok: false, method: 'routeros', detail: 'login refused' }),
    'Failed: ERROR (RouterOS API) — login refused');
});

// A small line chart on <canvas>: rate over time, two series, axes with
// units, a hover readout. No libraries.
import { fmtRate, fmtClock, fmtDateTime } from './format.js';

// The light theme's colours; drawing takes the page's current ones from
// its CSS variables, so the chart follows the dark theme too.
const LIGHT = { down: '#1a5fd0', up: '#a64d06', grid: '#e3e7ee', axis: '#5b6472', text: '#3b4350', panel: '#ffffff' };

function themeColors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  return { down: v('--down', LIGHT.down), up: v('--up', LIGHT.up), grid: v('--line', LIGHT.grid), axis: v('--muted', LIGHT.axis),
    text: v('--ink-2', LIGHT.text), panel: v('--panel', LIGHT.panel) };
}

function niceStep(range, ticks) {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  const step = n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10;
  return step * mag;
}

const timeSteps = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

// sizeCanvas sizes canvas to its CSS box (600 wide, defaultHeight high
// when it has none) at the screen's pixel ratio and clears it; it returns
// the 2D context, drawing in CSS pixels, and the box's width and height.
export function sizeCanvas(canvas, defaultHeight) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600;
  const hh = canvas.clientHeight || defaultHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(hh * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, hh);
  return { g, w, hh };
}

// drawGrid labels a value axis with steps + 1 ticks from 0 to max and
// draws a faint grid line at each, the axis and labels left of x = left.
export function drawGrid(g, { width, left, top, bottom, max, steps, fmt, ink }) {
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = ink;
  g.textAlign = 'right';
  for (let i = 0; i <= steps; i++) {
    const y = bottom - ((bottom - top) * i) / steps;
    g.fillText(fmt((max * i) / steps), left - 6, y + 4);
    g.globalAlpha = 0.2;
    g.fillRect(left, y, width - left, 1);
    g.globalAlpha = 1;
  }
}

export class RateChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.points = [];
    this.hover = null;
    canvas.addEventListener('mousemove', (e) => {
      const r = canvas.getBoundingClientRect();
      this.hover = e.clientX - r.left;
      this.draw();
    });
    canvas.addEventListener('mouseleave', () => {
      this.hover = null;
      this.draw();
    });
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(canvas);
  }

  destroy() {
    this.ro.disconnect();
  }

  // setSamples takes [{at, input_bps, output_bps, input_octets, output_octets}].
  setSamples(samples) {
    const pts = [];
    let prev = null;
    for (const s of samples || []) {
      const t = Date.parse(s.at);
      if (Number.isNaN(t)) continue;
      let down = s.output_bps;
      let up = s.input_bps;
      if ((down === undefined || up === undefined) && prev) {
        const dt = (t - prev.t) / 1000;
        down = dt > 0 ? ((s.output_octets - prev.out) * 8) / dt : 0;
        up = dt > 0 ? ((s.input_octets - prev.in) * 8) / dt : 0;
      }
      prev = { t, in: s.input_octets, out: s.output_octets };
      if (down === undefined || up === undefined) continue;
      pts.push({ t, down: Math.max(0, down), up: Math.max(0, up) });
    }
    pts.sort((a, b) => a.t - b.t);
    this.points = pts;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const cssW = c.clientWidth || 600;
    const cssH = c.clientHeight || 260;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(cssH * dpr);
    }
    const g = c.getContext('2d');
    const COLORS = themeColors();
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = '11px system-ui, sans-serif';
    const pad = { l: 78, r: 16, t: 12, b: 28 };
    const W = cssW - pad.l - pad.r;
    const H = cssH - pad.t - pad.b;
    const pts = this.points;
    if (pts.length < 1) {
      g.fillStyle = COLORS.axis;
      g.textAlign = 'center';
      g.fillText('No rate samples yet: they come with each accounting update.', cssW / 2, cssH / 2);
      return;
    }
    let t0 = pts[0].t;
    let t1 = pts[pts.length - 1].t;
    if (t1 - t0 < 60000) {
      t0 = t1 - 60000;
    }
    let max = 0;
    for (const p of pts) max = Math.max(max, p.down, p.up);
    if (max <= 0) max = 1000;
    const step = niceStep(max, 4);
    const top = Math.ceil(max / step) * step;
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * W;
    const y = (v) => pad.t + H - (v / top) * H;

    // Y grid and labels.
    g.strokeStyle = COLORS.grid;
    g.lineWidth = 1;
    g.fillStyle = COLORS.text;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(pad.l, yy);
      g.lineTo(pad.l + W, yy);
      g.stroke();
      g.fillText(fmtRate(v), pad.l - 8, yy);
    }
    // X ticks.
    const span = t1 - t0;
    const tstep = timeSteps.find((s) => span / s <= 7) || timeSteps[timeSteps.length - 1];
    const tzOff = new Date().getTimezoneOffset() * 60000;
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let t = Math.ceil((t0 - tzOff) / tstep) * tstep + tzOff; t <= t1; t += tstep) {
      const xx = Math.round(x(t)) + 0.5;
      g.strokeStyle = COLORS.grid;
      g.beginPath();
      g.moveTo(xx, pad.t);
      g.lineTo(xx, pad.t + H);
      g.stroke();
      const label = tstep >= 86400000 ? fmtDateTime(t).slice(5, 10) : fmtClock(t);
      g.fillText(label, xx, pad.t + H + 6);
    }
    // Axes.
    g.strokeStyle = COLORS.axis;
    g.beginPath();
    g.moveTo(pad.l + 0.5, pad.t);
    g.lineTo(pad.l + 0.5, pad.t + H + 0.5);
    g.lineTo(pad.l + W, pad.t + H + 0.5);
    g.stroke();

    const line = (key, color) => {
      g.strokeStyle = color;
      g.lineWidth = 1.75;
      g.lineJoin = 'round';
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
      g.stroke();
      if (pts.length === 1) {
        g.fillStyle = color;
        g.beginPath();
        g.arc(x(pts[0].t), y(pts[0][key]), 3, 0, Math.PI * 2);
        g.fill();
      }
    };
    // Soft fill under download, the bigger series.
    g.fillStyle = 'rgba(31,111,235,0.08)';
    g.beginPath();
    g.moveTo(x(pts[0].t), y(0));
    for (const p of pts) g.lineTo(x(p.t), y(p.down));
    g.lineTo(x(pts[pts.length - 1].t), y(0));
    g.fill();
    line('down', COLORS.down);
    line('up', COLORS.up);

    if (this.hover !== null && this.hover >= pad.l && this.hover <= pad.l + W) {
      const t = t0 + ((this.hover - pad.l) / W) * (t1 - t0);
      let best = pts[0];
      for (const p of pts) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
      const xx = Math.round(x(best.t)) + 0.5;
      g.strokeStyle = COLORS.axis;
      g.setLineDash([3, 3]);
      g.beginPath();
      g.moveTo(xx, pad.t);
      g.lineTo(xx, pad.t + H);
      g.stroke();
      g.setLineDash([]);
      const lines = [fmtDateTime(best.t), `↓ ${fmtRate(best.down)}`, `↑ ${fmtRate(best.up)}`];
      const bw = 150;
      const bx = xx + 8 + bw > pad.l + W ? xx - 8 - bw : xx + 8;
      g.fillStyle = COLORS.panel;
      g.strokeStyle = COLORS.grid;
      g.fillRect(bx, pad.t + 4, bw, 52);
      g.strokeRect(bx + 0.5, pad.t + 4.5, bw, 52);
      g.textAlign = 'left';
      g.textBaseline = 'top';
      lines.forEach((l, i) => {
        g.fillStyle = i === 1 ? COLORS.down : i === 2 ? COLORS.up : COLORS.text;
        g.fillText(l, bx + 8, pad.t + 10 + i * 15);
      });
    }
  }
}

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// lowContrastJS lists the visible text on the page whose contrast with
// what is behind it is under WCAG AA: 4.5:1, or 3:1 for large text. The
// background is the element's own and its ancestors' colours composited
// up to the first opaque one; text over an image or gradient, in a faded
// (disabled) control, or hidden from assistive technology is skipped.
const lowContrastJS = `(() => {
	const parse = (c) => { const m = (c || '').match(/[\d.]+/g); if (!m || m.length < 3) return null;
		return [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1]; };
	const over = (top, bot) => [0, 1, 2].map((i) => top[i] * top[3] + bot[i] * (1 - top[3])).concat([1]);
	const lum = (c) => { const v = c.slice(0, 3).map((x) => { x = x / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
		return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
	const dark = matchMedia('(prefers-color-scheme: dark)').matches;
	const background = (el) => {
		const layers = [];
		for (let e = el; e; e = e.parentElement) {
			const cs = getComputedStyle(e);
			if (+cs.opacity < 1 || e.matches(':disabled')) return 'faded';
			if (cs.backgroundImage !== 'none') return null;
			const c = parse(cs.backgroundColor);
			if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
		}
		let bg = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
		for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
		return bg;
	};
	const out = [];
	const seen = new Set();
	for (const el of document.querySelectorAll('body *')) {
		if (el.closest('[aria-hidden="true"], [hidden], script, style, noscript, canvas')) continue;
		const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
		const field = el.matches('input:not([type=checkbox]):not([type=radio]):not([type=file]), select, textarea') && el.value;
		if (!own && !field) continue;
		const r = el.getBoundingClientRect();
		const cs = getComputedStyle(el);
		if (r.width === 0 || r.height === 0 || cs.visibility !== 'visible' || r.bottom < 0 || r.top > innerHeight) continue;
		const bg = background(el);
		if (bg === null || bg === 'faded') continue;
		const fg = parse(cs.color);
		if (!fg) continue;
		const a = lum(over(fg, bg)), b = lum(bg);
		const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		const size = parseFloat(cs.fontSize), bold = +cs.fontWeight >= 700;
		const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
		if (ratio >= need) continue;
		const what = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
			(el.dataset.testid ? '[' + el.dataset.testid + ']' : '');
		const text = (field ? el.value : el.textContent).trim().slice(0, 30);
		const key = what + ' ' + cs.color + ' ' + bg.join(',');
		if (seen.has(key)) continue;
		seen.add(key);
		out.push(what + ' "' + text + '" ' + ratio.toFixed(2) + ':1 (need ' + need + '), ' + cs.color + ' on rgb(' + bg.slice(0, 3).map(Math.round).join(', ') + ')');
	}
	return out;
})()`

// emulateScheme makes the tab prefer a colour scheme ("dark" or "light"),
// as a system set to it does.
func emulateScheme(tb *tab, scheme string) {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
	tb.waitJS("the "+scheme+" colour scheme", `matchMedia('(prefers-color-scheme: `+scheme+`)').matches`, 5*time.Second)
}

// TestBrowserDarkTheme: with the system in dark mode the login page,
// overview, sessions (and a dialog), session detail, usage, routers and
// customers pages are dark and every visible
// text on them keeps WCAG AA contrast with what is behind it. Screenshots
// of each page.
func TestBrowserDarkTheme(t *testing.T) {
	b, dbURL, srv := startUI(t)
	_, all, admin := uiFleetAdmin(t, dbURL, srv, "127.0.15.41", "dk-", 2, 5)
	admin.mustPost("create customer", "/api/customers", map[string]string{
		"name": "Solveig Dahl", "username": all[0], "profile": "home-100", "phone": "+47 911 11 111", "address": "Strandgata 3, 9008 Tromsø"})
	admin.mustPost("add router", "/api/routers", map[string]any{"name": "dk-silent", "ip": "127.0.15.60", "secret": "ui-secret", "coa_port": 3799})
	// A history for the overview's charts: an earlier point of each session.
	addSampleHistory(t, dbURL)

	for _, theme := range []struct{ scheme, body string }{{"dark", "rgb(13, 17, 23)"}, {"light", "rgb(243, 245, 248)"}} {
		t.Run(theme.scheme, func(t *testing.T) { themeWalk(t, b, srv.HTTPURL, theme.scheme, theme.body, all) })
	}

	checkPageErrors(t, b)
}

// themeWalk visits each page in a fresh tab with the system preferring
// scheme, and checks the theme's body colour and the contrast of the text.
func themeWalk(t *testing.T, b *browser, base, scheme, body string, all []string) {
	tb := b.newTab(t, scheme)
	emulateScheme(tb, scheme)
	check := func(page string) {
		t.Helper()
		if bg := mustEval[string](tb, `getComputedStyle(document.body).backgroundColor`); bg != body {
			t.Errorf("%s: body background %s, want %s (the %s theme's)", page, bg, body, scheme)
		}
		if low := mustEval[[]string](tb, lowContrastJS); len(low) > 0 {
			t.Errorf("%s: text below WCAG AA contrast in the %s theme:\n  %s", page, scheme, strings.Join(low, "\n  "))
		}
		tb.screenshot(page + "-" + scheme + "-1440.png")
	}

	tb.do(chromedp.Navigate(base + "/"))
	tb.waitJS("the login form", `!document.getElementById('login').hidden`, 15*time.Second)
	check("login")

	tb.loginLanding(base, "op", uiOperatorPass)
	tb.waitJS("the overview's top users and health", `document.querySelectorAll('[data-testid="top-user"]').length === 10 &&
		document.querySelectorAll('[data-testid="health-row"]').length === 3 && document.querySelectorAll('[data-testid="legend-router"]').length === 2`, 15*time.Second)
	check("overview")

	tb.do(chromedp.Navigate(base + "/#/sessions"))
	tb.waitRows("the sessions", all)
	tb.waitJS("the customer's name", `[...document.querySelectorAll('[data-testid="cell-customer"]')].some((c) => c.textContent === 'Solveig Dahl')`, 10*time.Second)
	// A selected row and the hover colour are part of the theme too.
	tb.do(chromedp.Click(chromedp.CSS(rowSel(all[1]) + ` [data-testid="select-row"]`)))
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 5, 5))
	check("sessions")
	tb.do(chromedp.Click(chromedp.CSS(rowSel(all[2]) + ` [data-testid="disconnect"]`)))
	tb.waitJS("the confirmation dialog", `document.querySelector('dialog[open] [data-testid="confirm"]') !== null`, 5*time.Second)
	check("sessions-dialog")
	tb.do(chromedp.Click(chromedp.CSS(`dialog[open] [aria-label="Close"]`)))
	tb.waitJS("the dialog closed", `document.querySelector('dialog[open]') === null`, 5*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(rowSel(all[0]) + ` [data-testid="session-link"]`)))
	tb.waitJS("the detail page and its chart", `document.querySelector('[data-testid="session-attrs"] dt') !== null && location.hash.startsWith('#/session/')`, 10*time.Second)
	check("detail")

	tb.do(chromedp.Navigate(base + "/#/usage"))
	tb.waitJS("the usage rows", `document.querySelectorAll('[data-testid="usage-row"]').length === `+fmt.Sprint(len(all)), 15*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="usage-user"]`)))
	tb.waitJS("a user's chart", `!document.querySelector('[data-testid="usage-chart-panel"]').hidden`, 10*time.Second)
	check("usage")

	tb.do(chromedp.Navigate(base + "/#/routers"))
	tb.waitJS("the routers", `document.querySelectorAll('[data-testid="router-row"]').length === 3`, 15*time.Second)
	check("routers")

	tb.do(chromedp.Navigate(base + "/#/customers"))
	tb.waitJS("the customers", `document.querySelector('main').textContent.includes('Solveig Dahl')`, 15*time.Second)
	check("customers")
}

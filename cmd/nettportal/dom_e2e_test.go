package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDOMBuilderRefusesSchemes: the page's DOM builder (h in
// js/dom.js) never puts a javascript:, data: or other non-web URL into
// href or src, however it is disguised; http, https, mailto, relative
// URLs and fragments pass.
func TestBrowserDOMBuilderRefusesSchemes(t *testing.T) {
	b := newBrowser(t)
	dbURL := migratedDB(t)
	srv := startServe(t, dbURL)
	tb := b.newTab(t, "dom")
	tb.do(chromedp.Navigate(srv.HTTPURL + "/"))
	tb.waitJS("the page", `document.readyState === 'complete'`, 15*time.Second)
	got := mustEval[map[string]any](tb, `(async () => {
		const { h } = await import('/js/dom.js');
		const out = {};
		const urls = ['javascript:alert(1)', ' JavaScript:alert(1)', 'java\tscript:alert(1)', '\x01javascript:alert(1)',
			'data:text/html,<script>alert(1)</script>', 'vbscript:x', 'blob:http://x/y', 'file:///etc/passwd',
			'http://example.net/', 'https://example.net/a?b', 'mailto:noc@example.net', '/api/sessions.csv', '#top', 'x.html'];
		for (const u of urls) {
			out['a ' + u] = h('a', { href: u }).getAttribute('href');
			out['img ' + u] = h('img', { src: u }).getAttribute('src');
			out['A ' + u] = h('a', { HREF: u }).getAttribute('href');
		}
		return out;
	})()`)
	for _, u := range []string{"javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)", "\x01javascript:alert(1)",
		"data:text/html,<script>alert(1)</script>", "vbscript:x", "blob:http://x/y", "file:///etc/passwd"} {
		for _, k := range []string{"a ", "img ", "A "} {
			if v := got[k+u]; v != nil {
				t.Errorf("%s%q: attribute set to %v, want refused", k, u, v)
			}
		}
	}
	for _, u := range []string{"http://example.net/", "https://example.net/a?b", "mailto:noc@example.net", "/api/sessions.csv", "#top", "x.html"} {
		if v := got["a "+u]; v != u {
			t.Errorf("a %q: attribute %v, want it kept", u, v)
		}
	}
}

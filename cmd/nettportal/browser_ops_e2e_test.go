package main

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/sim"
)

// rowOrder is the usernames of the table's rows, top to bottom.
const rowOrder = `[...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username)`

// TestBrowserLoginBrandAndDefaults: the product name is readable on the
// login page; the table opens sorted by current download rate, remembers
// another sort in this browser, keeps the row under the pointer in place
// when a session starts, and disables "Disconnect all" on an empty router.
func TestBrowserLoginBrandAndDefaults(t *testing.T) {
	b, dbURL, srv := startUI(t)
	fleet := uiFleet(t, dbURL, srv.AcctAddr, "127.0.3.61", "df-", 2, 3)
	byRouter, all := fleetSessions(fleet)

	tb := b.newTab(t, "defaults")
	tb.do(chromedp.Navigate(srv.HTTPURL + "/"))
	tb.waitJS("the login form", `!document.getElementById('login').hidden`, 15*time.Second)
	// Contrast of the brand text against the login box behind it (WCAG
	// relative luminance); white on white was 1:1.
	contrast := mustEval[float64](tb, `(() => {
		const lum = (c) => { const v = c.match(/[\d.]+/g).slice(0, 3).map((x) => { x = x / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
			return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
		const brand = document.querySelector('.brand-login'), box = document.querySelector('.login-box');
		const a = lum(getComputedStyle(brand).color), b = lum(getComputedStyle(box).backgroundColor);
		return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); })()`)
	if contrast < 4.5 {
		t.Errorf("login brand contrast %.2f:1, want at least 4.5:1", contrast)
	}
	if txt := mustEval[string](tb, `document.querySelector('.brand-login').textContent`); !strings.Contains(txt, "NettPortal") {
		t.Errorf("login brand %q", txt)
	}
	tb.screenshot("login-1440.png")

	tb.login(srv.HTTPURL, "op", uiOperatorPass)
	tb.waitRows("the sessions", all)
	if dir := mustEval[string](tb, `document.querySelector('[data-testid="sort-output_bps"]').dataset.dir`); dir != "desc" {
		t.Errorf("default sort: download rate %q, want desc", dir)
	}
	// The server's order for that sort is the page's order.
	tb.waitJS("rows in the server's rate order", `(async () => {
		const r = await fetch('/api/sessions?sort=output_bps&order=desc&limit=50');
		const j = await r.json();
		window.__want = JSON.stringify(j.sessions.map((s) => s.username));
		return true; })()`, 10*time.Second)
	tb.waitJS("rows in the server's rate order", `window.__want === JSON.stringify(`+rowOrder+`)`, 10*time.Second)

	// Another sort is remembered by this browser across a reload.
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-username"]`)))
	asc := slices.Sorted(slices.Values(all))
	tb.waitJS("rows by username", `JSON.stringify(`+rowOrder+`) === `+jsString(mustJSON(asc)), 10*time.Second)
	tb.do(chromedp.Navigate(srv.HTTPURL + "/#/sessions"))
	tb.do(chromedp.Reload())
	tb.waitJS("rows by username after a reload", `JSON.stringify(`+rowOrder+`) === `+jsString(mustJSON(asc)), 15*time.Second)
	if dir := mustEval[string](tb, `document.querySelector('[data-testid="sort-username"]').dataset.dir`); dir != "asc" {
		t.Errorf("remembered sort: username %q, want asc", dir)
	}

	// Descending by username a new session would go on top; with the
	// pointer over the table it joins at the end and nothing moves.
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-username"]`)))
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	tb.waitJS("rows by username, descending", `JSON.stringify(`+rowOrder+`) === `+jsString(mustJSON(desc)), 10*time.Second)
	tb.pointAtRows()
	// New rows are marked once the view has settled (the first rows of a
	// new sort are not news).
	tb.waitJS("the view to settle", `Date.now() - window.nettportal.app.page.viewChangedAt > 1600`, 5*time.Second)
	added := fleet.Router("df-01").Connect(1)
	want := append(slices.Clone(desc), added...)
	tb.waitJS("the new row at the end, the others in place", `JSON.stringify(`+rowOrder+`) === `+jsString(mustJSON(want)), 10*time.Second)
	if !mustEval[bool](tb, `document.querySelector(`+jsString(rowSel(added[0]))+`).classList.contains('row-new')`) {
		t.Error("the new row is not marked")
	}
	// Pointer gone: the next update puts the row where the sort says.
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 5, 5))
	fleet.Tick()
	sorted := slices.Sorted(slices.Values(want))
	slices.Reverse(sorted)
	tb.waitJS("the order catching up", `JSON.stringify(`+rowOrder+`) === `+jsString(mustJSON(sorted)), 15*time.Second)

	// "Disconnect all" on a router without sessions is disabled.
	for _, s := range byRouter["df-02"] {
		fleet.Router("df-02").Disconnect(s.Username, rfc2866.AcctTerminateCause_Value_UserRequest)
	}
	tb.setInput("router-filter", "df-02")
	tb.waitJS("the empty router's table", `document.querySelector('[data-testid="empty-row"]') !== null`, 15*time.Second)
	tb.waitJS("Disconnect all disabled", `document.querySelector('[data-testid="disconnect-router"]').disabled`, 10*time.Second)
	tb.setInput("router-filter", "df-01")
	tb.waitJS("Disconnect all enabled", `!document.querySelector('[data-testid="disconnect-router"]').disabled`, 10*time.Second)
	checkPageErrors(t, b)
}

// TestBrowserRedialAfterDisconnect: a subscriber disconnected from the page
// comes back a few seconds later with a new session, as a real CPE does,
// and the page shows it without a reload.
func TestBrowserRedialAfterDisconnect(t *testing.T) {
	b, dbURL, srv := startUI(t)
	// The routers' clock runs with ours but can be moved on, so the test
	// need not wait out the redial delay (uiFleet's routers run no loop of
	// their own: Tick drives them).
	var skip atomic.Int64
	fleet := uiFleetWith(t, dbURL, srv.AcctAddr, "127.0.3.71", "rd-", 1, 3, func(c *sim.FleetConfig) {
		c.Redial = 5 * time.Second
		routers := c.Now // uiFleet's, which it moves on for the interims
		c.Now = func() time.Time { return routers().Add(time.Duration(skip.Load())) }
	})
	_, all := fleetSessions(fleet)

	tb := b.newTab(t, "redial")
	tb.login(srv.HTTPURL, "op", uiOperatorPass)
	tb.waitRows("the sessions", all)
	victim := all[0]
	oldID := mustEval[string](tb, `document.querySelector(`+jsString(rowSel(victim))+`).dataset.id`)
	tb.do(chromedp.Click(chromedp.CSS(rowSel(victim) + ` [data-testid="disconnect"]`)))
	tb.waitJS("the confirmation dialog", `document.querySelector('dialog[open] [data-testid="confirm"]') !== null`, 5*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`dialog[open] [data-testid="confirm"]`)))
	tb.waitJS("the disconnect result", `[...document.querySelectorAll('[data-testid="result"]')].some((e) => e.textContent.includes('Disconnected'))`, 20*time.Second)
	tb.waitRows("the others while the CPE waits", slices.DeleteFunc(slices.Clone(all), func(u string) bool { return u == victim }))
	if s, _ := fleet.Router("rd-01").Session(victim); s.Up {
		t.Fatalf("sim: %s redialed at once", victim)
	}
	skip.Store(int64(6 * time.Second))
	fleet.Tick()
	if s, _ := fleet.Router("rd-01").Session(victim); !s.Up {
		t.Fatalf("sim: %s did not redial after the delay: %+v", victim, s)
	}
	tb.waitJS("the redialed session", `(() => { const r = document.querySelector(`+jsString(rowSel(victim))+`); return r && r.dataset.id !== `+jsString(oldID)+`; })()`, 20*time.Second)
	tb.waitRows("every subscriber online again", all)
}

// TestBrowserMobile: at 390x844 the page does not scroll sideways, the
// menu button reaches every page, and a session's Disconnect is on screen
// and its dialog fits. Screenshots of each page at both sizes.
func TestBrowserMobile(t *testing.T) {
	b, dbURL, srv := startUI(t)
	fleet, all, admin := uiFleetAdmin(t, dbURL, srv, "127.0.3.81", "mb-", 2, 4)
	admin.mustPost("create customer", "/api/customers", map[string]string{
		"name": "Ingrid Haugen-Kristiansen", "username": all[0], "profile": "home-100", "phone": "+47 900 00 000", "address": "Fjordveien 12, 5003 Bergen"})

	tb := b.newTab(t, "mobile")
	tb.login(srv.HTTPURL, "admin", uiAdminPass)
	tb.waitRows("the sessions", all)
	pages := []string{"sessions", "routers", "customers", "audit"}
	for _, p := range pages {
		tb.do(chromedp.Navigate(srv.HTTPURL + "/#/" + p))
		tb.waitJS("the "+p+" page", `document.querySelector('[data-testid="nav-`+p+`"]').classList.contains('active')`, 10*time.Second)
		tb.waitJS("the "+p+" page's content", `!document.querySelector('main').textContent.includes('Loading…')`, 10*time.Second)
		tb.screenshot(p + "-1440.png")
	}
	tb.do(chromedp.Navigate(srv.HTTPURL + "/#/sessions"))
	tb.waitRows("the sessions again", all)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="session-link"]`)))
	tb.waitJS("the detail page", `document.querySelector('[data-testid="session-attrs"] dt') !== null`, 10*time.Second)
	internal := mustEval[[]string](tb, `[...document.querySelectorAll('[data-testid="session-attrs"] dt, [data-testid="session-radius"] dt')].map((e) => e.textContent)
		.filter((k) => /^(flush|mark|prev)[_ ]|^has[_ ]start|^start seen|^interim interval/i.test(k))`)
	if len(internal) > 0 {
		t.Errorf("the detail page shows internal columns: %q", internal)
	}
	tb.screenshot("detail-1440.png")

	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	noOverflow := func(what string) {
		t.Helper()
		tb.waitJS(what+" without sideways scrolling", `document.documentElement.scrollWidth <= 390 && document.body.scrollWidth <= 390`, 5*time.Second)
	}
	inView := func(sel string) string {
		return `(() => { const e = document.querySelector(` + jsString(sel) + `); if (!e) return false; const r = e.getBoundingClientRect();
			return r.width > 0 && r.left >= 0 && r.right <= 390 && r.top >= 0; })()`
	}
	noOverflow("the detail page")
	tb.screenshot("detail-390.png")
	for _, p := range pages {
		tb.waitJS("the menu button", inView(`[data-testid="menu-button"]`), 5*time.Second)
		if mustEval[bool](tb, inView(`[data-testid="nav-`+p+`"]`)) {
			t.Errorf("nav-%s shows with the menu closed", p)
		}
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="menu-button"]`)))
		tb.waitJS("nav-"+p+" in the open menu", inView(`[data-testid="nav-`+p+`"]`), 5*time.Second)
		tb.waitJS("Log out in the open menu", inView(`[data-testid="logout"]`), 5*time.Second)
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="nav-` + p + `"]`)))
		tb.waitJS("the "+p+" page", `document.querySelector('[data-testid="nav-`+p+`"]').classList.contains('active')`, 10*time.Second)
		tb.waitJS("the menu closed", `document.querySelector('[data-testid="menu-button"]').getAttribute('aria-expanded') === 'false'`, 5*time.Second)
		tb.waitJS("the "+p+" page's content", `!document.querySelector('main').textContent.includes('Loading…')`, 10*time.Second)
		noOverflow("the " + p + " page")
		tb.screenshot(p + "-390.png")
	}

	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="menu-button"]`)))
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="nav-sessions"]`)))
	tb.waitRows("the sessions on a phone", all)
	first := rowSel(all[0])
	for _, cell := range []string{`[data-testid="session-link"]`, `[data-testid="cell-router"]`, `[data-testid="cell-ip"]`, `[data-testid="cell-download"]`, `[data-testid="cell-rate"]`, `[data-testid="disconnect"]`} {
		if !mustEval[bool](tb, inView(first+" "+cell)) {
			t.Errorf("%s of a row is not on screen at 390 px", cell)
		}
	}
	tb.do(chromedp.Click(chromedp.CSS(first + ` [data-testid="disconnect"]`)))
	tb.waitJS("the confirmation dialog", `document.querySelector('dialog[open] [data-testid="confirm"]') !== null`, 5*time.Second)
	if !mustEval[bool](tb, `(() => { const r = document.querySelector('dialog[open]').getBoundingClientRect(); return r.left >= 0 && r.right <= 390 && r.bottom <= 844; })()`) {
		t.Error("the confirmation dialog does not fit the phone screen")
	}
	if !mustEval[bool](tb, inView(`dialog[open] [data-testid="confirm"]`)) {
		t.Error("the dialog's confirm button is off screen")
	}
	noOverflow("the dialog")
	tb.screenshot("disconnect-dialog-390.png")
	tb.do(chromedp.KeyEvent("\x1b")) // Escape closes without disconnecting
	tb.waitJS("the dialog closed", `document.querySelector('dialog[open]') === null`, 5*time.Second)
	if s, _ := fleet.Router(routerOf(fleet, all[0])).Session(all[0]); !s.Up {
		t.Error("closing the dialog disconnected the session")
	}

	// The login page on a phone: the brand readable, no sideways scroll.
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="menu-button"]`)))
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="logout"]`)))
	tb.waitJS("the login form", `!document.getElementById('login').hidden`, 10*time.Second)
	noOverflow("the login page")
	tb.waitJS("the brand on screen", inView(`.brand-login`), 5*time.Second)
	tb.screenshot("login-390.png")
	checkPageErrors(t, b)
}

// TestBrowserUsagePage: the usage page shows per-user totals equal to the
// billing API's, sorts top users first, finds a user by customer name,
// charts one user's days, exports what it shows, and is linked from the
// sessions table.
func TestBrowserUsagePage(t *testing.T) {
	b, dbURL, srv := startUI(t)
	_, all, admin := uiFleetAdmin(t, dbURL, srv, "127.0.3.91", "us-", 1, 4)
	named := all[1]
	admin.mustPost("create customer", "/api/customers", map[string]string{"name": "Sigrid Berg", "username": named, "profile": "home-50"})
	status, body := admin.call("GET", "/api/usage", nil)
	if status != 200 {
		t.Fatalf("usage API: %d %s", status, body)
	}
	var api struct {
		Usage []struct {
			Username     string `json:"username"`
			InputOctets  int64  `json:"input_octets"`
			OutputOctets int64  `json:"output_octets"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &api); err != nil {
		t.Fatal(err)
	}
	totals := map[string]int64{}
	for _, u := range api.Usage {
		totals[u.Username] += u.InputOctets + u.OutputOctets
	}
	if len(totals) != len(all) {
		t.Fatalf("billing API has usage for %d users, want %d: %s", len(totals), len(all), body)
	}
	byTotal := slices.Clone(all)
	slices.SortFunc(byTotal, func(a, b string) int { return cmp.Or(cmp.Compare(totals[b], totals[a]), strings.Compare(a, b)) })

	tb := b.newTab(t, "usage")
	tb.login(srv.HTTPURL, "view", uiViewerPass)
	tb.waitRows("the sessions", all)
	tb.do(chromedp.Navigate(srv.HTTPURL + "/#/usage"))
	usageRows := `[...document.querySelectorAll('[data-testid="usage-row"]')].map((r) => r.dataset.username)`
	tb.waitJS("top users first", `JSON.stringify(`+usageRows+`) === `+jsString(mustJSON(byTotal)), 15*time.Second)
	for _, u := range all {
		got := mustEval[string](tb, `document.querySelector('[data-testid="usage-row"][data-username=`+jsString(u)+`] [data-testid="usage-total"]').dataset.octets`)
		if got != strconv.FormatInt(totals[u], 10) {
			t.Errorf("%s: page total %s, billing API %d", u, got, totals[u])
		}
	}
	tb.screenshot("usage-1440.png")

	// Search by customer name, then a user's daily chart.
	tb.setInput("usage-search", "sigrid")
	tb.waitJS("the customer's row only", `JSON.stringify(`+usageRows+`) === `+jsString(mustJSON([]string{named})), 10*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="usage-user"]`)))
	tb.waitJS("the user's chart", `!document.querySelector('[data-testid="usage-chart-panel"]').hidden && document.querySelector('[data-testid="usage-chart-panel"] h2').textContent.includes('Sigrid Berg')`, 5*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="usage-csv"]`)))
	csvText := mustEval[string](tb, `window.nettportal.app.page.lastCSV || ''`)
	lines := strings.Split(strings.TrimSpace(csvText), "\r\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], named+",Sigrid Berg,") || !strings.Contains(lines[1], ","+strconv.FormatInt(totals[named], 10)+",") {
		t.Errorf("CSV of what is shown:\n%s", csvText)
	}
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	tb.waitJS("the usage page without sideways scrolling", `document.documentElement.scrollWidth <= 390`, 5*time.Second)
	tb.screenshot("usage-390.png")
	tb.do(chromedp.EmulateViewport(1440, 900))

	// Month totals are the same figures for a range inside one month.
	tb.setInput("usage-search", "")
	tb.setInput("usage-period", "month")
	tb.waitJS("month rows", `JSON.stringify(`+usageRows+`) === `+jsString(mustJSON(byTotal))+` && [...document.querySelectorAll('th')].some((th) => th.textContent === 'Months')`, 10*time.Second)

	// From the sessions table to a user's usage.
	tb.do(chromedp.Navigate(srv.HTTPURL + "/#/sessions"))
	tb.waitRows("the sessions again", all)
	tb.do(chromedp.Click(chromedp.CSS(rowSel(all[2]) + ` [data-testid="row-usage-link"]`)))
	tb.waitJS("the user's usage from the table", `location.hash.startsWith('#/usage') && JSON.stringify(`+usageRows+`) === `+jsString(mustJSON([]string{all[2]}))+
		` && !document.querySelector('[data-testid="usage-chart-panel"]').hidden`, 10*time.Second)
	checkPageErrors(t, b)
}

// TestBrowserOverview: the overview lists the top users by current rate in
// the server's order and each router's health, with a warning on a router
// that never sent accounting and on the health fields newer servers send.
func TestBrowserOverview(t *testing.T) {
	b, dbURL, srv := startUI(t)
	_, all, admin := uiFleetAdmin(t, dbURL, srv, "127.0.3.101", "ov-", 2, 6)
	admin.mustPost("add router", "/api/routers", map[string]any{"name": "ov-silent", "ip": "127.0.3.120", "secret": "ui-secret", "coa_port": 3799})
	status, body := admin.call("GET", "/api/sessions?sort=output_bps&order=desc&limit=10", nil)
	if status != 200 {
		t.Fatalf("sessions API: %d %s", status, body)
	}
	var top struct {
		Sessions []struct {
			Username string `json:"username"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range top.Sessions {
		want = append(want, s.Username)
	}
	if len(want) != 10 || len(all) != 12 {
		t.Fatalf("top %d of %d sessions", len(want), len(all))
	}

	tb := b.newTab(t, "overview")
	tb.login(srv.HTTPURL, "op", uiOperatorPass)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="nav-overview"]`)))
	tb.waitJS("the top users", `JSON.stringify([...document.querySelectorAll('[data-testid="top-user"]')].map((r) => r.dataset.username)) === `+jsString(mustJSON(want)), 15*time.Second)
	tb.waitJS("three routers' health", `document.querySelectorAll('[data-testid="health-row"]').length === 3`, 10*time.Second)
	health := mustEval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('[data-testid="health-row"]')].map((r) => [r.dataset.name, r.querySelector('[data-testid="health-warnings"]').textContent]))`)
	if health["ov-01"] != "OK" || health["ov-02"] != "OK" || !strings.Contains(health["ov-silent"], "no accounting received yet") {
		t.Errorf("router health warnings: %v", health)
	}
	// Fields other servers add are shown when present.
	warnings := mustEval[[]string](tb, `import('/js/overview.js').then((m) => m.routerWarnings({ name: 'x', last_accounting_at: new Date().toISOString(),
		interims_seen: 0, clock_skew_seconds: -95, quarantined: 3 }))`)
	if !slices.Equal(warnings, []string{"no interim updates seen", "clock behind by 95 s", "3 quarantined records"}) {
		t.Errorf("warnings from the newer fields: %q", warnings)
	}
	// The history: both routers' samples, stacked. The chart keeps one
	// sample per session per 30 s, so the test writes an earlier point of
	// every session itself: 1 MB of download a minute before its counters.
	addSampleHistory(t, dbURL)
	tb.do(chromedp.Reload())
	tb.waitJS("the history legend", `JSON.stringify([...document.querySelectorAll('[data-testid="legend-router"]')].map((e) => e.textContent)) === '["ov-01","ov-02"]'`, 15*time.Second)
	pts := mustEval[float64](tb, `window.nettportal.app.page.history.buckets.reduce((a, b) => a + [...b.by.values()].reduce((x, p) => x + p.output_bps, 0), 0)`)
	// 12 sessions × 1 MB in 60 s = 1.6 Mbps, plus whatever the fleet's own
	// interim samples add after them.
	if pts < 1.3e6 || pts > 1e9 {
		t.Errorf("throughput history sums to %v bps, want about 1.6 Mbps or a little more", pts)
	}
	tb.screenshot("overview-1440.png")
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	tb.waitJS("the overview without sideways scrolling", `document.documentElement.scrollWidth <= 390`, 5*time.Second)
	tb.screenshot("overview-390.png")
	checkPageErrors(t, b)
}

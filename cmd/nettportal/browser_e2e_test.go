package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
)

// Passwords of the page tests' users.
const (
	uiAdminPass    = "admin-password-for-ui-tests"
	uiOperatorPass = "operator-password-for-ui-tests"
	uiViewerPass   = "viewer-password-for-ui-tests"
)

// uiFleet starts simulated routers on their own loopback addresses, sends
// every Start and one Interim (so sessions have counters and a rate), and
// registers the routers with the server's database.
func uiFleet(t *testing.T, dbURL, acctAddr, base, prefix string, routers, perRouter int) *sim.Fleet {
	t.Helper()
	return uiFleetWith(t, dbURL, acctAddr, base, prefix, routers, perRouter, nil)
}

// startFleet makes the fleet cfg describes, registers its routers in db,
// starts it with ctx (it is closed at cleanup) and waits until every
// Start is answered; a failure shows log (serve's), when there is one.
func startFleet(t *testing.T, ctx context.Context, db *store.DB, cfg sim.FleetConfig, log *lockedBuffer) *sim.Fleet {
	t.Helper()
	fleet, err := sim.NewFleet(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Register(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	if err := fleet.AwaitAllStarted(ctx); err != nil {
		if log != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		t.Fatal(err)
	}
	return fleet
}

// uiFleetAdmin is uiFleet sending to srv, the usernames up in it, and the
// admin's API client.
func uiFleetAdmin(t *testing.T, dbURL string, srv *testServer, base, prefix string, routers, perRouter int) (*sim.Fleet, []string, *apiClient) {
	t.Helper()
	fleet := uiFleet(t, dbURL, srv.AcctAddr, base, prefix, routers, perRouter)
	_, all := fleetSessions(fleet)
	return fleet, all, apiLogin(t, srv.HTTPURL, "admin", uiAdminPass)
}

// uiFleetWith is uiFleet with mod adjusting the fleet's configuration.
func uiFleetWith(t *testing.T, dbURL, acctAddr, base, prefix string, routers, perRouter int, mod func(*sim.FleetConfig)) *sim.Fleet {
	t.Helper()
	// A big fleet's Starts take longer to be answered on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second+time.Duration(routers*perRouter)*5*time.Millisecond)
	defer cancel()
	db, err := store.Open(ctx, dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var clock routerClock
	cfg := sim.FleetConfig{Now: clock.Now,
		Routers: routers, BaseIP: netip.MustParseAddr(base), NamePrefix: prefix, Secret: "ui-secret",
		Server: acctAddr, Sessions: perRouter, Interim: time.Hour, // interims come from Tick
		APIUser: "api", APIPassword: "apipw", Timeout: 300 * time.Millisecond, Retries: 10, Seed: 21,
	}
	if mod != nil {
		mod(&cfg)
	}
	fleet := startFleet(t, ctx, db, cfg, nil)
	// Two interims a second apart by the routers' clock: counters, then a
	// current rate (the difference of the last two updates).
	for range 2 {
		clock.Advance(1100 * time.Millisecond)
		fleet.Tick()
		if err := fleet.AwaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return fleet
}

// addUIUsers creates an admin, an operator and a viewer.
func addUIUsers(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, 2, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, u := range []struct {
		name, password string
		role           nettportal.Role
	}{
		{"admin", uiAdminPass, nettportal.RoleAdmin},
		{"op", uiOperatorPass, nettportal.RoleOperator},
		{"view", uiViewerPass, nettportal.RoleViewer},
	} {
		if _, err := db.CreateUser(ctx, u.name, u.password, u.role); err != nil {
			t.Fatalf("create user %s: %v", u.name, err)
		}
	}
}

// login signs in through the page's form, checks that it lands on the
// overview, and opens the live sessions table most tests work on.
func (tb *tab) login(base, user, password string) {
	tb.t.Helper()
	tb.loginLanding(base, user, password)
	tb.waitJS("the overview as the landing page", `location.hash === '#/overview' && document.querySelector('[data-testid="nav-overview"]').classList.contains('active')`, 10*time.Second)
	mustEval[bool](tb, `(location.hash = '#/sessions', true)`)
	tb.waitJS("the sessions page", `document.querySelector('[data-testid="sessions-table"]') !== null`, 10*time.Second)
}

// loginLanding signs in through the page's form and waits for the app and
// its live connection, on whatever page the app lands.
func (tb *tab) loginLanding(base, user, password string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base + "/"))
	tb.waitJS("the login form", `!document.getElementById('login').hidden`, 15*time.Second)
	tb.do(
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-user"]`), user),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-pass"]`), password),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
	)
	tb.waitJS("the app after login", `!document.getElementById('app').hidden`, 15*time.Second)
	tb.waitJS("a live connection", `document.querySelector('[data-testid="conn-status"]').dataset.state === 'live'`, 15*time.Second)
}

// waitRows waits until the table holds exactly these usernames (any order).
func (tb *tab) waitRows(what string, want []string) {
	tb.t.Helper()
	w, _ := json.Marshal(slices.Sorted(slices.Values(want)))
	tb.waitJS(what, `JSON.stringify([...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username).sort()) === `+jsString(string(w)), 15*time.Second)
}

// setInput sets a field's value and fires the events the page listens to.
// For a select it first waits for the option to exist: the router list loads
// after the page, and setting a value a select does not offer leaves it at ""
// (the view would then silently lose the filter the test asked for).
func (tb *tab) setInput(testid, value string) {
	tb.t.Helper()
	tb.waitJS("the option "+value+" in "+testid, `(() => { const el = document.querySelector('[data-testid="`+testid+`"]');
		return el && (el.tagName !== 'SELECT' || [...el.options].some((o) => o.value === `+jsString(value)+`)); })()`, 15*time.Second)
	if !mustEval[bool](tb, `(() => { const el = document.querySelector('[data-testid="`+testid+`"]');
		el.value = `+jsString(value)+`; el.dispatchEvent(new Event('input', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true})); return el.value === `+jsString(value)+`; })()`) {
		tb.t.Fatalf("%s: %s did not take the value %q: %s", tb.name, testid, value, tb.summary())
	}
}

func rowSel(username string) string {
	return `tr[data-testid="session-row"][data-username=` + jsString(username) + `]`
}

// fleetSessions lists the usernames up in the fleet, per router name.
func fleetSessions(f *sim.Fleet) (map[string][]sim.SessionInfo, []string) {
	by := map[string][]sim.SessionInfo{}
	var all []string
	for _, r := range f.Routers {
		for _, s := range r.Sessions() {
			if s.Up {
				by[r.Name()] = append(by[r.Name()], s)
				all = append(all, s.Username)
			}
		}
	}
	return by, all
}

// TestBrowserSessionsPage drives the real page in headless Chromium against
// the real serve wiring and a simulated fleet: login, the live table,
// search, router filter, sorting, live arrivals and departures, disconnect,
// and what a viewer may not do.
func TestBrowserSessionsPage(t *testing.T) {
	b, dbURL, srv := startUI(t)
	fleet := uiFleet(t, dbURL, srv.AcctAddr, "127.0.3.11", "ui-", 2, 6)
	byRouter, all := fleetSessions(fleet)
	if len(all) != 12 {
		t.Fatalf("fleet has %d sessions up, want 12", len(all))
	}

	// A customer record gives one username a name.
	admin := apiLogin(t, srv.HTTPURL, "admin", uiAdminPass)
	linked := byRouter["ui-01"][0]
	admin.mustPost("create customer", "/api/customers", map[string]string{
		"name": "Kari Nordmann", "username": linked.Username, "profile": "fiber-500", "phone": "+47 22 00 00 00", "address": "Storgata 1, Oslo"})

	t.Run("operator", func(t *testing.T) {
		tb := b.newTab(t, "operator")

		// A wrong password is refused on the page.
		tb.do(chromedp.Navigate(srv.HTTPURL + "/"))
		tb.waitJS("the login form", `!document.getElementById('login').hidden`, 15*time.Second)
		tb.do(
			chromedp.SendKeys(chromedp.CSS(`[data-testid="login-user"]`), "op"),
			chromedp.SendKeys(chromedp.CSS(`[data-testid="login-pass"]`), "not-the-password"),
			chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		)
		tb.waitJS("the login error", `!document.querySelector('[data-testid="login-error"]').hidden`, 10*time.Second)

		tb.login(srv.HTTPURL, "op", uiOperatorPass)
		tb.waitRows("every simulated session", all)
		tb.waitJS("the total", `document.querySelector('[data-testid="total-sessions"]').textContent === '12'`, 10*time.Second)

		// Each row shows what the router reported, and the customer's name.
		for _, ss := range byRouter {
			for _, s := range ss {
				got := mustEval[[]string](tb, `(() => { const r = document.querySelector(`+jsString(rowSel(s.Username))+`);
					return ['cell-router', 'cell-ip'].map((k) => r.querySelector('[data-testid="' + k + '"]').textContent); })()`)
				if want := []string{routerOf(fleet, s.Username), s.IP.String()}; !slices.Equal(got, want) {
					t.Errorf("row %s shows router/IP %v, want %v", s.Username, got, want)
				}
			}
		}
		tb.waitJS("the customer's name in its row", `document.querySelector(`+jsString(rowSel(linked.Username)+` [data-testid="cell-customer"]`)+`).textContent === 'Kari Nordmann'`, 10*time.Second)

		// Search by username (typed), by customer name and by IP.
		other := byRouter["ui-02"][2]
		tb.do(chromedp.SendKeys(chromedp.CSS(`[data-testid="search"]`), other.Username))
		tb.waitRows("the search by username", []string{other.Username})
		if !strings.Contains(mustEval[string](tb, `location.hash`), "q=") {
			t.Errorf("the search is not in the URL: %s", mustEval[string](tb, `location.hash`))
		}
		tb.setInput("search", "Kari Nordmann")
		tb.waitRows("the search by customer name", []string{linked.Username})
		ip := byRouter["ui-02"][3]
		tb.setInput("search", ip.IP.String())
		tb.waitJS("the search by IP", `(() => { const rows = [...document.querySelectorAll('[data-testid="session-row"]')];
			return rows.length >= 1 && rows.length < 12 && rows.some((r) => r.dataset.username === `+jsString(ip.Username)+`)
				&& rows.every((r) => r.querySelector('[data-testid="cell-ip"]').textContent.includes(`+jsString(ip.IP.String())+`)); })()`, 15*time.Second)
		tb.setInput("search", "")
		tb.waitRows("every session after clearing the search", all)

		// The router filter narrows to one router, and survives a reload.
		tb.setInput("router-filter", "ui-02")
		var ui02 []string
		for _, s := range byRouter["ui-02"] {
			ui02 = append(ui02, s.Username)
		}
		tb.waitRows("the router filter", ui02)
		tb.waitJS("the filtered total", `document.querySelector('[data-testid="total-sessions"]').textContent === '6'`, 10*time.Second)
		tb.waitJS("the disconnect-all button for the router", `!document.querySelector('[data-testid="disconnect-router"]').hidden`, 5*time.Second)
		tb.do(chromedp.Reload())
		tb.waitJS("a live connection after reload", `document.querySelector('[data-testid="conn-status"]').dataset.state === 'live'`, 15*time.Second)
		tb.waitRows("the router filter after reload", ui02)
		if v := mustEval[string](tb, `document.querySelector('[data-testid="router-filter"]').value`); v != "ui-02" {
			t.Errorf("router filter after reload = %q", v)
		}
		tb.setInput("router-filter", "")
		tb.waitRows("every session after clearing the router filter", all)

		// Sorting by a column header, both ways.
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-username"]`)))
		asc := slices.Sorted(slices.Values(all))
		tb.waitJS("rows sorted by username", `JSON.stringify([...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username)) === `+jsString(mustJSON(asc)), 10*time.Second)
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-username"]`)))
		desc := slices.Clone(asc)
		slices.Reverse(desc)
		tb.waitJS("rows sorted by username, descending", `JSON.stringify([...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username)) === `+jsString(mustJSON(desc)), 10*time.Second)
		if h := mustEval[string](tb, `location.hash`); !strings.Contains(h, "sort=username") { // descending is the default order
			t.Errorf("the sort is not in the URL: %s", h)
		}

		// Live: a new session appears and a stopped one disappears, no reload.
		mustEval[bool](tb, `(window.__sameDocument = true)`)
		added := fleet.Router("ui-01").Connect(1)
		if len(added) != 1 {
			t.Fatalf("Connect gave %v", added)
		}
		tb.waitJS("the new session's row", `document.querySelector(`+jsString(rowSel(added[0]))+`) !== null`, 10*time.Second)
		gone := byRouter["ui-02"][0].Username
		if !fleet.Router("ui-02").Disconnect(gone, rfc2866.AcctTerminateCause_Value_UserRequest) {
			t.Fatalf("sim has no session %s", gone)
		}
		tb.waitJS("the stopped session's row to go", `document.querySelector(`+jsString(rowSel(gone))+`) === null`, 10*time.Second)
		tb.waitJS("the total after one in, one out", `document.querySelector('[data-testid="total-sessions"]').textContent === '12'`, 10*time.Second)
		if !mustEval[bool](tb, `window.__sameDocument === true`) {
			t.Error("the page reloaded to show the change")
		}

		// The screenshot: heaviest downloaders first.
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-output_bps"]`)))
		tb.waitJS("the rate sort", `document.querySelector('[data-testid="sort-output_bps"]').dataset.dir === 'desc'`, 5*time.Second)
		time.Sleep(700 * time.Millisecond) // paces the screenshot: the highlight of new rows fades a little (no state waited for)
		tb.screenshot("sessions.png")

		// Disconnect from the row: confirm, the result, the row goes.
		victim := byRouter["ui-01"][1].Username
		tb.do(chromedp.Click(chromedp.CSS(rowSel(victim) + ` [data-testid="disconnect"]`)))
		tb.waitJS("the confirmation dialog", `document.querySelector('dialog[open] [data-testid="confirm"]') !== null`, 5*time.Second)
		tb.do(chromedp.Click(chromedp.CSS(`dialog[open] [data-testid="confirm"]`)))
		tb.waitJS("the disconnect result", `document.querySelector('[data-testid="result"]') !== null`, 20*time.Second)
		result := mustEval[string](tb, `document.querySelector('[data-testid="result"]').textContent`)
		if !strings.Contains(result, "Disconnected") {
			t.Fatalf("disconnect result %q, want a success\npage: %s\nlog:\n%s", result, tb.summary(), srv.Log.String())
		}
		tb.waitJS("the disconnected session's row to go", `document.querySelector(`+jsString(rowSel(victim))+`) === null`, 15*time.Second)
		if s, ok := fleet.Router("ui-01").Session(victim); ok && s.Up {
			t.Errorf("the simulated router still has %s up", victim)
		}

		// The audit page lists it.
		tb.do(chromedp.Click(chromedp.CSS(`[data-testid="nav-audit"]`)))
		tb.waitJS("the audit entry", `[...document.querySelectorAll('[data-testid="audit-row"]')].some((r) => r.dataset.username === `+jsString(victim)+`)`, 10*time.Second)

		checkPageErrors(t, b)
	})

	t.Run("viewer", func(t *testing.T) {
		tb := b.newTab(t, "viewer")
		tb.login(srv.HTTPURL, "view", uiViewerPass)
		_, up := fleetSessions(fleet)
		tb.waitRows("the sessions, for a viewer", up)
		for _, testid := range []string{"disconnect", "change-speed", "select-row", "disconnect-selected", "disconnect-router"} {
			if n := mustEval[int](tb, `document.querySelectorAll('[data-testid="`+testid+`"]').length`); n != 0 {
				t.Errorf("a viewer's page has %d %q elements", n, testid)
			}
		}

		// The session detail: attributes and the rate chart, no controls.
		tb.do(chromedp.Click(chromedp.CSS(rowSel(linked.Username) + ` [data-testid="session-link"]`)))
		tb.waitJS("the session's attributes", `document.querySelectorAll('[data-testid="session-attrs"] dd').length >= 8`, 10*time.Second)
		tb.waitJS("the rate chart", `document.querySelector('[data-testid="rate-chart"]').width > 0`, 5*time.Second)
		if n := mustEval[int](tb, `document.querySelectorAll('[data-testid="disconnect"]').length`); n != 0 {
			t.Errorf("a viewer's detail page has %d disconnect buttons", n)
		}

		// The API refuses a viewer too, whatever the page shows.
		viewer := apiLogin(t, srv.HTTPURL, "view", uiViewerPass)
		var page struct {
			Sessions []struct {
				ID int64 `json:"id"`
			} `json:"sessions"`
		}
		viewer.mustCall("GET", "/api/sessions?q="+linked.Username, nil, http.StatusOK, &page)
		if len(page.Sessions) != 1 {
			t.Fatalf("GET /api/sessions?q=%s gave %d sessions", linked.Username, len(page.Sessions))
		}
		id := strconv.FormatInt(page.Sessions[0].ID, 10)
		for _, c := range []struct {
			path string
			body any
		}{
			{"/api/sessions/" + id + "/disconnect", nil},
			{"/api/sessions/" + id + "/coa", map[string]string{"rate_limit": "1M/1M"}},
			{"/api/disconnect", map[string]any{"ids": []int64{page.Sessions[0].ID}}},
		} {
			if status, body := viewer.call("POST", c.path, c.body); status != http.StatusForbidden {
				t.Errorf("viewer POST %s: HTTP %d %s, want 403", c.path, status, body)
			}
		}
		if s, ok := fleet.Router("ui-01").Session(linked.Username); !ok || !s.Up {
			t.Errorf("%s went down after a viewer's refused disconnect", linked.Username)
		}
		checkPageErrors(t, b)
	})
}

// TestBrowserReconnectsAfterServerRestart restarts serve under the page:
// the indicator leaves "Live", the page reconnects by itself, resubscribes,
// and shows changes made after the restart.
func TestBrowserReconnectsAfterServerRestart(t *testing.T) {
	b, dbURL, srv := startUI(t)
	// The restart binds the addresses the first one chose.
	acct, httpAddr := srv.AcctAddr, strings.TrimPrefix(srv.HTTPURL, "http://")
	fleet := uiFleet(t, dbURL, acct, "127.0.3.41", "rc-", 1, 3)
	_, all := fleetSessions(fleet)

	tb := b.newTab(t, "restart")
	tb.login(srv.HTTPURL, "op", uiOperatorPass)
	tb.setInput("router-filter", "rc-01") // a view to be restored after the restart
	tb.waitJS("the filter in the address", `location.hash.includes('router=rc-01')`, 15*time.Second)
	tb.waitRows("the sessions", all)
	mustEval[bool](tb, `(window.__sameDocument = true)`)

	srv.stop()
	tb.waitJS("the indicator to leave Live", `document.querySelector('[data-testid="conn-status"]').dataset.state !== 'live'`, 20*time.Second)
	startServeAt(t, dbURL, acct, httpAddr) // stopped at cleanup
	tb.waitJS("Live again", `document.querySelector('[data-testid="conn-status"]').dataset.state === 'live'`, 30*time.Second)
	added := fleet.Router("rc-01").Connect(1)
	tb.waitRows("a session that started after the restart", append(slices.Clone(all), added...))
	if !mustEval[bool](tb, `window.__sameDocument === true && location.hash.includes('router=rc-01')`) {
		t.Errorf("the page reloaded or lost its view: %s", tb.summary())
	}
	checkPageErrors(t, b)
}

func routerOf(f *sim.Fleet, username string) string {
	for _, r := range f.Routers {
		if _, ok := r.Session(username); ok {
			return r.Name()
		}
	}
	return ""
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}

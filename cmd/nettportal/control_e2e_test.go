package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
)

// tokenClient calls the HTTP API with a bearer token, as a script would.
type tokenClient struct {
	t     testing.TB
	base  string
	token string
}

func (c tokenClient) do(method, path string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// mustGet fails the test unless GET path answers 200, and decodes the
// answer into out.
func (c tokenClient) mustGet(path string, out any) {
	c.t.Helper()
	if code := c.do("GET", path, nil, out); code != 200 {
		c.t.Fatalf("GET %s: %d", path, code)
	}
}

type apiSession struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Router   string `json:"router"`
	IP       string `json:"ip"`
}

type controlResult struct {
	ID         int64  `json:"id"`
	OK         bool   `json:"ok"`
	Method     string `json:"method"`
	Result     string `json:"result"`
	Detail     string `json:"detail"`
	ErrorCause uint32 `json:"error_cause"`
}

// controlFixture is serve, a simulated fleet registered in its database,
// and an operator token.
type controlFixture struct {
	db    *store.DB
	srv   *testServer
	fleet *sim.Fleet
	api   tokenClient
}

func newControlFixture(t *testing.T, fc sim.FleetConfig, serveArgs ...string) *controlFixture {
	t.Helper()
	dbURL := migratedDB(t)
	srv := startServe(t, dbURL, serveArgs...)
	db := openTestDB(t, dbURL)
	fc.Server = srv.AcctAddr
	fc.Secret = "ctl-secret"
	fc.APIUser, fc.APIPassword = "admin", "pw"
	fleet, err := sim.NewFleet(fc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Register(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fleet.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	if err := fleet.AwaitAllStarted(ctx); err != nil {
		t.Fatal(err)
	}
	return &controlFixture{db: db, srv: srv, fleet: fleet, api: tokenAPI(t, dbURL, srv, "ops-script", "operator")}
}

func (f *controlFixture) sessions(t *testing.T, router string) []apiSession {
	t.Helper()
	var page struct {
		Sessions []apiSession `json:"sessions"`
	}
	if code := f.api.do("GET", "/api/sessions?limit=1000&router="+router, nil, &page); code != 200 {
		t.Fatalf("list sessions: %d", code)
	}
	return page.Sessions
}

// awaitRow waits until the user's newest row satisfies ok.
func (f *controlFixture) awaitRow(t *testing.T, user string, within time.Duration, ok func(open bool, cause, closedBy, source string) bool) {
	t.Helper()
	eventually(t, within, 50*time.Millisecond, user+"'s row", func() (string, bool) {
		var open bool
		var cause, closedBy, source string
		err := f.db.Pool.QueryRow(context.Background(), `SELECT acctstoptime IS NULL, coalesce(acctterminatecause, ''),
			coalesce(closed_by, ''), source FROM radacct WHERE username = $1 ORDER BY radacctid DESC LIMIT 1`, user).
			Scan(&open, &cause, &closedBy, &source)
		return fmt.Sprintf("open=%v cause=%q closed_by=%q source=%q (err %v)", open, cause, closedBy, source, err),
			err == nil && ok(open, cause, closedBy, source)
	})
}

func TestDisconnectAndCoAAgainstSimulatedRouters(t *testing.T) {
	f := newControlFixture(t, sim.FleetConfig{Routers: 3, BaseIP: netip.MustParseAddr("127.0.4.11"), NamePrefix: "ctl-",
		Sessions: 6, Interim: 30 * time.Second}, "--reconcile-interval", "1h", "--coa-timeout", "300ms", "--coa-retries", "1")

	t.Run("ACK closes the row with Admin-Reset within a second", func(t *testing.T) {
		s := f.sessions(t, "ctl-01")[0]
		var res controlResult
		if code := f.api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", s.ID), nil, &res); code != 200 {
			t.Fatalf("disconnect: %d", code)
		}
		if !res.OK || res.Method != "radius" || res.Result != "ack" {
			t.Fatalf("result %+v", res)
		}
		f.awaitRow(t, s.Username, time.Second, func(open bool, cause, _, _ string) bool { return !open && cause == nettportal.CauseAdminReset })
	})

	t.Run("a router that ignores CoA is disconnected through the API", func(t *testing.T) {
		r := f.fleet.Router("ctl-02")
		r.IgnoreCoA(true)
		defer r.IgnoreCoA(false)
		s := f.sessions(t, "ctl-02")[0]
		var res controlResult
		f.api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", s.ID), nil, &res)
		if !res.OK || res.Method != "routeros" || !strings.Contains(res.Detail, "timeout") {
			t.Fatalf("result %+v", res)
		}
		if _, up := r.Session(s.Username); up {
			if info, _ := r.Session(s.Username); info.Up {
				t.Fatal("the session is still up on the router")
			}
		}
		f.awaitRow(t, s.Username, 5*time.Second, func(open bool, cause, _, _ string) bool { return !open && cause == nettportal.CauseAdminReset })
	})

	t.Run("NAK with Error-Cause 503 is reported", func(t *testing.T) {
		r := f.fleet.Router("ctl-01")
		s := f.sessions(t, "ctl-01")[0]
		// The router loses the session without telling us.
		r.LoseStops(true)
		r.Disconnect(s.Username, rfc2866.AcctTerminateCause_Value_LostCarrier)
		r.LoseStops(false)
		var res controlResult
		f.api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", s.ID), nil, &res)
		if res.OK || res.Result != "nak" || res.ErrorCause != 503 || !strings.Contains(res.Detail, "503") {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("a wrong secret on the router side ends as a timeout, then the API", func(t *testing.T) {
		nr, err := f.db.Router(context.Background(), "ctl-03")
		if err != nil {
			t.Fatal(err)
		}
		nr.Secret = "not-what-the-router-has"
		if err := f.db.UpdateRouter(context.Background(), &nr); err != nil {
			t.Fatal(err)
		}
		s := f.sessions(t, "ctl-03")[0]
		var res controlResult
		f.api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", s.ID), nil, &res)
		if !res.OK || res.Method != "routeros" || !strings.Contains(res.Detail, "timeout") {
			t.Fatalf("result %+v", res)
		}
		if info, _ := f.fleet.Router("ctl-03").Session(s.Username); info.Up {
			t.Fatal("the session is still up on the router")
		}
	})

	t.Run("CoA rate limit applies and the session stays up", func(t *testing.T) {
		var s apiSession
		for _, x := range f.sessions(t, "ctl-01") {
			if info, ok := f.fleet.Router("ctl-01").Session(x.Username); ok && info.Up {
				s = x
				break
			}
		}
		var res controlResult
		if code := f.api.do("POST", fmt.Sprintf("/api/sessions/%d/coa", s.ID), map[string]string{"rate_limit": "10M/20M"}, &res); code != 200 {
			t.Fatalf("coa: %d", code)
		}
		if !res.OK || res.Result != "ack" {
			t.Fatalf("result %+v", res)
		}
		info, ok := f.fleet.Router("ctl-01").Session(s.Username)
		if !ok || !info.Up || info.RateLimit != "10M/20M" {
			t.Fatalf("on the router: %+v", info)
		}
		// A session the CoA ended would be down on the router already
		// (checked above); the row is checked once the router has no
		// accounting in flight.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.fleet.Router("ctl-01").AwaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		f.awaitRow(t, s.Username, time.Second, func(open bool, _, _, _ string) bool { return open })
	})

	t.Run("every attempt is in the audit", func(t *testing.T) {
		var audit struct {
			Entries []map[string]any `json:"entries"`
		}
		var raw json.RawMessage
		if code := f.api.do("GET", "/api/audit?limit=100", nil, &raw); code != 200 {
			t.Fatalf("audit: %d", code)
		}
		if err := json.Unmarshal(raw, &audit.Entries); err != nil {
			var wrapped map[string]json.RawMessage
			json.Unmarshal(raw, &wrapped)
			for _, v := range wrapped {
				if json.Unmarshal(v, &audit.Entries) == nil && len(audit.Entries) > 0 {
					break
				}
			}
		}
		if len(audit.Entries) != 5 {
			t.Fatalf("%d audit entries, want 5: %s", len(audit.Entries), raw)
		}
		for _, e := range audit.Entries {
			if e["actor"] != "token:ops-script" {
				t.Errorf("actor %v", e["actor"])
			}
		}
	})
}

func TestBulkDisconnectOfARouterWith500Sessions(t *testing.T) {
	f := newControlFixture(t, sim.FleetConfig{Routers: 1, BaseIP: netip.MustParseAddr("127.0.5.11"), NamePrefix: "bulk-",
		Sessions: 500, Interim: time.Minute}, "--reconcile-interval", "1h", "--coa-timeout", "500ms")
	if list := f.sessions(t, "bulk-01"); len(list) != 500 {
		ids := map[int64]int{}
		for _, s := range list {
			ids[s.ID]++
		}
		var n int
		f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM radacct WHERE acctstoptime IS NULL").Scan(&n)
		rows, _ := f.db.Pool.Query(context.Background(), `SELECT username, string_agg(acctsessionid || '/' || acctstarttime::text || '/' || coalesce(acctupdatetime::text,'') || '/' || has_start::text, ' ') FROM radacct GROUP BY username HAVING count(*) > 1 LIMIT 3`)
		for rows.Next() {
			var u, x string
			rows.Scan(&u, &x)
			t.Log(u, x)
		}
		rows.Close()
		t.Fatalf("%d sessions (%d distinct ids, %d open rows) before the bulk disconnect", len(list), len(ids), n)
	}
	var out struct {
		Results []controlResult `json:"results"`
	}
	if code := f.api.do("POST", "/api/disconnect", map[string]any{"router": "bulk-01"}, &out); code != 200 {
		t.Fatalf("bulk disconnect: %d", code)
	}
	ok := 0
	seen := map[int64]bool{}
	for _, r := range out.Results {
		seen[r.ID] = true
		if r.OK {
			ok++
		}
	}
	if len(out.Results) != 500 || len(seen) != 500 || ok != 500 {
		t.Fatalf("%d results for %d sessions, %d ok; want 500 each", len(out.Results), len(seen), ok)
	}
	eventually(t, 10*time.Second, 100*time.Millisecond, "bulk-01's sessions closed", func() (string, bool) {
		n := len(f.sessions(t, "bulk-01"))
		return fmt.Sprintf("%d still open", n), n == 0
	})
}

func TestReconciliationAgainstSimulatedRouters(t *testing.T) {
	// The routers wait a second per try, twice: a Start must not be given
	// up because a loaded machine answered it late (the fleet start waits
	// for every Start), and a deliberately lost one is given up in 3s.
	f := newControlFixture(t, sim.FleetConfig{Routers: 2, BaseIP: netip.MustParseAddr("127.0.6.11"), NamePrefix: "rec-",
		Sessions: 5, Interim: time.Hour, Timeout: time.Second, Retries: 2},
		"--reconcile-interval", "1s", "--api-poll-interval", "1s")
	r1, r2 := f.fleet.Router("rec-01"), f.fleet.Router("rec-02")
	interval := time.Second

	t.Run("lost Stops are closed within one interval", func(t *testing.T) {
		user := r1.Sessions()[0].Username
		r1.LoseStops(true)
		r1.Disconnect(user, rfc2866.AcctTerminateCause_Value_UserRequest)
		r1.LoseStops(false)
		f.awaitRow(t, user, 2*interval+time.Second, func(open bool, cause, closedBy, _ string) bool {
			return !open && cause == nettportal.CauseLostService && closedBy == nettportal.ClosedByReconciler
		})
	})

	t.Run("a session whose Start was lost appears", func(t *testing.T) {
		r1.SetLoss(1)
		users := r1.Connect(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r1.AwaitIdle(ctx); err != nil { // the Start and its retry are lost, given up
			t.Fatal(err)
		}
		r1.SetLoss(0)
		// Seen unaccounted on one pass, added on the next: two passes, each
		// up to an interval apart; generous for a loaded CI machine.
		f.awaitRow(t, users[0], 8*interval, func(open bool, _, _, source string) bool { return open && source == "api" })
	})

	t.Run("a reboot without Accounting-On is cleaned up", func(t *testing.T) {
		before := r1.Sessions()
		r1.Reboot(false)
		for _, s := range before {
			f.awaitRow(t, s.Username, 3*interval, func(open bool, _, closedBy, _ string) bool {
				// The subscriber may log in again with a new row; the old one must be closed.
				var stillOpen bool
				f.db.Pool.QueryRow(context.Background(), "SELECT count(*) > 0 FROM radacct WHERE username = $1 AND acctsessionid = $2 AND acctstoptime IS NULL", s.Username, s.SessionID).Scan(&stillOpen)
				return !stillOpen
			})
		}
	})

	t.Run("an unreachable router closes nothing", func(t *testing.T) {
		user := r2.Sessions()[0].Username
		r2.SetAPIUnreachable(true)
		r2.LoseStops(true)
		r2.Disconnect(user, rfc2866.AcctTerminateCause_Value_UserRequest)
		// Two passes recorded after the lost Stop (one pass closes a
		// reachable router's): the reconciler runs in serve and writes
		// each pass to router_status.
		since := time.Now()
		passes := map[time.Time]bool{}
		eventually(t, 8*interval, 50*time.Millisecond, "two reconcile passes against rec-02", func() (string, bool) {
			var at time.Time
			err := f.db.Pool.QueryRow(context.Background(), `SELECT last_reconcile_at FROM router_status s
				JOIN nas ON nas.id = s.nas_id WHERE nas.shortname = 'rec-02'`).Scan(&at)
			if err == nil && at.After(since) {
				passes[at] = true
			}
			return fmt.Sprintf("%d passes (%v)", len(passes), err), len(passes) >= 2
		})
		f.awaitRow(t, user, time.Second, func(open bool, _, _, _ string) bool { return open })
		var reachable bool
		if err := f.db.Pool.QueryRow(context.Background(), "SELECT api_reachable FROM router_status s JOIN nas ON nas.id = s.nas_id WHERE nas.shortname = 'rec-02'").Scan(&reachable); err != nil || reachable {
			t.Errorf("rec-02 api_reachable = %v (%v), want false", reachable, err)
		}
	})
}

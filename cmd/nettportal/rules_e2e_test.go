package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/radius/radiustest"
)

// The accounting rules of issue 11 through the real serve wiring: real
// UDP from loopback routers, real PostgreSQL, the real /metrics and API.

// rulePacket is an Accounting-Request from the router at nas; secs < 0
// sends no Acct-Session-Time, a zero event no Event-Timestamp; set adds
// attributes.
func rulePacket(t testing.TB, secret string, nas net.IP, status rfc2866.AcctStatusType, user, sid string, secs int, event time.Time, set func(*rad.Packet)) []byte {
	t.Helper()
	r := radiustest.Request{Status: status, NASIP: nas, NASIdentifier: "rules", User: user, SessionID: sid, Event: event, Set: set}
	if user != "" {
		r.NASPortID = "<pppoe-" + user + ">"
	}
	if secs >= 0 {
		r.Counters = &radiustest.Counters{SessionTime: uint32(secs), In: uint32(secs * 1000), Out: uint32(secs * 2000)}
	}
	return r.Encode(t, secret)
}

// sendTogether writes every request at once (as a router flushing its
// queue does) and fails unless each gets its authentic answer. Like a NAS
// it sends the unanswered ones again after a second, up to 3 times (a
// loaded machine may shed a packet); the copies have the same bytes, so
// the server answers them once.
func sendTogether(t testing.TB, c *net.UDPConn, secret string, raws ...[]byte) {
	t.Helper()
	answered := make([]bool, len(raws))
	left := len(raws)
	buf := make([]byte, 4096)
	for attempt := 0; attempt < 4 && left > 0; attempt++ {
		for i, raw := range raws {
			if answered[i] {
				continue
			}
			if _, err := c.Write(raw); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for left > 0 {
			n, err := c.Read(buf)
			if err != nil {
				break // the deadline: send the rest again
			}
			for i, raw := range raws {
				if !answered[i] && rad.IsAuthenticResponse(buf[:n], raw, []byte(secret)) {
					answered[i] = true
					left--
					break
				}
			}
		}
	}
	if left > 0 {
		t.Fatalf("%d of %d requests answered after 4 sends", len(raws)-left, len(raws))
	}
}

// sessionRow is what the rules tests read of a radacct row.
type sessionRow struct {
	stopped  bool
	cause    string
	closedBy string
	input    int64
}

func readSession(t testing.TB, pg *pgx.Conn, user string) sessionRow {
	t.Helper()
	var r sessionRow
	var stop *time.Time
	var cause, closedBy *string
	var in *int64
	if err := pg.QueryRow(context.Background(), `SELECT acctstoptime, acctterminatecause, closed_by, acctinputoctets
		FROM radacct WHERE username = $1`, user).Scan(&stop, &cause, &closedBy, &in); err != nil {
		t.Fatalf("session of %s: %v", user, err)
	}
	r.stopped = stop != nil
	if cause != nil {
		r.cause = *cause
	}
	if closedBy != nil {
		r.closedBy = *closedBy
	}
	if in != nil {
		r.input = *in
	}
	return r
}

// oneRouter is serve on a new database in which one router is
// registered, with what the tests read serve's database through, the
// router's NAS-IP-Address and its socket to serve.
type oneRouter struct {
	t      *testing.T
	srv    *testServer
	pg     *pgx.Conn
	nas    net.IP
	c      *net.UDPConn
	secret string
}

// serveOneRouter runs serve with one router, name at ip with secret.
func serveOneRouter(t *testing.T, name, ip, secret string) *oneRouter {
	t.Helper()
	dbURL := migratedDBWithRouter(t, name, ip, secret)
	srv := startServe(t, dbURL)
	return &oneRouter{t: t, srv: srv, pg: connectPG(t, dbURL), nas: net.ParseIP(ip), c: udpFrom(t, ip, srv.AcctAddr), secret: secret}
}

// packet is rulePacket from this router.
func (r *oneRouter) packet(status rfc2866.AcctStatusType, user, sid string, secs int, event time.Time, set func(*rad.Packet)) []byte {
	r.t.Helper()
	return rulePacket(r.t, r.secret, r.nas, status, user, sid, secs, event, set)
}

// send sends raws together and waits for every answer (sendTogether).
func (r *oneRouter) send(raws ...[]byte) {
	r.t.Helper()
	sendTogether(r.t, r.c, r.secret, raws...)
}

// reopened is serve's nettportal_accounting_reopened_total.
func (r *oneRouter) reopened() float64 {
	r.t.Helper()
	return scrape(r.t, r.srv.HTTPURL)["nettportal_accounting_reopened_total"]
}

func connectPG(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	pg, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })
	return pg
}

// A router that sends no interims (RouterOS's default) keeps its sessions
// open however long they stay silent, while a router seen sending
// interims gets its silent session closed as stale by the real sweep; an
// Interim from that session afterwards proves the close wrong and reopens
// it, counted on /metrics.
func TestSweepSparesInterimLessRouterThroughServe(t *testing.T) {
	const secret = "sw33p"
	dbURL := migratedDBWithRouter(t, "quiet", "127.0.0.31", secret)
	addRouter(t, dbURL, "talker", "127.0.0.32", secret)
	sweeps := make(chan int64, 64)
	// Sweeps every 100 ms; the test waits on them, never on the clock.
	srv := startServeTuned(t, dbURL, "127.0.0.1:0", "127.0.0.1:0",
		func(c *serveConfig) {
			c.onSweep = func(n int64, err error) {
				// A sweep cut off by the shutdown at cleanup is no failure.
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("stale sweep: %v", err)
				}
				select {
				case sweeps <- n:
				default:
				}
			}
		}, "--reconcile-interval", "100ms", "--api-poll-interval", "100ms")
	pg := connectPG(t, dbURL)
	quietNAS, talkerNAS := net.ParseIP("127.0.0.31"), net.ParseIP("127.0.0.32")
	quiet, talker := udpFrom(t, "127.0.0.31", srv.AcctAddr), udpFrom(t, "127.0.0.32", srv.AcctAddr)
	now := time.Now().Truncate(time.Second)
	// An hour of silence is far past the window (2 x 5 min interims + 1 min).
	hourAgo := now.Add(-time.Hour)
	sendTogether(t, quiet, secret,
		rulePacket(t, secret, quietNAS, rfc2866.AcctStatusType_Value_Start, "quiet-1", "81000001", -1, hourAgo, nil),
		rulePacket(t, secret, quietNAS, rfc2866.AcctStatusType_Value_Start, "quiet-2", "81000002", -1, hourAgo, nil))
	sendTogether(t, talker, secret,
		rulePacket(t, secret, talkerNAS, rfc2866.AcctStatusType_Value_Start, "silent", "82000001", -1, hourAgo, nil),
		rulePacket(t, secret, talkerNAS, rfc2866.AcctStatusType_Value_Start, "chatty", "82000002", -1, now.Add(-time.Minute), nil))
	sendTogether(t, talker, secret,
		rulePacket(t, secret, talkerNAS, rfc2866.AcctStatusType_Value_InterimUpdate, "chatty", "82000002", 60, now, nil))

	// Everything above was committed before its answer: the second sweep
	// from now started after it.
	for range len(sweeps) {
		<-sweeps
	}
	for i := range 2 {
		select {
		case <-sweeps:
		case <-time.After(10 * time.Second):
			t.Fatalf("sweep %d did not run within 10 s\n%s", i+1, srv.Log.String())
		}
	}
	for _, user := range []string{"quiet-1", "quiet-2"} {
		if r := readSession(t, pg, user); r.stopped {
			t.Errorf("%s, of a router that sends no interims, was closed (%s) after an hour of silence", user, r.closedBy)
		}
	}
	if r := readSession(t, pg, "silent"); !r.stopped || r.closedBy != "stale" || r.cause != "Lost-Service" {
		t.Errorf("silent session of a router that sends interims: %+v, want closed as stale", r)
	}
	if r := readSession(t, pg, "chatty"); r.stopped {
		t.Errorf("a session that just sent an interim was closed (%s)", r.closedBy)
	}
	var routers struct {
		Routers []struct {
			Name         string `json:"name"`
			InterimsSeen bool   `json:"interims_seen"`
		} `json:"routers"`
	}
	if code := tokenAPI(t, dbURL, srv, "noc", "viewer").do("GET", "/api/routers", nil, &routers); code != 200 {
		t.Fatalf("routers API: %d", code)
	}
	for _, r := range routers.Routers {
		if r.InterimsSeen != (r.Name == "talker") {
			t.Errorf("router %s: interims_seen %v", r.Name, r.InterimsSeen)
		}
	}

	// The silent session was alive after all: its Interim reopens it.
	sendTogether(t, talker, secret,
		rulePacket(t, secret, talkerNAS, rfc2866.AcctStatusType_Value_InterimUpdate, "silent", "82000001", 3600, now, nil))
	if r := readSession(t, pg, "silent"); r.stopped || r.closedBy != "" || r.input != 3600*1000 {
		t.Errorf("after its Interim the stale-closed session is %+v, want open with the Interim's counters", r)
	}
	if got := scrape(t, srv.HTTPURL)["nettportal_accounting_reopened_total"]; got != 1 {
		t.Errorf("/metrics nettportal_accounting_reopened_total = %v, want 1", got)
	}
}

// After a reboot the router flushes its queue: the new session's Start and
// the Accounting-On leave together, in the same second, and are sent
// again together. The session from before the reboot is closed as
// NAS-Reboot; the new one stays open, and its later Interims keep it so.
func TestAccountingOnSameSecondThroughServe(t *testing.T) {
	const secret = "r3boot"
	r := serveOneRouter(t, "rebooter", "127.0.0.41", secret)
	now := time.Now().Truncate(time.Second)
	r.send(r.packet(rfc2866.AcctStatusType_Value_Start, "before", "81000001", -1, now.Add(-time.Hour), nil))
	// RouterOS's session ids: the first hex digit changes at each boot.
	start := r.packet(rfc2866.AcctStatusType_Value_Start, "after", "91000001", -1, now, nil)
	accOn := r.packet(rfc2866.AcctStatusType_Value_AccountingOn, "", "", -1, now, nil)
	r.send(start, accOn)
	r.send(start, accOn) // the retransmission: answered again, applied once
	if s := readSession(t, r.pg, "before"); !s.stopped || s.cause != "NAS-Reboot" || s.closedBy != "nas-reboot" {
		t.Errorf("the session from before the reboot: %+v, want closed as NAS-Reboot", s)
	}
	if s := readSession(t, r.pg, "after"); s.stopped {
		t.Fatalf("the new boot's session was closed (%s, %s) in its own start second", s.cause, s.closedBy)
	}
	for i, secs := range []int{30, 90} {
		r.send(r.packet(rfc2866.AcctStatusType_Value_InterimUpdate, "after", "91000001", secs, now.Add(time.Duration(secs)*time.Second), nil))
		if s := readSession(t, r.pg, "after"); s.stopped || s.input != int64(secs)*1000 {
			t.Errorf("after Interim %d the new session is %+v, want open with its counters", i+1, s)
		}
	}
	if got := r.reopened(); got != 0 {
		t.Errorf("nettportal_accounting_reopened_total = %v: the new session was never closed, so nothing to reopen", got)
	}
}

// An Accounting-On (a stale one, retransmitted late) closes a session that
// is still alive; its next Interim, later than the close, reopens it and
// /metrics counts the reopening. A real Stop stays final.
func TestWrongInferredCloseReopenedThroughServe(t *testing.T) {
	const secret = "r3open"
	r := serveOneRouter(t, "flappy", "127.0.0.51", secret)
	now := time.Now().Truncate(time.Second)
	r.send(r.packet(rfc2866.AcctStatusType_Value_Start, "alive", "81000001", -1, now.Add(-10*time.Minute), nil))
	r.send(r.packet(rfc2866.AcctStatusType_Value_AccountingOn, "", "", -1, now.Add(-5*time.Minute), nil))
	if s := readSession(t, r.pg, "alive"); !s.stopped || s.closedBy != "nas-reboot" {
		t.Fatalf("the Accounting-On did not close the session: %+v", s)
	}
	if got := r.reopened(); got != 0 {
		t.Fatalf("reopened before any Interim: %v", got)
	}
	r.send(r.packet(rfc2866.AcctStatusType_Value_InterimUpdate, "alive", "81000001", 600, now, nil))
	if s := readSession(t, r.pg, "alive"); s.stopped || s.closedBy != "" || s.cause != "" || s.input != 600*1000 {
		t.Errorf("after a later Interim: %+v, want reopened with its counters", s)
	}
	if got := r.reopened(); got != 1 {
		t.Errorf("/metrics nettportal_accounting_reopened_total = %v, want 1", got)
	}
	// A real Stop is final: a later Interim changes nothing.
	r.send(r.packet(rfc2866.AcctStatusType_Value_Stop, "alive", "81000001", 601, now.Add(time.Second), func(p *rad.Packet) {
		rfc2866.AcctTerminateCause_Set(p, rfc2866.AcctTerminateCause_Value_UserRequest)
	}))
	r.send(r.packet(rfc2866.AcctStatusType_Value_InterimUpdate, "alive", "81000001", 660, now.Add(time.Minute), nil))
	if s := readSession(t, r.pg, "alive"); !s.stopped || s.closedBy != "stop" {
		t.Errorf("after Stop and a later Interim: %+v, want closed by the Stop", s)
	}
	if got := r.reopened(); got != 1 {
		t.Errorf("/metrics nettportal_accounting_reopened_total = %v after a Stop, want still 1", got)
	}
}

// quarantineFixture runs serve with a database that refuses every row of
// user "refused" (a site's own CHECK constraint: a value PostgreSQL will
// not store, whatever decode did) and sends, from router core-q, a good
// Start and a refused Start and Interim, each refused one twice: the
// second copy with another Identifier and Acct-Delay-Time, as a NAS
// retransmits once the dedupe window has passed.
func quarantineFixture(t *testing.T) (srv *testServer, dbURL string) {
	t.Helper()
	const secret = "qu4rantine"
	dbURL = migratedDBWithRouter(t, "core-q", "127.0.0.61", secret)
	pg := connectPG(t, dbURL)
	if _, err := pg.Exec(context.Background(), `ALTER TABLE radacct ADD CONSTRAINT site_refuses CHECK (username <> 'refused')`); err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, dbURL)
	nas := net.ParseIP("127.0.0.61")
	c := udpFrom(t, "127.0.0.61", srv.AcctAddr)
	now := time.Now().Truncate(time.Second)
	delayed := func(p *rad.Packet) { rfc2866.AcctDelayTime_Set(p, 12) }
	for _, set := range []func(*rad.Packet){nil, delayed} {
		sendTogether(t, c, secret,
			rulePacket(t, secret, nas, rfc2866.AcctStatusType_Value_Start, "fine", "81000001", -1, now, nil),
			rulePacket(t, secret, nas, rfc2866.AcctStatusType_Value_Start, "refused", "81000002", -1, now, set),
			rulePacket(t, secret, nas, rfc2866.AcctStatusType_Value_InterimUpdate, "refused", "81000002", 60, now.Add(time.Minute), set))
	}
	if r := readSession(t, pg, "fine"); r.stopped {
		t.Fatalf("the good session: %+v", r)
	}
	return srv, dbURL
}

// Refused records are answered, kept once each with their copies
// counted, counted on /metrics, and listed by the API for the routers
// page.
func TestQuarantineThroughServe(t *testing.T) {
	srv, dbURL := quarantineFixture(t)
	m := scrape(t, srv.HTTPURL)
	if got := m[`nettportal_radius_packets_total{outcome="quarantined",type="unknown"}`]; got != 4 {
		t.Errorf("/metrics quarantined = %v, want 4 (every copy is a packet)", got)
	}
	api := tokenAPI(t, dbURL, srv, "noc", "viewer")
	var q struct {
		Records []struct {
			Router        string `json:"router"`
			Status        string `json:"status"`
			Username      string `json:"username"`
			AcctSessionID string `json:"acct_session_id"`
			Repeats       int64  `json:"repeats"`
			SQLState      string `json:"sqlstate"`
			Error         string `json:"error"`
			Source        string `json:"source"`
		} `json:"records"`
	}
	api.mustGet("/api/quarantine?router=core-q", &q)
	if len(q.Records) != 2 {
		t.Fatalf("%d quarantined records, want 2 (the Start and the Interim, each sent twice): %+v", len(q.Records), q.Records)
	}
	seen := map[string]bool{}
	for _, r := range q.Records {
		seen[r.Status] = true
		if r.Router != "core-q" || r.Username != "refused" || r.AcctSessionID != "81000002" || r.Repeats != 2 ||
			r.SQLState != "23514" || !strings.Contains(r.Error, "site_refuses") || !strings.HasPrefix(r.Source, "127.0.0.61:") {
			t.Errorf("quarantined record %+v", r)
		}
	}
	if !seen["Start"] || !seen["Interim-Update"] {
		t.Errorf("quarantined types %v", seen)
	}
	var routers struct {
		Routers []struct {
			Quarantined int64 `json:"quarantined_records"`
		} `json:"routers"`
	}
	if code := api.do("GET", "/api/routers", nil, &routers); code != 200 || len(routers.Routers) != 1 || routers.Routers[0].Quarantined != 2 {
		t.Errorf("routers API: %d %+v, want quarantined_records 2", code, routers)
	}
}

// The routers page opens a router's quarantined records from its count:
// type, user, session id, copies, error; the packet for admins.
func TestBrowserQuarantineDialog(t *testing.T) {
	b := newBrowser(t)
	srv, dbURL := quarantineFixture(t)
	addUIUsers(t, dbURL)
	tb := b.newTab(t, "quarantine")
	tb.login(srv.HTTPURL, "admin", uiAdminPass)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="nav-routers"]`)))
	tb.waitJS("the quarantined count", `(document.querySelector('[data-testid="show-quarantine"]') || {}).textContent === '2 quarantined'`, 15*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="show-quarantine"]`)))
	tb.waitJS("the quarantine dialog's rows", `document.querySelectorAll('[data-testid="quarantine-dialog"] [data-testid="quarantine-row"]').length === 2`, 10*time.Second)
	rows := mustEval[[]string](tb, `[...document.querySelectorAll('[data-testid="quarantine-row"]')].map((r) => [...r.cells].slice(1, 5).map((c) => c.textContent).join(' '))`)
	for _, r := range rows {
		if r != "Start refused 81000002 2" && r != "Interim-Update refused 81000002 2" {
			t.Errorf("dialog row %q", r)
		}
	}
	if errs := mustEval[int](tb, `[...document.querySelectorAll('[data-testid="quarantine-row"]')].filter((r) => r.textContent.includes('SQLSTATE 23514') && r.querySelector('details .hex')).length`); errs != 2 {
		t.Errorf("%d rows with the error's SQLSTATE and the packet, want 2", errs)
	}
	tb.screenshot("routers-quarantine-1440.png")
	checkPageErrors(t, b)
}

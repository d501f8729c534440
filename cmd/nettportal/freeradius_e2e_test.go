package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc3162"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/freeradius/freeradiustest"
	"github.com/nettportal/nettportal/radius/radiustest"
	"github.com/nettportal/nettportal/sim"
)

// stockQuery returns a query of the installed FreeRADIUS queries.conf as
// rlm_sql would run it for user (backslash-newline joined, the accounting
// table and the user substituted).
func stockQuery(t *testing.T, name, user string) string {
	t.Helper()
	b, err := os.ReadFile(freeradiustest.QueriesFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^` + name + ` = "((?:[^"\\]|\\.)*)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s not in %s", name, freeradiustest.QueriesFile)
	}
	q := strings.ReplaceAll(string(m[1]), "\\\n", "\n")
	q = strings.ReplaceAll(q, "${acct_table1}", "radacct")
	q = strings.ReplaceAll(q, "%{SQL-User-Name}", strings.ReplaceAll(user, "'", "''"))
	if strings.Contains(q, "%{") || strings.Contains(q, "${") {
		t.Fatalf("%s: unsubstituted expansion left: %s", name, q)
	}
	return q
}

// sendFrom sends an Accounting-Request from src (a router's address) to dst
// and waits for its answer, retransmitting as a router would.
func sendFrom(t *testing.T, src netip.Addr, dst, secret string, req radiustest.Request) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sendAcct(t, conn, secret, req)
}

// FreeRADIUS 3.2 (stock config, its sql module on serve's database) takes
// the accounting of a router that is also registered in serve: its
// sessions are listed with their router, disconnected through the API
// (single and bulk) via the router's CoA port, counted by FreeRADIUS's own
// simul_count_query and by usage, and closed by that router's Accounting-On
// sent to serve. A
// session serve started and FreeRADIUS stopped is one row, counted in
// usage with the Stop's counters.
func TestFreeRADIUSBesideServe(t *testing.T) {
	freeradiustest.Require(t)
	ctx := context.Background()
	dbURL := migratedDB(t)
	db := openTestDB(t, dbURL)

	const secret = "fr-beside"
	rcfg := sim.RouterConfig{Name: "fr-01", Addr: netip.MustParseAddr("127.0.83.11"), Secret: secret, APIPort: -1,
		Interim: time.Hour, Sessions: 3, Seed: 13, Server: "127.0.0.1:9"}
	probe, err := sim.New(rcfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	nr := probe.NASRouter()
	if err := db.CreateRouter(ctx, &nr); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dbURL, "--reconcile-interval", "1h", "--coa-timeout", "500ms", "--coa-retries", "2")
	api := tokenAPI(t, dbURL, srv, "ops", "operator")

	// FreeRADIUS reads its clients from the same nas table.
	fr := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: dbURL, ReadClients: true})
	rcfg.Server = fr.AcctAddr().String()
	router, err := sim.New(rcfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Close)
	if err := router.AwaitAllStarted(wait); err != nil {
		t.Fatalf("FreeRADIUS did not acknowledge the Starts: %v\n%s", err, fr.Logs())
	}
	router.Tick() // an interim round with counters, to FreeRADIUS
	if err := router.AwaitIdle(wait); err != nil {
		t.Fatal(err)
	}
	sessions := router.Sessions()
	if len(sessions) != 3 {
		t.Fatalf("router has %d sessions", len(sessions))
	}
	var written int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE nasipaddress = '127.0.83.11' AND acctstoptime IS NULL
		AND mark_day IS NULL AND acctinputoctets > 0`).Scan(&written); err != nil || written != 3 {
		t.Fatalf("%d open rows written by FreeRADIUS with interim counters (%v)", written, err)
	}

	t.Run("listed with their router", func(t *testing.T) {
		var page struct {
			Sessions []apiSession `json:"sessions"`
		}
		if code := api.do("GET", "/api/sessions?limit=100&router=fr-01", nil, &page); code != 200 || len(page.Sessions) != 3 {
			t.Fatalf("%d: %+v", code, page.Sessions)
		}
		for _, s := range page.Sessions {
			if s.Router != "fr-01" {
				t.Errorf("session %+v without its router", s)
			}
		}
	})

	t.Run("FreeRADIUS's simul_count_query counts them", func(t *testing.T) {
		for _, s := range sessions {
			var n int
			if err := db.Pool.QueryRow(ctx, stockQuery(t, "simul_count_query", s.Username)).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: simul_count_query = %d (%v)", s.Username, n, err)
			}
		}
	})

	t.Run("usage includes their bytes", func(t *testing.T) {
		got := apiUsage(t, api)
		for _, s := range sessions {
			if w := [2]int64{int64(s.InputOctets), int64(s.OutputOctets)}; got[s.Username] != w {
				t.Errorf("%s: usage %v, the router reported %v", s.Username, got[s.Username], w)
			}
		}
	})

	t.Run("disconnect reaches the router's CoA port", func(t *testing.T) {
		var page struct {
			Sessions []apiSession `json:"sessions"`
		}
		api.do("GET", "/api/sessions?limit=100&router=fr-01&q="+sessions[0].Username, nil, &page)
		if len(page.Sessions) != 1 {
			t.Fatalf("sessions of %s: %+v", sessions[0].Username, page.Sessions)
		}
		var res controlResult
		if code := api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", page.Sessions[0].ID), nil, &res); code != 200 ||
			!res.OK || res.Method != "radius" || res.Result != "ack" {
			t.Fatalf("disconnect: %d %+v", code, res)
		}
		if info, _ := router.Session(sessions[0].Username); info.Up {
			t.Fatal("the session is still up on the router")
		}
		// The router's Stop goes to FreeRADIUS, which closes the row.
		if err := router.AwaitIdle(wait); err != nil {
			t.Fatal(err)
		}
		var open bool
		var cause string
		if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime IS NULL, coalesce(acctterminatecause, '') FROM radacct
			WHERE username = $1`, sessions[0].Username).Scan(&open, &cause); err != nil || open || cause != nettportal.CauseAdminReset {
			t.Fatalf("row open=%v cause=%q (%v)", open, cause, err)
		}
	})

	t.Run("bulk disconnect", func(t *testing.T) {
		var page struct {
			Sessions []apiSession `json:"sessions"`
		}
		api.do("GET", "/api/sessions?limit=100&router=fr-01&q="+sessions[1].Username, nil, &page)
		if len(page.Sessions) != 1 {
			t.Fatalf("sessions of %s: %+v", sessions[1].Username, page.Sessions)
		}
		var out struct {
			Results []controlResult `json:"results"`
		}
		if code := api.do("POST", "/api/disconnect", map[string]any{"ids": []int64{page.Sessions[0].ID}}, &out); code != 200 ||
			len(out.Results) != 1 || !out.Results[0].OK || out.Results[0].Method != "radius" {
			t.Fatalf("bulk disconnect: %d %+v", code, out.Results)
		}
		if err := router.AwaitIdle(wait); err != nil {
			t.Fatal(err)
		}
		var open bool
		if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime IS NULL FROM radacct WHERE username = $1`, sessions[1].Username).Scan(&open); err != nil || open {
			t.Fatalf("row open=%v (%v)", open, err)
		}
	})

	t.Run("a session serve started and FreeRADIUS stopped", func(t *testing.T) {
		pkt := func(status rfc2866.AcctStatusType, in, out uint32) radiustest.Request {
			r := radiustest.Request{Status: status, User: "mixed", SessionID: "8a000001", NASIP: net.IP(rcfg.Addr.AsSlice()),
				NASIdentifier: "fr-01", NASPort: 0x8a000001, NASPortID: "vlan100"}
			if status != rfc2866.AcctStatusType_Value_Start {
				r.Counters = &radiustest.Counters{SessionTime: 60, In: in, Out: out}
			}
			if status == rfc2866.AcctStatusType_Value_Stop {
				r.Set = func(p *rad.Packet) {
					rfc2866.AcctTerminateCause_Set(p, rfc2866.AcctTerminateCause_Value_UserRequest)
				}
			}
			return r
		}
		sendFrom(t, rcfg.Addr, srv.AcctAddr, secret, pkt(rfc2866.AcctStatusType_Value_Start, 0, 0))
		sendFrom(t, rcfg.Addr, srv.AcctAddr, secret, pkt(rfc2866.AcctStatusType_Value_InterimUpdate, 100, 1000))
		sendFrom(t, rcfg.Addr, fr.AcctAddr().String(), secret, pkt(rfc2866.AcctStatusType_Value_Stop, 500, 5000))
		var rows int
		var open bool
		var in, out int64
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), bool_or(acctstoptime IS NULL), max(acctinputoctets), max(acctoutputoctets)
			FROM radacct WHERE acctsessionid = '8a000001'`).Scan(&rows, &open, &in, &out); err != nil ||
			rows != 1 || open || in != 500 || out != 5000 {
			t.Fatalf("%d rows, open %v, counters %d/%d (%v): FreeRADIUS's Stop did not land on serve's row", rows, open, in, out, err)
		}
		if got := apiUsage(t, api)["mixed"]; got != [2]int64{500, 5000} {
			t.Errorf("usage %v, want the Stop's 500/5000", got)
		}
	})

	t.Run("a session FreeRADIUS started under a NAS-IPv6-Address continues here", func(t *testing.T) {
		// The router is registered by its IPv4 source; its packets also
		// name an IPv6 address no nas row covers, which FreeRADIUS stores
		// as nasipaddress and hashes into acctuniqueid.
		pkt := func(status rfc2866.AcctStatusType, in uint32) radiustest.Request {
			req := radiustest.Request{Status: status, User: "v6named", SessionID: "8a000006",
				NASIP: net.IP(rcfg.Addr.AsSlice()), NASIdentifier: "fr-01", NASPortID: "vlan100",
				Set: func(p *rad.Packet) { rfc3162.NASIPv6Address_Set(p, net.ParseIP("2001:db8:83::11")) }}
			if status != rfc2866.AcctStatusType_Value_Start {
				req.Counters = &radiustest.Counters{SessionTime: 60, In: in, Out: in}
			}
			return req
		}
		sendFrom(t, rcfg.Addr, fr.AcctAddr().String(), secret, pkt(rfc2866.AcctStatusType_Value_Start, 0))
		// Answered only when stored: a record refused as another router's is not.
		sendFrom(t, rcfg.Addr, srv.AcctAddr, secret, pkt(rfc2866.AcctStatusType_Value_InterimUpdate, 700))
		var rows int
		var nasID *int64
		var nas string
		var in int64
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), max(nas_id), max(host(nasipaddress)), max(acctinputoctets)
			FROM radacct WHERE acctsessionid = '8a000006'`).Scan(&rows, &nasID, &nas, &in); err != nil ||
			rows != 1 || nasID == nil || *nasID != nr.ID || nas != "2001:db8:83::11" || in != 700 {
			t.Fatalf("%d rows, router %v, nasipaddress %s, input %d (%v): want FreeRADIUS's row taken over by router %d",
				rows, nasID, nas, in, err, nr.ID)
		}
	})

	t.Run("Accounting-On through serve closes them", func(t *testing.T) {
		// A reboot takes seconds: sessions that started in the same second
		// as an Accounting-On may be the new boot's and are kept.
		sendFrom(t, rcfg.Addr, srv.AcctAddr, secret, radiustest.Request{Status: rfc2866.AcctStatusType_Value_AccountingOn,
			Event: time.Now().Add(2 * time.Second), NASIP: net.IP(rcfg.Addr.AsSlice()), NASIdentifier: "fr-01"})
		var open int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE nas_id = $1 AND acctstoptime IS NULL`, nr.ID).Scan(&open); err != nil || open != 0 {
			t.Fatalf("%d sessions of the router still open after Accounting-On (%v)", open, err)
		}
		var closedBy string
		if err := db.Pool.QueryRow(ctx, `SELECT coalesce(closed_by, '') FROM radacct WHERE username = $1`, sessions[2].Username).Scan(&closedBy); err != nil || closedBy != "nas-reboot" {
			t.Errorf("%s closed by %q (%v), want nas-reboot", sessions[2].Username, closedBy, err)
		}
		for _, s := range sessions {
			var n int
			if err := db.Pool.QueryRow(ctx, stockQuery(t, "simul_count_query", s.Username)).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: simul_count_query = %d after Accounting-On (%v)", s.Username, n, err)
			}
		}
		// However each was closed, its final counters are in usage.
		got := apiUsage(t, api)
		for _, s := range sessions {
			var w [2]int64
			if err := db.Pool.QueryRow(ctx, `SELECT acctinputoctets, acctoutputoctets FROM radacct WHERE username = $1`, s.Username).Scan(&w[0], &w[1]); err != nil {
				t.Fatal(err)
			}
			if w[0] == 0 || got[s.Username] != w {
				t.Errorf("%s: usage %v after the close, the row has %v", s.Username, got[s.Username], w)
			}
		}
	})
}

// apiUsage sums GET /api/usage from yesterday to tomorrow per username
// (input, output).
func apiUsage(t *testing.T, api tokenClient) map[string][2]int64 {
	t.Helper()
	now := time.Now().UTC()
	var got struct {
		Usage []struct {
			Username     string `json:"username"`
			InputOctets  int64  `json:"input_octets"`
			OutputOctets int64  `json:"output_octets"`
		} `json:"usage"`
	}
	path := "/api/usage?from=" + now.AddDate(0, 0, -1).Format(time.DateOnly) + "&to=" + now.AddDate(0, 0, 1).Format(time.DateOnly)
	api.mustGet(path, &got)
	m := map[string][2]int64{}
	for _, u := range got.Usage {
		v := m[u.Username]
		m[u.Username] = [2]int64{v[0] + u.InputOctets, v[1] + u.OutputOctets}
	}
	return m
}

// Two routers known only through a FreeRADIUS CIDR client row
// (127.0.84.0/24, its CoA port in FreeRADIUS's `ports` column) send their
// accounting to FreeRADIUS: serve lists their sessions under the range,
// and a disconnect (single, bulk across both) goes to each session's own
// NAS address with the range's secret. A session the NAS does not have is
// answered with what to do, as a range has no RouterOS API to fall back to.
func TestFreeRADIUSRangeNASDisconnect(t *testing.T) {
	freeradiustest.Require(t)
	ctx := context.Background()
	dbURL := migratedDB(t)
	db := openTestDB(t, dbURL)

	const secret, coaPort = "fr-range", 13799
	var rangeID int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, secret, ports) VALUES ('127.0.84.0/24', 'range-84', $1, $2)
		RETURNING id`, secret, coaPort).Scan(&rangeID); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dbURL, "--reconcile-interval", "1h", "--coa-timeout", "500ms", "--coa-retries", "1")
	api := tokenAPI(t, dbURL, srv, "ops", "operator")
	fr := freeradiustest.Start(t, freeradiustest.Config{DatabaseURL: dbURL, ReadClients: true})

	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var routers []*sim.Router
	for i, addr := range []string{"127.0.84.11", "127.0.84.12"} {
		r, err := sim.New(sim.RouterConfig{Name: fmt.Sprintf("nas-%d", i), Addr: netip.MustParseAddr(addr), Secret: secret,
			APIPort: -1, CoAPort: coaPort, Interim: time.Hour, Sessions: 2, Seed: int64(84 + i), Server: fr.AcctAddr().String()}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		if err := r.AwaitAllStarted(wait); err != nil {
			t.Fatalf("FreeRADIUS did not acknowledge %s's Starts: %v\n%s", addr, err, fr.Logs())
		}
		routers = append(routers, r)
	}
	listed := func() []apiSession {
		var page struct {
			Sessions []apiSession `json:"sessions"`
		}
		api.mustGet("/api/sessions?limit=100&router=range-84", &page)
		return page.Sessions
	}
	byUser := map[string]apiSession{}
	for _, s := range listed() {
		if s.Router != "range-84" {
			t.Errorf("session %+v not under its range", s)
		}
		byUser[s.Username] = s
	}
	if len(byUser) != 4 {
		t.Fatalf("%d sessions under the range, want 4: %+v", len(byUser), byUser)
	}
	closedOnRouter := func(r *sim.Router, user string) {
		t.Helper()
		if info, _ := r.Session(user); info.Up {
			t.Fatalf("%s is still up on %s", user, r.CoAAddr())
		}
		// The Stop goes to FreeRADIUS, which closes the row.
		if err := r.AwaitIdle(wait); err != nil {
			t.Fatal(err)
		}
		var open bool
		if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime IS NULL FROM radacct WHERE username = $1`, user).Scan(&open); err != nil || open {
			t.Fatalf("%s: row open=%v (%v)", user, open, err)
		}
	}

	t.Run("single", func(t *testing.T) {
		user := routers[0].Sessions()[0].Username
		var res controlResult
		if code := api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", byUser[user].ID), nil, &res); code != 200 ||
			!res.OK || res.Method != "radius" || res.Result != "ack" {
			t.Fatalf("disconnect: %d %+v", code, res)
		}
		closedOnRouter(routers[0], user)
	})

	t.Run("bulk across the range's NASes", func(t *testing.T) {
		var out struct {
			Results []controlResult `json:"results"`
		}
		if code := api.do("POST", "/api/disconnect", map[string]any{"router": "range-84"}, &out); code != 200 || len(out.Results) != 3 {
			t.Fatalf("bulk disconnect: %d %+v", code, out.Results)
		}
		for _, r := range out.Results {
			if !r.OK || r.Result != "ack" {
				t.Errorf("bulk result %+v", r)
			}
		}
		for _, r := range routers {
			for _, s := range r.Sessions() {
				closedOnRouter(r, s.Username)
			}
		}
	})

	t.Run("a session the NAS does not have", func(t *testing.T) {
		var id int64
		if err := db.Pool.QueryRow(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime)
			VALUES ('84ghost', 'ghost-84', 'ghost', '127.0.84.12', now(), now()) RETURNING radacctid`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		var res controlResult
		if code := api.do("POST", fmt.Sprintf("/api/sessions/%d/disconnect", id), nil, &res); code != 200 || res.OK || res.Result != "nak" ||
			res.ErrorCause != 503 || !strings.Contains(res.Detail, `CIDR range nas row "range-84"`) || !strings.Contains(res.Detail, "router add") {
			t.Fatalf("disconnect: %d %+v", code, res)
		}
	})
	// The range is untouched: still FreeRADIUS's client row, still no router.
	var nasname string
	if err := db.Pool.QueryRow(ctx, `SELECT nasname FROM nas WHERE id = $1`, rangeID).Scan(&nasname); err != nil || nasname != "127.0.84.0/24" {
		t.Errorf("range row %q (%v)", nasname, err)
	}
}

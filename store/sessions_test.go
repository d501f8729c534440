package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// liveSession describes one session for seedLive.
type liveSession struct {
	router   *nettportal.Router
	user, ip string
	start    time.Duration // before now
	in, out  uint64        // octets at the last interim
	din      uint64        // octets during the last 60 s (the rate)
	dout     uint64
	stopped  bool
}

// seedLive writes sessions through the real accounting path: a Start, an
// interim 60 s before the last one, the last interim, and a Stop if asked.
func seedLive(t *testing.T, db *store.DB, sessions []liveSession) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	var batch []nettportal.AccountingRecord
	for i, s := range sessions {
		sid := fmt.Sprintf("%08x", 0x81000000+i)
		base := nettportal.AccountingRecord{
			RouterID: s.router.ID, UniqueID: nettportal.AcctUniqueID(s.user, sid, s.router.IP.String(), s.router.Name, "", ""),
			SessionID: sid, Username: s.user, NASIP: s.router.IP, NASIdent: s.router.Name,
			CallingStation: fmt.Sprintf("AA:BB:CC:00:00:%02X", i), FramedIP: netip.MustParseAddr(s.ip),
		}
		start := base
		start.Status, start.EventTime = nettportal.StatusStart, now.Add(-s.start)
		prev := withCounters(base, uint32((s.start-60*time.Second)/time.Second), s.in-s.din, s.out-s.dout)
		prev.Status, prev.EventTime = nettportal.StatusInterimUpdate, now.Add(-60*time.Second)
		last := withCounters(base, uint32(s.start/time.Second), s.in, s.out)
		last.Status, last.EventTime = nettportal.StatusInterimUpdate, now
		batch = append(batch, start, prev, last)
		if s.stopped {
			st := last
			st.Status, st.EventTime, st.TerminateCause = nettportal.StatusStop, now.Add(time.Second), "User-Request"
			batch = append(batch, st)
		}
	}
	if err := db.ApplyAccounting(ctx, batch); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	rows, err := db.Pool.Query(ctx, "SELECT username, radacctid FROM radacct")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		var id int64
		if err := rows.Scan(&u, &id); err != nil {
			t.Fatal(err)
		}
		ids[u] = id
	}
	return ids
}

func mustRouter(t *testing.T, db *store.DB, name, ip string) *nettportal.Router {
	t.Helper()
	r := &nettportal.Router{Name: name, IP: netip.MustParseAddr(ip), Secret: "s"}
	mustCreateRouters(t, db, r)
	return r
}

// mustOpenWithRouters is storetest.MustOpenDB with rs created in it.
func mustOpenWithRouters(t *testing.T, rs ...*nettportal.Router) *store.DB {
	t.Helper()
	db := storetest.MustOpenDB(t)
	mustCreateRouters(t, db, rs...)
	return db
}

// mustCreateRouters creates rs in db (their IDs are set).
func mustCreateRouters(t *testing.T, db *store.DB, rs ...*nettportal.Router) {
	t.Helper()
	for _, r := range rs {
		if err := db.CreateRouter(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func usernames(p nettportal.SessionPage) string {
	var out []string
	for _, s := range p.Sessions {
		out = append(out, s.Username)
	}
	return strings.Join(out, ",")
}

func TestSessionsFilterSortTotals(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1 := mustRouter(t, db, "core-1", "127.0.0.11")
	r2 := mustRouter(t, db, "edge-2", "127.0.0.12")
	ids := seedLive(t, db, []liveSession{
		{router: r1, user: "alice", ip: "100.64.0.10", start: 3 * time.Hour, in: 1000e6, out: 9000e6, din: 7.5e6, dout: 75e6},
		{router: r1, user: "bob", ip: "100.64.1.20", start: 2 * time.Hour, in: 3000e6, out: 1000e6, din: 750e3, dout: 150e6},
		{router: r2, user: "carol", ip: "100.65.0.30", start: 1 * time.Hour, in: 2000e6, out: 5000e6, din: 15e6, dout: 7.5e6},
		{router: r2, user: "dave", ip: "100.65.0.40", start: 4 * time.Hour, in: 500e6, out: 500e6, din: 0, dout: 0, stopped: true},
	})
	if _, err := db.Pool.Exec(ctx, `INSERT INTO customers (name, username, profile) VALUES
		('Zed Hansen', 'alice', 'gold'), ('Anna Berg', 'bob', '')`); err != nil {
		t.Fatal(err)
	}

	all, err := db.Sessions(ctx, nettportal.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := usernames(all); got != "carol,bob,alice" {
		t.Errorf("default page (open, newest first) = %s", got)
	}
	wantStats := nettportal.SessionStats{Sessions: 3, InputOctets: 6000e6, OutputOctets: 15000e6,
		InputBps: (7.5e6 + 750e3 + 15e6) * 8 / 60, OutputBps: (75e6 + 150e6 + 7.5e6) * 8 / 60}
	if all.Total != 3 || all.Stats != wantStats {
		t.Errorf("total %d stats %+v, want 3 %+v", all.Total, all.Stats, wantStats)
	}
	a := all.Sessions[2]
	if a.Customer != "Zed Hansen" || a.Profile != "gold" || a.Router != "core-1" || a.RouterID != r1.ID ||
		a.IP != netip.MustParseAddr("100.64.0.10") || a.InputBps != 1e6 || a.OutputBps != 10e6 ||
		a.MAC != "AA:BB:CC:00:00:00" || a.ID != ids["alice"] {
		t.Errorf("alice = %+v", a)
	}

	filters := []struct {
		name string
		f    nettportal.SessionFilter
		want string
	}{
		{"router by name", nettportal.SessionFilter{Router: "edge-2"}, "carol"},
		{"router by id", nettportal.SessionFilter{Router: fmt.Sprint(r1.ID), Sort: "username"}, "alice,bob"},
		{"unknown router", nettportal.SessionFilter{Router: "nope"}, ""},
		{"username substring", nettportal.SessionFilter{Query: "ARO"}, "carol"},
		{"customer name", nettportal.SessionFilter{Query: "berg"}, "bob"},
		{"like metacharacters are literal", nettportal.SessionFilter{Query: "a%"}, ""},
		{"ip", nettportal.SessionFilter{Query: "100.64.1.20"}, "bob"},
		{"prefix", nettportal.SessionFilter{Query: "100.64.0.0/16", Sort: "ip"}, "alice,bob"},
		{"dotted prefix", nettportal.SessionFilter{Query: "100.65"}, "carol"},
		{"ids", nettportal.SessionFilter{IDs: []int64{ids["alice"], ids["dave"]}}, "alice"},
		{"closed included", nettportal.SessionFilter{Closed: true, Sort: "username"}, "alice,bob,carol,dave"},
		{"limit offset", nettportal.SessionFilter{Sort: "username", Limit: 1, Offset: 1}, "bob"},
	}
	for _, tc := range filters {
		p, err := db.Sessions(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := usernames(p); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if p, _ := db.Sessions(ctx, nettportal.SessionFilter{Router: "core-1", Limit: 1}); p.Total != 2 || p.Stats.InputOctets != 4000e6 {
		t.Errorf("router totals: %d %+v", p.Total, p.Stats)
	}

	// Ties go by radacctid, which follows the batch's internal order.
	tie := func(a, b string) string {
		if ids[a] > ids[b] {
			a, b = b, a
		}
		return a + "," + b
	}
	sorts := map[string]string{
		"username":      "alice,bob,carol",
		"customer":      "bob,alice,carol", // Anna Berg, Zed Hansen, none last
		"router":        tie("alice", "bob") + ",carol",
		"ip":            "alice,bob,carol",
		"profile":       tie("bob", "carol") + ",alice", // '' < gold
		"started_at":    "alice,bob,carol",
		"uptime":        "carol,bob,alice",
		"input_octets":  "alice,carol,bob",
		"output_octets": "bob,carol,alice",
		"input_bps":     "bob,alice,carol",
		"output_bps":    "carol,alice,bob",
	}
	for col, want := range sorts {
		p, err := db.Sessions(ctx, nettportal.SessionFilter{Sort: col})
		if err != nil {
			t.Fatalf("sort %s: %v", col, err)
		}
		if got := usernames(p); got != want {
			t.Errorf("sort %s asc = %s, want %s", col, got, want)
		}
		p, err = db.Sessions(ctx, nettportal.SessionFilter{Sort: col, Order: "desc"})
		if err != nil {
			t.Fatalf("sort %s desc: %v", col, err)
		}
		if col == "customer" {
			continue // empty stays last in both directions
		}
		// Descending reverses everything, ties included (radacctid DESC).
		rev := strings.Split(want, ",")
		sort.SliceStable(rev, func(i, j int) bool { return i > j })
		if got := usernames(p); got != strings.Join(rev, ",") {
			t.Errorf("sort %s desc = %s, want %s", col, got, strings.Join(rev, ","))
		}
	}

	for _, bad := range []nettportal.SessionFilter{{Sort: "secret"}, {Order: "up"}, {Limit: -1}, {Limit: 5000}, {Offset: -3}} {
		if _, err := db.Sessions(ctx, bad); !errors.Is(err, nettportal.ErrInvalid) {
			t.Errorf("%+v: err %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSessionDetailAndSamples(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1 := mustRouter(t, db, "core-1", "127.0.0.11")
	ids := seedLive(t, db, []liveSession{
		{router: r1, user: "dave", ip: "100.65.0.40", start: time.Hour, in: 500e6, out: 500e6, stopped: true},
	})
	s, err := db.Session(ctx, ids["dave"])
	if err != nil {
		t.Fatal(err)
	}
	if s.Open() || s.TerminateCause != "User-Request" || s.ClosedBy != "stop" || s.InputBps != 0 || s.Router != "core-1" {
		t.Errorf("closed session = %+v", s)
	}
	attrs, err := db.SessionAttributes(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(attrs["acctterminatecause"]) != `"User-Request"` || string(attrs["callingstationid"]) != `"AA:BB:CC:00:00:00"` ||
		string(attrs["acctinputoctets"]) != fmt.Sprint(s.InputOctets) {
		t.Errorf("attributes = %s", attrs)
	}
	if _, err := db.Session(ctx, 999999); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("missing session: %v", err)
	}
	if _, err := db.SessionSamples(ctx, 999999); !errors.Is(err, nettportal.ErrNotFound) {
		t.Errorf("samples of missing session: %v", err)
	}
	at := time.Now().Truncate(time.Second)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO session_samples VALUES ($1, $2, 0, 0), ($1, $3, 7500000, 15000000)`,
		s.UniqueID, at.Add(-time.Minute), at); err != nil {
		t.Fatal(err)
	}
	pts, err := db.SessionSamples(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].InputBps != 0 || pts[1].InputBps != 1e6 || pts[1].OutputBps != 2e6 || !pts[1].At.Equal(at) {
		t.Errorf("samples = %+v", pts)
	}
}

// Rows NettPortal did not write (a FreeRADIUS on the same table, an instance
// on the previous binary, a migration) carry no rate: they list with 0, and
// a row that an older schema left NULL does too.
func TestSessionsListRowsOthersWrote(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r := mustRouter(t, db, "core-1", "127.0.0.11")
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id,
		acctstarttime, acctupdatetime, acctinputoctets, acctoutputoctets)
		VALUES ('81000001', 'freeradius-row', 'erin', '127.0.0.11', $1, now() - interval '1 hour', now(), 100, 200)`, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id,
		acctstarttime, input_bps, output_bps) VALUES ('81000002', 'null-rate-row', 'frank', '127.0.0.11', $1, now(), NULL, NULL)`, r.ID); err != nil {
		t.Fatal(err)
	}
	for _, sort := range []string{"", "output_bps", "input_bps"} {
		page, err := db.Sessions(ctx, nettportal.SessionFilter{Sort: sort})
		if err != nil {
			t.Fatalf("sort %q: %v", sort, err)
		}
		if page.Total != 2 || len(page.Sessions) != 2 {
			t.Fatalf("sort %q: %d rows of %d, want 2", sort, len(page.Sessions), page.Total)
		}
		for _, s := range page.Sessions {
			if s.InputBps != 0 || s.OutputBps != 0 {
				t.Errorf("sort %q: %s has rate %d/%d, want 0", sort, s.Username, s.InputBps, s.OutputBps)
			}
		}
		if page.Stats.InputBps != 0 || page.Stats.OutputBps != 0 || page.Stats.InputOctets != 100 {
			t.Errorf("sort %q: stats %+v", sort, page.Stats)
		}
	}
	var def string
	if err := db.Pool.QueryRow(ctx, `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
		WHERE adrelid = 'radacct'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'radacct'::regclass AND attname = 'input_bps')`).Scan(&def); err != nil || def != "0" {
		t.Errorf("input_bps default %q (%v), want 0", def, err)
	}
}

package routeros_test

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/routeros"
	"github.com/nettportal/nettportal/routeros/routerostest"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// fixture is one router with a fake RouterOS API, registered in a real
// database, and a reconciler over it.
type fixture struct {
	db     *store.DB
	fake   *routerostest.Server
	router nettportal.Router
	rc     *routeros.Reconciler
	pool   *routeros.Pool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storetest.MustOpenDB(t)
	fake := routerostest.NewServer()
	fake.Username, fake.Password = "api", "pw"
	t.Cleanup(fake.Close)
	r := nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s",
		APIAddr: fake.Addr, APIUser: "api", APIPassword: "pw", InterimInterval: time.Minute}
	if err := db.CreateRouter(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	pool := &routeros.Pool{Timeout: time.Second}
	t.Cleanup(pool.Close)
	return &fixture{db: db, fake: fake, router: r, pool: pool, rc: &routeros.Reconciler{Store: db, Clients: pool}}
}

// account writes an accounting interim for a session, as the router would.
func (f *fixture) account(t *testing.T, user string, sid uint32, at time.Time, in, out uint64) {
	t.Helper()
	hex := strconv.FormatUint(uint64(sid), 16)
	secs := uint32(60)
	rec := nettportal.AccountingRecord{
		Status: nettportal.StatusInterimUpdate, RouterID: f.router.ID, EventTime: at,
		UniqueID:  nettportal.AcctUniqueID(user, hex, f.router.IP.String(), "core-1", "vlan100", strconv.FormatUint(uint64(sid), 10)),
		SessionID: hex, Username: user, NASIP: f.router.IP, SessionTime: &secs, InputOctets: &in, OutputOctets: &out,
	}
	if err := f.db.ApplyAccounting(context.Background(), []nettportal.AccountingRecord{rec}); err != nil {
		t.Fatal(err)
	}
}

type rowState struct {
	open     bool
	cause    string
	closedBy string
	source   string
	in, out  int64
	ip, mac  string
	profile  string
}

func (f *fixture) rows(t *testing.T) map[string]rowState {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT username, acctstoptime IS NULL, coalesce(acctterminatecause, ''),
		coalesce(closed_by, ''), source, coalesce(acctinputoctets, -1), coalesce(acctoutputoctets, -1),
		coalesce(host(framedipaddress), ''), coalesce(callingstationid, ''), coalesce(profile, '') FROM radacct`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]rowState{}
	for rows.Next() {
		var u string
		var s rowState
		if err := rows.Scan(&u, &s.open, &s.cause, &s.closedBy, &s.source, &s.in, &s.out, &s.ip, &s.mac, &s.profile); err != nil {
			t.Fatal(err)
		}
		out[u] = s
	}
	return out
}

func TestReconcileClosesLostStopsAndAddsLostStarts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := time.Now().Add(-10 * time.Minute).UTC()
	// alice's Stop was lost: the router no longer has her.
	f.account(t, "alice", 0x81000001, old, 100, 200)
	// bob is on both sides, his interim is overdue.
	f.account(t, "bob", 0x81000002, old, 1000, 2000)
	f.fake.SetSession(routerostest.Session{Name: "bob", CallerID: "AA:00:00:00:00:02", Address: "100.64.0.2", SessionID: 0x81000002, Uptime: 11 * time.Minute, RxBytes: 5000, TxBytes: 9000})
	// carol's Start was lost: only the router knows her.
	f.fake.SetSession(routerostest.Session{Name: "carol", CallerID: "AA:00:00:00:00:03", Address: "100.64.0.3", SessionID: 0x81000003, Uptime: time.Hour, RxBytes: 7, TxBytes: 8})
	f.fake.SetSecret(routerostest.Secret{Name: "carol", Password: "x", Profile: "50M", Service: "pppoe"})

	res := f.rc.ReconcileRouter(context.Background(), f.router)
	if !res.Reachable || res.Err != nil || res.Closed != 1 || res.Added != 0 || res.Pending != 1 || res.Refreshed != 1 {
		t.Fatalf("first pass %+v (%s)", res, res)
	}
	// carol is added only when a second pass still finds no accounting.
	res = f.rc.ReconcileRouter(context.Background(), f.router)
	if res.Added != 1 || res.Pending != 0 {
		t.Fatalf("second pass %+v (%s)", res, res)
	}
	got := f.rows(t)
	if a := got["alice"]; a.open || a.cause != nettportal.CauseLostService || a.closedBy != nettportal.ClosedByReconciler {
		t.Errorf("alice %+v", a)
	}
	if b := got["bob"]; !b.open || b.in != 5000 || b.out != 9000 || b.source != "radius" {
		t.Errorf("bob %+v", b)
	}
	if c := got["carol"]; !c.open || c.in != 7 || c.out != 8 || c.ip != "100.64.0.3" || c.mac != "AA:00:00:00:00:03" || c.source != "api" || c.profile != "50M" {
		t.Errorf("carol %+v", c)
	}

	// A third pass changes nothing for radius rows that are now fresh...
	res = f.rc.ReconcileRouter(context.Background(), f.router)
	if res.Closed != 0 || res.Added != 0 || res.Refreshed != 1 { // ...and keeps polling the api-made row
		t.Errorf("second pass %+v", res)
	}
	// When carol's accounting finally arrives, her api-made row is retired.
	f.account(t, "carol", 0x81000003, time.Now().UTC(), 10, 20)
	var n int
	if err := f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM radacct WHERE username = 'carol'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("carol has %d rows: she would be billed twice", n)
	}
}

func TestReconcileAfterRebootWithoutAccountingOn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	at := time.Now().Add(-time.Minute).UTC()
	for i, u := range []string{"u1", "u2", "u3"} {
		f.account(t, u, uint32(0x81000001+i), at, 1, 1)
		f.fake.SetSession(routerostest.Session{Name: u, SessionID: uint32(0x81000001 + i), Address: "100.64.0.1"})
	}
	f.fake.Reboot()
	res := f.rc.ReconcileRouter(context.Background(), f.router)
	if res.Closed != 3 {
		t.Fatalf("closed %d after a reboot, want 3 (%s)", res.Closed, res)
	}
}

func TestUnreachableRouterClosesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account(t, "alice", 0x81000001, time.Now().Add(-time.Hour).UTC(), 1, 1)
	f.fake.SetUnreachable(true)
	res := f.rc.ReconcileRouter(context.Background(), f.router)
	if res.Reachable || res.Closed != 0 {
		t.Fatalf("result %+v", res)
	}
	if !f.rows(t)["alice"].open {
		t.Fatal("an unreachable router's session was closed")
	}
	var reachable bool
	var result string
	if err := f.db.Pool.QueryRow(context.Background(), "SELECT api_reachable, last_reconcile_result FROM router_status WHERE nas_id = $1", f.router.ID).Scan(&reachable, &result); err != nil {
		t.Fatal(err)
	}
	if reachable || !strings.HasPrefix(result, "unreachable") {
		t.Errorf("router status %v %q", reachable, result)
	}
}

func TestRunReconcilesWithinOneInterval(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account(t, "alice", 0x81000001, time.Now().Add(-time.Hour).UTC(), 1, 1)
	f.rc.Interval, f.rc.FastInterval = 500*time.Millisecond, 500*time.Millisecond
	passes := make(chan routeros.Result, 16)
	f.rc.OnResult = func(_ nettportal.Router, res routeros.Result) { passes <- res }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.rc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The first pass runs within an interval of the start and closes it.
	select {
	case res := <-passes:
		if res.Closed != 1 {
			t.Errorf("first pass: %v, want the lost Stop closed", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the running reconciler made no pass")
	}
	if f.rows(t)["alice"].open {
		t.Fatal("lost Stop not closed by the running reconciler's pass")
	}
}

package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

func TestAccountingRetiresTheReconcilersRow(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	fromAPI := withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Minute), 60, 100, 200)
	fromAPI.UniqueID = "api-made-id"
	fromAPI.FromAPI = true
	mustApply(t, db, []nettportal.AccountingRecord{fromAPI})
	open, err := db.OpenSessions(ctx, 1)
	if err != nil || len(open) != 1 || !open[0].FromAPI {
		t.Fatalf("open sessions %+v %v", open, err)
	}
	// The router's own interim for the same session arrives later.
	mustApply(t, db, []nettportal.AccountingRecord{withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 2*time.Minute), 120, 300, 400)})
	var n int
	var in int64
	if err := db.Pool.QueryRow(ctx, "SELECT count(*), max(acctinputoctets) FROM radacct").Scan(&n, &in); err != nil {
		t.Fatal(err)
	}
	if n != 1 || in != 300 {
		t.Fatalf("rows %d, input %d: the session would be billed twice", n, in)
	}
}

func TestSweepStaleAndClose(t *testing.T) {
	t.Parallel()
	withoutAPI := nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s", InterimInterval: time.Minute}
	withAPI := nettportal.Router{Name: "r2", IP: netip.MustParseAddr("127.0.0.12"), Secret: "s", InterimInterval: time.Minute, APIAddr: "127.0.0.12:8728", APIUser: "api"}
	db, ctx := mustOpenWithRouters(t, &withoutAPI, &withAPI), context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	mk := func(r nettportal.Router, user, sid string, lastUpdate time.Duration) nettportal.AccountingRecord {
		x := withCounters(rec(nettportal.StatusInterimUpdate, user, sid, 0), 60, 1, 1)
		x.EventTime = now.Add(-lastUpdate)
		x.RouterID = r.ID
		x.UniqueID = nettportal.AcctUniqueID(user, sid, r.IP.String(), "", "", "")
		return x
	}
	stale := mk(withoutAPI, "old", "81000001", 3*time.Minute) // > 2 x 1m + 30s
	fresh := mk(withoutAPI, "new", "81000002", time.Minute)   // within
	apiStale := mk(withAPI, "checked", "81000003", time.Hour) // the reconciler decides for API routers
	mustApply(t, db, []nettportal.AccountingRecord{stale, fresh, apiStale})
	n, err := db.SweepStale(ctx, 30*time.Second, now)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v; want 1", n, err)
	}
	var cause, closedBy string
	var stop time.Time
	if err := db.Pool.QueryRow(ctx, "SELECT acctterminatecause, closed_by, acctstoptime FROM radacct WHERE acctuniqueid = $1", stale.UniqueID).Scan(&cause, &closedBy, &stop); err != nil {
		t.Fatal(err)
	}
	if cause != nettportal.CauseLostService || closedBy != nettportal.ClosedByStale || !stop.Equal(stale.EventTime) {
		t.Errorf("stale row: %s %s %v", cause, closedBy, stop)
	}
	// A real Stop arriving late replaces the inferred close.
	late := stop2(mk(withoutAPI, "old", "81000001", 2*time.Minute), "User-Request")
	mustApply(t, db, []nettportal.AccountingRecord{late})
	if err := db.Pool.QueryRow(ctx, "SELECT acctterminatecause, closed_by FROM radacct WHERE acctuniqueid = $1", stale.UniqueID).Scan(&cause, &closedBy); err != nil {
		t.Fatal(err)
	}
	if cause != "User-Request" || closedBy != "stop" {
		t.Errorf("after the late Stop: %s %s", cause, closedBy)
	}

	open, err := db.OpenSessions(ctx, withAPI.ID)
	if err != nil || len(open) != 1 {
		t.Fatalf("%v %v", open, err)
	}
	if n, err := db.CloseSessions(ctx, []int64{open[0].ID}, nettportal.CauseLostService, nettportal.ClosedByReconciler); err != nil || n != 1 {
		t.Fatalf("closed %d %v", n, err)
	}
	if n, err := db.CloseSessions(ctx, []int64{open[0].ID}, nettportal.CauseLostService, nettportal.ClosedByReconciler); err != nil || n != 0 {
		t.Fatalf("closed again: %d %v", n, err)
	}
}

func stop2(r nettportal.AccountingRecord, cause string) nettportal.AccountingRecord {
	r.Status = nettportal.StatusStop
	r.TerminateCause = cause
	return r
}

func TestAuditRoundTrip(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	e := nettportal.AuditEntry{Actor: "alice", Action: nettportal.ActionDisconnect, SessionID: 7, Username: "bob",
		Router: "r1", Method: "routeros", Result: "ack", OK: true, Detail: "radius timeout; removed via RouterOS API", ErrorCause: 503}
	if err := db.RecordAudit(ctx, &e); err != nil {
		t.Fatal(err)
	}
	got, err := db.Audit(ctx, 10, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	g := got[0]
	if g.Actor != "alice" || g.SessionID != 7 || g.Method != "routeros" || !g.OK || g.ErrorCause != 503 || g.At.IsZero() {
		t.Errorf("audit %+v", g)
	}
}

func TestReconcilerNeverStandsInForAnAccountedSession(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	start := rec(nettportal.StatusStart, "alice", "81000001", 0)
	mustApply(t, db, []nettportal.AccountingRecord{start})
	// The reconciler read the database before the Start committed and now
	// offers its own row for the same session.
	fromAPI := withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Minute), 60, 100, 200)
	fromAPI.UniqueID, fromAPI.FromAPI = "api-made-id", true
	mustApply(t, db, []nettportal.AccountingRecord{fromAPI})
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM radacct").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows (%v): the session would be billed twice", n, err)
	}
	// Had both committed concurrently, the next pass retires the api row.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id, source, acctstarttime)
		VALUES ('81000001', 'raced', 'alice', '127.0.0.11', 1, 'api', now())`); err != nil {
		t.Fatal(err)
	}
	if n, err := db.RetireSupersededAPIRows(ctx, 1); err != nil || n != 1 {
		t.Fatalf("retired %d: %v", n, err)
	}
}

func TestSweepSkipsRowsABatchHoldsAndNeverDeadlocks(t *testing.T) {
	t.Parallel()
	r := nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s", InterimInterval: time.Minute}
	db, ctx := mustOpenWithRouters(t, &r), context.Background()
	old := time.Now().Add(-time.Hour).UTC()
	var recs []nettportal.AccountingRecord
	for i := 0; i < 3000; i++ {
		sid := fmt.Sprintf("%08x", 0x81000000+i)
		x := withCounters(rec(nettportal.StatusInterimUpdate, "u"+sid, sid, 0), 60, 1, 1)
		x.EventTime, x.RouterID = old, r.ID
		x.UniqueID = nettportal.AcctUniqueID(x.Username, sid, "", "", "", "")
		recs = append(recs, x)
	}
	mustApply(t, db, recs)

	// A batch holds one row while the sweep runs: the sweep must not wait.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM radacct WHERE acctuniqueid = $1 FOR UPDATE", recs[0].UniqueID); err != nil {
		t.Fatal(err)
	}
	// Meanwhile more batches update other stale rows, in their own order.
	// The last thousand rows no batch touches: the sweep must close those
	// whatever the batches hold when it runs.
	const busy = 2000
	errc := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			var b []nettportal.AccountingRecord
			for i := 1 + w; i < busy; i += 4 {
				x := recs[i]
				x.EventTime = old.Add(time.Second)
				b = append(b, x)
			}
			errc <- db.ApplyAccounting(ctx, b)
		}(w)
	}
	sweepCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	n, err := db.SweepStale(sweepCtx, time.Minute, time.Now())
	cancel()
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	for w := 0; w < 4; w++ {
		if err := <-errc; err != nil {
			t.Fatalf("a batch failed during the sweep: %v", err)
		}
	}
	// Rows a batch held at that moment are skipped too (the next pass
	// decides), so the first pass closes at least the rows no batch
	// touched, and never the held row. A row it closed before a batch's
	// later interim reached it is reopened by that interim (evidence beats
	// an inferred close) and, still stale, may be closed again: n counts
	// closes, not rows.
	if n < int64(len(recs)-busy) {
		t.Errorf("swept %d, want at least %d (the untouched rows)", n, len(recs)-busy)
	}
	if r, _ := mustRow(t, db, recs[0].UniqueID); r.Stop != nil {
		t.Errorf("the sweep closed the row a batch held")
	}
	tx.Rollback(ctx)
	if _, err := db.SweepStale(ctx, time.Minute, time.Now()); err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	var open int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE acctstoptime IS NULL`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d rows still open after the second sweep (%v)", open, err)
	}
}

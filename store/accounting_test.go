package store_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

// rec builds a MikroTik-like record for session sid of user on router 1.
func rec(status nettportal.StatusType, user, sid string, at time.Duration) nettportal.AccountingRecord {
	nasIP := netip.MustParseAddr("127.0.0.11")
	return nettportal.AccountingRecord{
		Status:         status,
		RouterID:       1,
		EventTime:      t0.Add(at),
		UniqueID:       nettportal.AcctUniqueID(user, sid, nasIP.String(), "r1", "<pppoe-"+user+">", "2164260876"),
		SessionID:      sid,
		Username:       user,
		NASIP:          nasIP,
		NASIdent:       "r1",
		NASPortID:      "<pppoe-" + user + ">",
		NASPortTyp:     "Virtual",
		CallingStation: "AA:BB:CC:00:00:01",
		CalledStation:  "isp",
		FramedIP:       netip.MustParseAddr("100.64.0.10"),
		ServiceType:    "Framed-User",
		FramedProtocol: "PPP",
		Authentic:      "RADIUS",
	}
}

func withCounters(r nettportal.AccountingRecord, sessionTime uint32, in, out uint64) nettportal.AccountingRecord {
	r.SessionTime = u32(sessionTime)
	r.InputOctets = u64(in)
	r.OutputOctets = u64(out)
	return r
}

func stop(r nettportal.AccountingRecord, cause string) nettportal.AccountingRecord {
	r.TerminateCause = cause
	return r
}

type row struct {
	Start, Update, Stop  *time.Time
	SessionTime          *int64
	In, Out              *int64
	PrevIn, PrevOut      *int64
	PrevUpdate           *time.Time
	Cause, ClosedBy      *string
	HasStart             bool
	FramedIP, CallingSID *string
}

func mustRow(t *testing.T, db *store.DB, uniqueID string) (row, bool) {
	t.Helper()
	var r row
	err := db.Pool.QueryRow(context.Background(), `SELECT acctstarttime, acctupdatetime, acctstoptime,
		acctsessiontime, acctinputoctets, acctoutputoctets, prev_inputoctets, prev_outputoctets, prev_updatetime,
		acctterminatecause, closed_by, has_start, host(framedipaddress), callingstationid
		FROM radacct WHERE acctuniqueid = $1`, uniqueID).Scan(&r.Start, &r.Update, &r.Stop, &r.SessionTime,
		&r.In, &r.Out, &r.PrevIn, &r.PrevOut, &r.PrevUpdate, &r.Cause, &r.ClosedBy, &r.HasStart, &r.FramedIP, &r.CallingSID)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		t.Fatalf("read row: %v", err)
	}
	return r, true
}

func mustApply(t *testing.T, db *store.DB, batches ...[]nettportal.AccountingRecord) {
	t.Helper()
	for _, b := range batches {
		if err := db.ApplyAccounting(context.Background(), b); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
}

func eqTime(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if got != nil {
			t.Errorf("%s = %v, want NULL", what, got)
		}
		return
	}
	if got == nil || !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqInt(t *testing.T, what string, got *int64, want int64) {
	t.Helper()
	if got == nil || *got != want {
		if got == nil {
			t.Errorf("%s = NULL, want %d", what, want)
		} else {
			t.Errorf("%s = %d, want %d", what, *got, want)
		}
	}
}

func eqStr(t *testing.T, what string, got *string, want string) {
	t.Helper()
	if (want == "" && got != nil && *got != "") || (want != "" && (got == nil || *got != want)) {
		g := "NULL"
		if got != nil {
			g = *got
		}
		t.Errorf("%s = %q, want %q", what, g, want)
	}
}

const gig = uint64(1) << 32

func TestAccountingRules(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)

	start := rec(nettportal.StatusStart, "alice", "81000001", 0)
	interim1 := withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 300*time.Second), 300, 5*gig+100, 7*gig+200)
	interim2 := withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 600*time.Second), 600, 6*gig, 9*gig)
	stopRec := stop(withCounters(rec(nettportal.StatusStop, "alice", "81000001", 700*time.Second), 700, 6*gig+50, 9*gig+60), "User-Request")
	id := start.UniqueID

	cases := []struct {
		name    string
		batches [][]nettportal.AccountingRecord
		check   func(t *testing.T, r row)
	}{
		{"start opens a row", [][]nettportal.AccountingRecord{{start}}, func(t *testing.T, r row) {
			eqTime(t, "start", r.Start, t0)
			// FreeRADIUS's Start writes 0 counters; reports sum them.
			eqInt(t, "in", r.In, 0)
			eqInt(t, "out", r.Out, 0)
			eqTime(t, "update", r.Update, t0)
			eqTime(t, "stop", r.Stop, time.Time{})
			if !r.HasStart {
				t.Error("has_start false")
			}
			eqStr(t, "framedip", r.FramedIP, "100.64.0.10")
			eqStr(t, "mac", r.CallingSID, "AA:BB:CC:00:00:01")
		}},
		{"interims carry 64-bit counters and the previous update", [][]nettportal.AccountingRecord{{start}, {interim1}, {interim2}}, func(t *testing.T, r row) {
			eqInt(t, "in", r.In, int64(6*gig))
			eqInt(t, "out", r.Out, int64(9*gig))
			eqInt(t, "prev in", r.PrevIn, int64(5*gig+100))
			eqInt(t, "prev out", r.PrevOut, int64(7*gig+200))
			eqTime(t, "prev update", r.PrevUpdate, t0.Add(300*time.Second))
			eqTime(t, "update", r.Update, t0.Add(600*time.Second))
			eqInt(t, "session time", r.SessionTime, 600)
		}},
		{"stop closes with cause and counters", [][]nettportal.AccountingRecord{{start}, {interim1}, {stopRec}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqStr(t, "cause", r.Cause, "User-Request")
			eqStr(t, "closed_by", r.ClosedBy, "stop")
			eqInt(t, "in", r.In, int64(6*gig+50))
			eqInt(t, "out", r.Out, int64(9*gig+60))
		}},
		{"duplicates across and within batches change nothing", [][]nettportal.AccountingRecord{{start, start}, {interim1, interim1}, {interim1}, {stopRec, stopRec}, {stopRec}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqInt(t, "in", r.In, int64(6*gig+50))
			eqInt(t, "prev in", r.PrevIn, int64(5*gig+100))
		}},
		{"late interim after stop neither rewinds nor reopens", [][]nettportal.AccountingRecord{{start}, {stopRec}, {interim1}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqTime(t, "update", r.Update, t0.Add(700*time.Second))
			eqInt(t, "in", r.In, int64(6*gig+50))
			eqInt(t, "session time", r.SessionTime, 700)
		}},
		{"reordered interims keep the newest counters", [][]nettportal.AccountingRecord{{start}, {interim2}, {interim1}}, func(t *testing.T, r row) {
			eqInt(t, "in", r.In, int64(6*gig))
			eqTime(t, "update", r.Update, t0.Add(600*time.Second))
			eqInt(t, "session time", r.SessionTime, 600)
		}},
		{"late start never rewinds times or counters", [][]nettportal.AccountingRecord{{interim2}, {start}}, func(t *testing.T, r row) {
			eqTime(t, "start", r.Start, t0)
			eqTime(t, "update", r.Update, t0.Add(600*time.Second))
			eqInt(t, "in", r.In, int64(6*gig))
			eqTime(t, "stop", r.Stop, time.Time{})
			if !r.HasStart {
				t.Error("has_start false after the late Start")
			}
		}},
		{"interim without start creates the row", [][]nettportal.AccountingRecord{{interim1}}, func(t *testing.T, r row) {
			eqTime(t, "start", r.Start, t0) // 300 s event - 300 s session time
			eqTime(t, "stop", r.Stop, time.Time{})
			eqInt(t, "in", r.In, int64(5*gig+100))
			if r.HasStart {
				t.Error("has_start true without a Start")
			}
		}},
		{"stop without start inserts a closed row", [][]nettportal.AccountingRecord{{stopRec}}, func(t *testing.T, r row) {
			eqTime(t, "start", r.Start, t0)
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqInt(t, "out", r.Out, int64(9*gig+60))
		}},
		{"stop without counters keeps the last counters", [][]nettportal.AccountingRecord{{start}, {interim2}, {stop(rec(nettportal.StatusStop, "alice", "81000001", 700*time.Second), "Lost-Carrier")}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqInt(t, "in", r.In, int64(6*gig))
			eqInt(t, "out", r.Out, int64(9*gig))
			eqStr(t, "cause", r.Cause, "Lost-Carrier")
		}},
		{"start, interims and stop in one batch apply in order", [][]nettportal.AccountingRecord{{start, interim1, interim2, stopRec}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(700*time.Second))
			eqInt(t, "in", r.In, int64(6*gig+50))
			eqInt(t, "prev in", r.PrevIn, int64(6*gig))
		}},
		{"accounting-on closes open sessions, a later real stop wins", [][]nettportal.AccountingRecord{{start, interim1}, {rec(nettportal.StatusAccountingOn, "", "", 400*time.Second)}}, func(t *testing.T, r row) {
			eqTime(t, "stop", r.Stop, t0.Add(400*time.Second))
			eqStr(t, "cause", r.Cause, nettportal.CauseNASReboot)
			eqStr(t, "closed_by", r.ClosedBy, nettportal.ClosedByNASReboot)
			eqInt(t, "in", r.In, int64(5*gig+100))
			eqInt(t, "session time", r.SessionTime, 400)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case gets its own router id so cases do not see each other.
			nas := int64(100 + i)
			var batches [][]nettportal.AccountingRecord
			for _, b := range tc.batches {
				var nb []nettportal.AccountingRecord
				for _, r := range b {
					r.RouterID = nas
					if r.UniqueID != "" {
						r.UniqueID = r.UniqueID[:24] + string(rune('a'+i%26)) + r.UniqueID[25:]
					}
					nb = append(nb, r)
				}
				batches = append(batches, nb)
			}
			mustApply(t, db, batches...)
			caseID := id[:24] + string(rune('a'+i%26)) + id[25:]
			r, ok := mustRow(t, db, caseID)
			if !ok {
				t.Fatal("no row")
			}
			tc.check(t, r)
		})
	}
}

func TestAccountingOnRouterReboot(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	a := rec(nettportal.StatusStart, "alice", "81000001", 0)
	b := rec(nettportal.StatusStart, "bob", "81000002", 10*time.Second)
	other := rec(nettportal.StatusStart, "carol", "81000003", 0)
	other.RouterID = 2
	other.UniqueID = nettportal.AcctUniqueID("carol", "81000003", "127.0.0.12", "r2", "", "")
	on := rec(nettportal.StatusAccountingOn, "", "", 100*time.Second)
	// A new session after the reboot, whose Start overtook the Accounting-On.
	after := rec(nettportal.StatusStart, "alice", "82000001", 120*time.Second)
	mustApply(t, db, []nettportal.AccountingRecord{a, b, other}, []nettportal.AccountingRecord{after, on})

	for _, id := range []string{a.UniqueID, b.UniqueID} {
		r, _ := mustRow(t, db, id)
		eqTime(t, "stop", r.Stop, t0.Add(100*time.Second))
		eqStr(t, "cause", r.Cause, nettportal.CauseNASReboot)
	}
	for _, id := range []string{other.UniqueID, after.UniqueID} {
		r, _ := mustRow(t, db, id)
		eqTime(t, "stop of a session that must stay open", r.Stop, time.Time{})
	}
	// A late real Stop of a rebooted session replaces the inferred close.
	late := stop(withCounters(rec(nettportal.StatusStop, "bob", "81000002", 90*time.Second), 80, 1000, 2000), "Port-Error")
	mustApply(t, db, []nettportal.AccountingRecord{late}, []nettportal.AccountingRecord{on})
	r, _ := mustRow(t, db, b.UniqueID)
	eqTime(t, "stop", r.Stop, t0.Add(90*time.Second))
	eqStr(t, "cause", r.Cause, "Port-Error")
	eqStr(t, "closed_by", r.ClosedBy, "stop")
	eqInt(t, "in", r.In, 1000)
	// The replayed Accounting-On closed nothing new.
	r, _ = mustRow(t, db, after.UniqueID)
	eqTime(t, "stop after replayed Accounting-On", r.Stop, time.Time{})
}

func TestConcurrentBatchesDoNotLoseUpdates(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	const sessions, steps = 200, 10
	errc := make(chan error, steps)
	for s := 1; s <= steps; s++ {
		go func(s int) {
			var batch []nettportal.AccountingRecord
			for i := 0; i < sessions; i++ {
				sid := "8100" + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10)) + "0"
				r := withCounters(rec(nettportal.StatusInterimUpdate, "user"+sid, sid, time.Duration(s)*time.Minute), uint32(s*60), uint64(s)*1000, uint64(s)*2000)
				batch = append(batch, r)
			}
			errc <- db.ApplyAccounting(context.Background(), batch)
		}(s)
	}
	for s := 0; s < steps; s++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	var n, minIn int64
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*), min(acctinputoctets) FROM radacct").Scan(&n, &minIn); err != nil {
		t.Fatal(err)
	}
	if n != sessions || minIn != steps*1000 {
		t.Errorf("rows %d (want %d), smallest counter %d (want %d)", n, sessions, minIn, steps*1000)
	}
}

// A session closed by inference has no current rate, like a stopped one.
func TestInferredCloseClearsTheRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MustOpenDB(t)
	rate := func(uniqueID string) (in, out int64) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT input_bps, output_bps FROM radacct WHERE acctuniqueid = $1`, uniqueID).Scan(&in, &out); err != nil {
			t.Fatal(err)
		}
		return in, out
	}
	a := rec(nettportal.StatusStart, "alice", "81000001", 0)
	b := rec(nettportal.StatusStart, "bob", "81000002", 0)
	mustApply(t, db, []nettportal.AccountingRecord{a, b},
		[]nettportal.AccountingRecord{withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 60*time.Second), 60, 1000, 2000),
			withCounters(rec(nettportal.StatusInterimUpdate, "bob", "81000002", 60*time.Second), 60, 1000, 2000)},
		[]nettportal.AccountingRecord{withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 120*time.Second), 120, 7000, 32000),
			withCounters(rec(nettportal.StatusInterimUpdate, "bob", "81000002", 120*time.Second), 120, 7000, 32000)})
	if in, out := rate(a.UniqueID); in != 800 || out != 4000 {
		t.Fatalf("open rate %d/%d, want 800/4000", in, out)
	}
	var bobID int64
	if err := db.Pool.QueryRow(ctx, `SELECT radacctid FROM radacct WHERE acctuniqueid = $1`, b.UniqueID).Scan(&bobID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CloseSessions(ctx, []int64{bobID}, nettportal.CauseLostService, nettportal.ClosedByStale); err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, []nettportal.AccountingRecord{rec(nettportal.StatusAccountingOn, "", "", 200*time.Second)})
	for _, id := range []string{a.UniqueID, b.UniqueID} {
		if in, out := rate(id); in != 0 || out != 0 {
			t.Errorf("closed session keeps a rate %d/%d", in, out)
		}
	}
}

// A batch goes to Postgres in a few pipelined round trips, BEGIN with the
// first statements and COMMIT with the last: a statement failing with a
// data error after others have run (here the full upsert after the narrow
// update applied an interim) is isolated under savepoints: the good record
// commits once, the bad one is quarantined, and the connection goes back
// ready for the next batch.
func TestFailedBatchLeavesNothing(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	mustApply(t, db, []nettportal.AccountingRecord{rec(nettportal.StatusStart, "alice", "81000001", 0)})
	bad := rec(nettportal.StatusStart, "bob", "81000002", time.Minute)
	bad.FramedIPv6Pfx = "not-a-prefix" // the inet cast fails inside the upsert
	// More failures than the pool has connections.
	for i := 0; i < 20; i++ {
		interim := withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Duration(i+1)*time.Minute), uint32(60*(i+1)), uint64(1000*(i+1)), 2000)
		out := make([]nettportal.RecordOutcome, 2)
		if err := db.ApplyAccountingOutcomes(ctx, []nettportal.AccountingRecord{interim, bad}, out); err != nil {
			t.Fatalf("a batch with one bad record failed: %v", err)
		}
		if out[0] != nettportal.RecordStored || out[1] != nettportal.RecordQuarantined {
			t.Fatalf("outcomes %v, want stored, quarantined", out)
		}
		alice, _ := mustRow(t, db, interim.UniqueID)
		eqInt(t, "input octets of the good batch-mate", alice.In, int64(1000*(i+1)))
	}
	if _, ok := mustRow(t, db, bad.UniqueID); ok {
		t.Error("the bad Start is in radacct")
	}
	var n, copies int
	var sqlstate, username string
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), sum(repeats), min(sqlstate), min(fields->>'username') FROM accounting_quarantine`).
		Scan(&n, &copies, &sqlstate, &username); err != nil {
		t.Fatal(err)
	}
	// The same record each time: one row that counts the copies.
	if n != 1 || copies != 20 || sqlstate != "22P02" || username != "bob" {
		t.Errorf("quarantine: %d rows, %d copies, sqlstate %q, username %q; want 1, 20, 22P02, bob", n, copies, sqlstate, username)
	}
	if got := db.Stats.Quarantined.Load(); got != 20 {
		t.Errorf("Stats.Quarantined = %d, want 20", got)
	}
	if st := db.Pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still held after failed batches", st.AcquiredConns())
	}
	var open int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d connections idle in a transaction (%v)", open, err)
	}
}

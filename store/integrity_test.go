package store_test

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// twoRouters creates r1 (127.0.0.11) and r2 (127.0.0.12) without API
// access, with a one-minute interim interval.
func twoRouters(tb testing.TB, db *store.DB) (r1, r2 nettportal.Router) {
	tb.Helper()
	r1 = nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s1", InterimInterval: time.Minute}
	r2 = nettportal.Router{Name: "r2", IP: netip.MustParseAddr("127.0.0.12"), Secret: "s2", InterimInterval: time.Minute}
	for _, r := range []*nettportal.Router{&r1, &r2} {
		if err := db.CreateRouter(context.Background(), r); err != nil {
			tb.Fatal(err)
		}
	}
	return r1, r2
}

func on(r nettportal.Router, x nettportal.AccountingRecord) nettportal.AccountingRecord {
	x.RouterID = r.ID
	return x
}

func outcomes(t *testing.T, db *store.DB, batch ...nettportal.AccountingRecord) []nettportal.RecordOutcome {
	t.Helper()
	out := make([]nettportal.RecordOutcome, len(batch))
	if err := db.ApplyAccountingOutcomes(context.Background(), batch, out); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
}

// Router 2, with its own valid secret, sends an Interim and a Stop carrying
// router 1's session attributes (so the same acctuniqueid): router 1's row
// must not change, and both records are refused as foreign.
func TestForeignRouterCannotTouchASession(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	r1, r2 := twoRouters(t, db)
	start := on(r1, rec(nettportal.StatusStart, "alice", "81000001", 0))
	mustApply(t, db, []nettportal.AccountingRecord{start})
	forged := on(r2, withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Minute), 60, 1<<40, 1<<40))
	forgedStop := on(r2, withCounters(stop(rec(nettportal.StatusStop, "alice", "81000001", 2*time.Minute), "User-Request"), 120, 1<<41, 1<<41))
	own := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 90*time.Second), 90, 500, 600))
	got := outcomes(t, db, forged, own, forgedStop)
	want := []nettportal.RecordOutcome{nettportal.RecordForeignSession, nettportal.RecordStored, nettportal.RecordForeignSession}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
	}
	r, _ := mustRow(t, db, start.UniqueID)
	eqInt(t, "input octets", r.In, 500)
	if r.Stop != nil {
		t.Errorf("router 2 closed router 1's session at %v", r.Stop)
	}
	if n := db.Stats.ForeignSession.Load(); n != 2 {
		t.Errorf("Stats.ForeignSession = %d, want 2", n)
	}
	// Also through the full upsert only (no narrow update).
	store.SetFullUpsertOnly(db, true)
	if got := outcomes(t, db, forged); got[0] != nettportal.RecordForeignSession {
		t.Errorf("full upsert: outcome %v, want foreign", got[0])
	}
}

// A row FreeRADIUS wrote (nas_id NULL) belongs to the router whose nasname
// is its nasipaddress: that router claims it, another is refused.
func TestNullNASRowOwnedByAddress(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, r2 := twoRouters(t, db)
	x := rec(nettportal.StatusStart, "fr", "81000009", 0)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime)
		VALUES ($1, $2, 'fr', '127.0.0.11', $3, $3)`, x.SessionID, x.UniqueID, x.EventTime); err != nil {
		t.Fatal(err)
	}
	interim := withCounters(rec(nettportal.StatusInterimUpdate, "fr", "81000009", time.Minute), 60, 10, 20)
	if got := outcomes(t, db, on(r2, interim)); got[0] != nettportal.RecordForeignSession {
		t.Fatalf("router 2 on router 1's FreeRADIUS row: %v, want foreign", got[0])
	}
	if got := outcomes(t, db, on(r1, interim)); got[0] != nettportal.RecordStored {
		t.Fatalf("router 1 on its FreeRADIUS row: %v, want stored", got[0])
	}
	var nasID int64
	if err := db.Pool.QueryRow(ctx, `SELECT nas_id FROM radacct WHERE acctuniqueid = $1`, x.UniqueID).Scan(&nasID); err != nil || nasID != r1.ID {
		t.Fatalf("row claimed by %d (%v), want router 1 (%d)", nasID, err, r1.ID)
	}
}

// Records PostgreSQL cannot store (NUL, invalid UTF-8) in one batch with
// good records of another router: the good ones commit, the bad ones are
// quarantined with their raw bytes and SQLSTATE, and huge counters are
// stored clamped, never negative, with rates and sums that still answer.
func TestBadRecordsQuarantinedGoodOnesCommit(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, r2 := twoRouters(t, db)
	nul := on(r1, rec(nettportal.StatusStart, "bad\x00user", "81000001", 0))
	nul.Raw = []byte{4, 1, 0, 20, 0xff, 0}
	nul.Source = netip.MustParseAddrPort("127.0.0.11:40000")
	latin := on(r1, rec(nettportal.StatusStart, "caf\xe9", "81000002", 0))
	latin.CallingStation = "\xff\xfe"
	huge := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "huge", "81000003", time.Second), 1, math.MaxUint64, 1<<63))
	hugeLater := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "huge", "81000003", 2*time.Second), 2, math.MaxUint64, math.MaxUint64))
	var batch []nettportal.AccountingRecord
	var good []nettportal.AccountingRecord
	for i := range 40 {
		g := on(r2, rec(nettportal.StatusStart, "user", "8100"+string(rune('a'+i%6))+string(rune('a'+i/6))+"00", 0))
		g.UniqueID = nettportal.AcctUniqueID(g.Username, g.SessionID, "127.0.0.12", "", "", "")
		good = append(good, g)
		batch = append(batch, g)
		switch i {
		case 3:
			batch = append(batch, nul)
		case 20:
			batch = append(batch, latin)
		case 30:
			batch = append(batch, huge)
		}
	}
	batch = append(batch, hugeLater)
	out := outcomes(t, db, batch...)
	q := 0
	for i, o := range out {
		if o == nettportal.RecordQuarantined {
			q++
			if u := batch[i].Username; u != "bad\x00user" && u != "caf\xe9" {
				t.Errorf("record %d (%q) quarantined", i, u)
			}
		}
	}
	if q != 2 {
		t.Fatalf("%d quarantined, want 2 (%v)", q, out)
	}
	for _, g := range good {
		if _, ok := mustRow(t, db, g.UniqueID); !ok {
			t.Fatalf("good record %s lost", g.SessionID)
		}
	}
	var negative int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE acctinputoctets < 0 OR acctoutputoctets < 0
		OR input_bps < 0 OR output_bps < 0`).Scan(&negative); err != nil || negative != 0 {
		t.Fatalf("%d rows with negative counters (%v)", negative, err)
	}
	var raw []byte
	var sqlstate, source, user string
	if err := db.Pool.QueryRow(ctx, `SELECT raw, sqlstate, source, fields->>'username' FROM accounting_quarantine WHERE raw IS NOT NULL`).
		Scan(&raw, &sqlstate, &source, &user); err != nil {
		t.Fatal(err)
	}
	if string(raw) != string(nul.Raw) || sqlstate[:2] != "22" || source != "127.0.0.11:40000" || user != `bad\x00user` {
		t.Errorf("quarantined %x %q %q %q", raw, sqlstate, source, user)
	}
	// Every stored row answers through the API query and the usage functions.
	if _, err := db.Sessions(ctx, nettportal.SessionFilter{Limit: 1000, Closed: true}); err != nil {
		t.Fatalf("sessions API query: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT * FROM usage_daily`); err != nil {
		t.Fatalf("usage_daily: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT * FROM usage_by_month('-infinity', 'infinity')`); err != nil {
		t.Fatalf("usage_by_month: %v", err)
	}
	states, err := db.RouterStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if states[r1.ID].QuarantinedRecords != 2 || states[r2.ID].QuarantinedRecords != 0 {
		t.Errorf("quarantined per router: %d, %d; want 2, 0", states[r1.ID].QuarantinedRecords, states[r2.ID].QuarantinedRecords)
	}
}

// Sessions of a router never seen sending interims stay open past the
// sweep window; once it sends one, its silent sessions are swept; a
// session announcing Acct-Interim-Interval is swept on its own evidence;
// --max-session-age closes anything older.
func TestSweepSparesRoutersWithoutInterims(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, r2 := twoRouters(t, db)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(r nettportal.Router, x nettportal.AccountingRecord, ago time.Duration) nettportal.AccountingRecord {
		x = on(r, x)
		x.EventTime = now.Add(-ago)
		return x
	}
	quiet := at(r1, rec(nettportal.StatusStart, "quiet", "81000001", 0), time.Hour)
	announced := at(r1, rec(nettportal.StatusStart, "announced", "81000002", 0), time.Hour)
	announced.InterimSeconds = u32(60)
	mustApply(t, db, []nettportal.AccountingRecord{quiet, announced})
	if _, err := db.SweepStale(ctx, 30*time.Second, now); err != nil {
		t.Fatal(err)
	}
	if r, _ := mustRow(t, db, quiet.UniqueID); r.Stop != nil {
		t.Fatalf("a session of a router without interims was swept (closed %v)", r.Stop)
	}
	if r, _ := mustRow(t, db, announced.UniqueID); r.Stop == nil {
		t.Fatal("a session that announced Acct-Interim-Interval and went silent was not swept")
	}
	states, err := db.RouterStates(ctx)
	if err != nil || states[r1.ID].InterimsSeen {
		t.Fatalf("router 1 shown with interims seen (%v)", err)
	}
	// Router 2 sends interims: its silent session is swept.
	silent := at(r2, rec(nettportal.StatusStart, "silent", "81000003", 0), time.Hour)
	talking := at(r2, withCounters(rec(nettportal.StatusInterimUpdate, "talking", "81000004", 0), 60, 1, 1), 0)
	mustApply(t, db, []nettportal.AccountingRecord{silent, talking})
	if states, err = db.RouterStates(ctx); err != nil || !states[r2.ID].InterimsSeen {
		t.Fatalf("router 2 sent an interim but is not shown so (%v)", err)
	}
	if _, err := db.SweepStale(ctx, 30*time.Second, now); err != nil {
		t.Fatal(err)
	}
	if r, _ := mustRow(t, db, silent.UniqueID); r.Stop == nil || *r.ClosedBy != nettportal.ClosedByStale {
		t.Fatal("a silent session of a router that sends interims was not swept")
	}
	if r, _ := mustRow(t, db, quiet.UniqueID); r.Stop != nil {
		t.Fatal("router 2's interims made router 1's sessions sweepable")
	}
	db.MaxSessionAge = 30 * time.Minute
	if _, err := db.SweepStale(ctx, 30*time.Second, now); err != nil {
		t.Fatal(err)
	}
	if r, _ := mustRow(t, db, quiet.UniqueID); r.Stop == nil || *r.ClosedBy != store.ClosedByMaxAge {
		t.Fatal("a session past --max-session-age was not closed")
	}
	if r, _ := mustRow(t, db, talking.UniqueID); r.Stop != nil {
		t.Fatal("a young session closed by max age")
	}
}

// A session closed by inference that then sends an Interim with a later
// event time is reopened with its counters; a real Stop stays final; an
// Interim older than the inferred close does not reopen.
func TestInferredCloseReopenedByLaterInterim(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(map[bool]string{false: "narrow", true: "full"}[full], func(t *testing.T) {
			t.Parallel()
			db := storetest.MustOpenDB(t)
			store.SetFullUpsertOnly(db, full)
			r1, _ := twoRouters(t, db)
			a := on(r1, rec(nettportal.StatusStart, "alice", "81000001", 0))
			b := on(r1, rec(nettportal.StatusStart, "bob", "81000002", 0))
			mustApply(t, db, []nettportal.AccountingRecord{a, b},
				[]nettportal.AccountingRecord{on(r1, rec(nettportal.StatusAccountingOn, "", "", 10*time.Second))})
			if r, _ := mustRow(t, db, a.UniqueID); r.Stop == nil {
				t.Fatal("Accounting-On did not close the session")
			}
			old := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "bob", "81000002", 5*time.Second), 5, 10, 10))
			later := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", time.Minute), 60, 1000, 2000))
			mustApply(t, db, []nettportal.AccountingRecord{old, later})
			r, _ := mustRow(t, db, a.UniqueID)
			if r.Stop != nil || r.ClosedBy != nil || r.Cause != nil {
				t.Fatalf("not reopened: stop %v closed_by %v", r.Stop, r.ClosedBy)
			}
			eqInt(t, "reopened input octets", r.In, 1000)
			if rb, _ := mustRow(t, db, b.UniqueID); rb.Stop == nil {
				t.Fatal("an interim older than the close reopened the session")
			}
			if n := db.Stats.Reopened.Load(); n != 1 {
				t.Errorf("Stats.Reopened = %d, want 1", n)
			}
			mustApply(t, db, []nettportal.AccountingRecord{on(r1, withCounters(stop(rec(nettportal.StatusStop, "alice", "81000001", 2*time.Minute), "User-Request"), 120, 3000, 4000))},
				[]nettportal.AccountingRecord{on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "alice", "81000001", 3*time.Minute), 180, 5000, 6000))})
			if r, _ := mustRow(t, db, a.UniqueID); r.Stop == nil || *r.ClosedBy != nettportal.ClosedByStop {
				t.Fatal("an interim reopened a session after its real Stop")
			}
		})
	}
}

// Accounting-On in the same second as a Start that arrived just before it
// (both retransmitted together): a session id with the new boot digit
// stays open, one with the old boot digit is closed.
func TestAccountingOnSameSecond(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	r1, _ := twoRouters(t, db)
	old := on(r1, rec(nettportal.StatusStart, "old", "81000001", 0))
	lastOld := on(r1, rec(nettportal.StatusStart, "lastold", "81000002", time.Hour))
	fresh := on(r1, rec(nettportal.StatusStart, "fresh", "91000001", time.Hour)) // new boot digit 9
	accOn := on(r1, rec(nettportal.StatusAccountingOn, "", "", time.Hour))
	mustApply(t, db, []nettportal.AccountingRecord{old}, []nettportal.AccountingRecord{lastOld, fresh}, []nettportal.AccountingRecord{accOn})
	if r, _ := mustRow(t, db, old.UniqueID); r.Stop == nil {
		t.Error("a session from before the reboot stayed open")
	}
	if r, _ := mustRow(t, db, lastOld.UniqueID); r.Stop == nil {
		t.Error("a same-second session with the old boot digit stayed open")
	}
	if r, _ := mustRow(t, db, fresh.UniqueID); r.Stop != nil {
		t.Error("the new boot's session was closed as NAS-Reboot in its own start second")
	}
	// A Start after the Accounting-On in arrival order stays open too.
	after := on(r1, rec(nettportal.StatusStart, "after", "81000003", time.Hour))
	mustApply(t, db, []nettportal.AccountingRecord{accOn, after})
	if r, _ := mustRow(t, db, after.UniqueID); r.Stop != nil {
		t.Error("a Start arriving after the Accounting-On was closed")
	}
}

// A row FreeRADIUS wrote with the packet's NAS-IPv6-Address as nasipaddress
// (no nas row covers it: the router is registered by its IPv4 source) is
// claimed by the router whose record names that address; once the address
// is a nas row's, only that row's router may claim it.
func TestNullNASRowNamedByNASIPv6Address(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, r2 := twoRouters(t, db)
	v6 := netip.MustParseAddr("2001:db8::11")
	insert := func(sid string) nettportal.AccountingRecord {
		x := rec(nettportal.StatusStart, "fr6", sid, 0)
		x.NASIP = v6
		x.UniqueID = nettportal.AcctUniqueID("fr6", sid, v6.String(), "r1", x.NASPortID, "")
		if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime)
			VALUES ($1, $2, 'fr6', $3::inet, $4, $4)`, x.SessionID, x.UniqueID, v6.String(), x.EventTime); err != nil {
			t.Fatal(err)
		}
		return x
	}
	interimOf := func(x nettportal.AccountingRecord, nas netip.Addr) nettportal.AccountingRecord {
		i := withCounters(x, 60, 10, 20)
		i.Status, i.EventTime, i.NASIP = nettportal.StatusInterimUpdate, x.EventTime.Add(time.Minute), nas
		return i
	}
	owner := func(uid string) int64 {
		t.Helper()
		var id *int64
		if err := db.Pool.QueryRow(ctx, `SELECT nas_id FROM radacct WHERE acctuniqueid = $1`, uid).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if id == nil {
			return 0
		}
		return *id
	}

	x := insert("81000061")
	// A record naming another address does not claim it.
	if got := outcomes(t, db, on(r2, interimOf(x, r2.IP))); got[0] != nettportal.RecordForeignSession {
		t.Fatalf("router 2 naming its own address: %v, want foreign", got[0])
	}
	if got := outcomes(t, db, on(r1, interimOf(x, v6))); got[0] != nettportal.RecordStored {
		t.Fatalf("router 1 naming the row's NAS-IPv6-Address: %v, want stored", got[0])
	}
	if id := owner(x.UniqueID); id != r1.ID {
		t.Fatalf("row claimed by %d, want router 1 (%d)", id, r1.ID)
	}

	// The address becomes a nas row's (a range here): nobody else claims it.
	y := insert("81000062")
	if _, err := db.Pool.Exec(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ('2001:db8::/64', 'v6-range', 'x')`); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(t, db, on(r1, interimOf(y, v6))); got[0] != nettportal.RecordForeignSession {
		t.Fatalf("router 1 on a row of the range's address: %v, want foreign", got[0])
	}
	if id := owner(y.UniqueID); id != 0 {
		t.Fatalf("row claimed by %d, want unowned", id)
	}
}

// An Accounting-On naming a NAS-IPv6-Address closes the open rows
// FreeRADIUS wrote with that address (no nas row covers it), as
// FreeRADIUS's own accounting_onoff_query would; a row of an address a nas
// row covers is that row's and stays open.
func TestAccountingOnClosesRowsOfTheNamedAddress(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, _ := twoRouters(t, db)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ('2001:db8:1::/48', 'v6-range', 'x')`); err != nil {
		t.Fatal(err)
	}
	for _, row := range [][2]string{{"named", "2001:db8::11"}, {"other", "2001:db8::12"}, {"ranged", "2001:db8:1::11"}} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, acctupdatetime)
			VALUES ($1, $1, 'fr6', $2::inet, now() - interval '1 hour', now() - interval '1 hour')`, row[0], row[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, nas := range []string{"2001:db8::11", "2001:db8:1::11"} {
		on := nettportal.AccountingRecord{Status: nettportal.StatusAccountingOn, RouterID: r1.ID, EventTime: time.Now(), NASIP: netip.MustParseAddr(nas)}
		if err := db.ApplyAccounting(ctx, []nettportal.AccountingRecord{on}); err != nil {
			t.Fatal(err)
		}
	}
	for uid, wantClosed := range map[string]bool{"named": true, "other": false, "ranged": false} {
		var closed bool
		var nasID *int64
		if err := db.Pool.QueryRow(ctx, `SELECT acctstoptime IS NOT NULL, nas_id FROM radacct WHERE acctuniqueid = $1`, uid).Scan(&closed, &nasID); err != nil {
			t.Fatal(err)
		}
		if closed != wantClosed || closed && (nasID == nil || *nasID != r1.ID) {
			t.Errorf("%s: closed %v (want %v), nas_id %v", uid, closed, wantClosed, nasID)
		}
	}
}

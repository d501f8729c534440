package store_test

import (
	"context"
	"maps"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// quarantineRow is one accounting_quarantine row as the test reads it.
type quarantineRow struct {
	raw      []byte
	repeats  int64
	sqlstate string
}

func quarantineRows(t *testing.T, db *store.DB) map[string]quarantineRow {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT nas_id || ' ' || record_key, raw, repeats, sqlstate FROM accounting_quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]quarantineRow{}
	for rows.Next() {
		var k string
		var r quarantineRow
		if err := rows.Scan(&k, &r.raw, &r.repeats, &r.sqlstate); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[k]; dup {
			t.Errorf("two quarantine rows for %s", k)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A router sends a refused record again (after the listener's dedupe
// window, or with a new Identifier and Acct-Delay-Time, so other bytes):
// the quarantine keeps one row per record, the first copy's packet, with
// the copies counted. Different records of one session (its Start, its
// Interims by Acct-Session-Time or, without one, by event second) and the
// same record from another router stay apart. Both ways into the
// quarantine dedupe: a record refused before any round trip
// (checkStorable) and one PostgreSQL refuses (the savepoint split).
func TestQuarantineKeepsOneRowPerRecord(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	r1, r2 := twoRouters(t, db)
	copyOf := func(x nettportal.AccountingRecord, raw byte) nettportal.AccountingRecord {
		x.Raw = []byte{4, raw, 0, 20}
		x.Source = netip.MustParseAddrPort("127.0.0.11:40000")
		return x
	}
	start := on(r1, rec(nettportal.StatusStart, "bad\x00user", "81000001", 0))
	interim := func(secs uint32) nettportal.AccountingRecord {
		return on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "bad\x00user", "81000001", time.Duration(secs)*time.Second), secs, 1, 1))
	}
	noTime := func(at time.Duration) nettportal.AccountingRecord {
		x := on(r1, rec(nettportal.StatusInterimUpdate, "bad\x00user", "81000001", at))
		x.SessionTime = nil
		return x
	}
	good := on(r2, rec(nettportal.StatusStart, "good", "82000001", 0))
	batches := [][]nettportal.AccountingRecord{
		{copyOf(start, 1), good},
		{copyOf(start, 2)}, // the retransmission, other bytes
		{copyOf(interim(60), 3), copyOf(interim(60), 4), copyOf(interim(120), 5)}, // copies in one batch too
		{copyOf(noTime(3*time.Minute), 6), copyOf(noTime(3*time.Minute+300*time.Millisecond), 7), copyOf(noTime(4*time.Minute), 8)},
		{on(r2, copyOf(start, 9))}, // another router's record: its own row
	}
	for _, b := range batches {
		for i, o := range outcomes(t, db, b...) {
			if want := b[i].Username != "good"; (o == nettportal.RecordQuarantined) != want {
				t.Fatalf("%s %s: outcome %v", b[i].Status, b[i].Username, o)
			}
		}
	}
	rows := quarantineRows(t, db)
	if len(rows) != 6 {
		t.Errorf("%d quarantine rows, want 6 (the Start, 2 Interims by session time, 2 by event second; r2's Start): %v", len(rows), rows)
	}
	id := func(r nettportal.Router) string { return strconv.FormatInt(r.ID, 10) + " " }
	for key, want := range map[string]struct {
		repeats int64
		raw     byte
	}{
		id(r1) + "1|" + start.UniqueID:                                            {2, 1},
		id(r1) + "3|" + start.UniqueID + "|t=60":                                  {2, 3},
		id(r1) + "3|" + start.UniqueID + "|t=120":                                 {1, 5},
		id(r1) + "3|" + start.UniqueID + "|e=" + fmtSecond(t0.Add(3*time.Minute)): {2, 6},
		id(r1) + "3|" + start.UniqueID + "|e=" + fmtSecond(t0.Add(4*time.Minute)): {1, 8},
		id(r2) + "1|" + start.UniqueID:                                            {1, 9},
	} {
		got, ok := rows[key]
		if !ok {
			t.Errorf("no quarantine row %q", key)
			continue
		}
		if got.repeats != want.repeats || len(got.raw) < 2 || got.raw[1] != want.raw {
			t.Errorf("%s: repeats %d, raw %x; want %d and the first copy's packet (%d)", key, got.repeats, got.raw, want.repeats, want.raw)
		}
	}
	// The routers page counts records, not copies.
	states, err := db.RouterStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if states[r1.ID].QuarantinedRecords != 5 || states[r2.ID].QuarantinedRecords != 1 {
		t.Errorf("quarantined records per router %d, %d; want 5, 1", states[r1.ID].QuarantinedRecords, states[r2.ID].QuarantinedRecords)
	}

	// A record PostgreSQL itself refuses (a site's own constraint here)
	// goes through the savepoint split, and dedupes the same way.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE radacct ADD CONSTRAINT test_no_evil CHECK (username <> 'evil')`); err != nil {
		t.Fatal(err)
	}
	evil := on(r2, rec(nettportal.StatusStart, "evil", "83000001", 0))
	for i := range 2 {
		if o := outcomes(t, db, good, copyOf(evil, byte(20+i))); o[1] != nettportal.RecordQuarantined || o[0] != nettportal.RecordStored {
			t.Fatalf("copy %d: outcomes %v", i, o)
		}
	}
	if got := quarantineRows(t, db)[id(r2)+"1|"+evil.UniqueID]; got.repeats != 2 || got.sqlstate != "23514" || got.raw[1] != 20 {
		t.Errorf("refused by PostgreSQL twice: %+v, want one row, 2 copies, SQLSTATE 23514, the first packet", got)
	}

	// The list operators read: newest copy first, per router or all.
	all, err := db.Quarantine(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 || all[0].AcctUniqueID != evil.UniqueID || all[0].Repeats != 2 || all[0].SQLState != "23514" {
		t.Fatalf("Quarantine(all): %d entries, first %+v", len(all), all[0])
	}
	for i := 1; i < len(all); i++ {
		if all[i].LastSeen.After(all[i-1].LastSeen) {
			t.Errorf("entry %d seen after entry %d: not newest first", i, i-1)
		}
	}
	mine, err := db.Quarantine(ctx, r1.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 {
		t.Fatalf("Quarantine(r1, 2): %d entries", len(mine))
	}
	for _, e := range mine {
		if e.RouterID != r1.ID || e.Status != nettportal.StatusInterimUpdate || e.Source != "127.0.0.11:40000" ||
			e.Fields["username"] != `bad\x00user` || e.Fields["acct_session_id"] != "81000001" || e.SQLState != "22021" ||
			e.LastSeen.Before(e.At) || e.Error == "" {
			t.Errorf("entry %+v", e)
		}
	}
}

func fmtSecond(at time.Time) string { return at.UTC().Format("2006-01-02T15:04:05") }

// Rows quarantined before migration 0006 get the key the server computes,
// their copies are merged into one row, and a later copy of the same
// record joins that row.
func TestQuarantineMigrationMergesCopies(t *testing.T) {
	t.Parallel()
	url := storetest.MustCreateDatabase(t)
	db := openUnmigrated(t, url)
	ctx := context.Background()
	migs, err := nettportal.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 6 || migs[5].Name != "quarantine_dedupe" {
		t.Fatalf("migration 0006 is %q", migs[5].Name)
	}
	store.SetMigrations(db, migs[:5])
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The router as schema 5 stores it: today's CreateRouter needs the
	// later migrations' columns.
	r1 := nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11")}
	if err := db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ('127.0.0.11', 'r1', 's1') RETURNING id`).Scan(&r1.ID); err != nil {
		t.Fatal(err)
	}
	interim := on(r1, withCounters(rec(nettportal.StatusInterimUpdate, "bad\x00user", "81000001", time.Minute), 60, 1, 1))
	start := on(r1, rec(nettportal.StatusStart, "bad\x00user", "81000001", 0))
	accOn := on(r1, rec(nettportal.StatusAccountingOn, "", "", 90*time.Second))
	accOn.UniqueID = ""
	// As the code before 0006 wrote them: three copies of the Interim,
	// two of the Start, one Accounting-On, and a row without fields.
	ins := func(x nettportal.AccountingRecord, at time.Time, raw byte, fields string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO accounting_quarantine (at, nas_id, source, status, acctuniqueid, raw, fields, error, sqlstate)
			VALUES ($1, $2, '127.0.0.11:40000', $3, $4, $5, $6::jsonb, 'refused', '22021')`,
			at, x.RouterID, int64(x.Status), x.UniqueID, []byte{4, raw}, fields); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(x nettportal.AccountingRecord) string { return x.EventTime.UTC().Format(time.RFC3339Nano) }
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ins(interim, base, 1, `{"event_time": "`+ev(interim)+`", "session_time": 60}`)
	ins(interim, base.Add(time.Minute), 2, `{"event_time": "`+ev(interim)+`", "session_time": 60}`)
	ins(interim, base.Add(2*time.Minute), 3, `{"event_time": "`+ev(interim)+`", "session_time": 60}`)
	ins(start, base, 4, `{"event_time": "`+ev(start)+`"}`)
	ins(start, base.Add(time.Minute), 5, `{"event_time": "`+ev(start)+`"}`)
	ins(accOn, base, 6, `{"event_time": "2026-11-25T10:01:30.25Z"}`)
	ins(accOn, base, 7, `{"error": "fields not encodable"}`)

	store.SetMigrations(db, migs)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := db.Quarantine(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("%d rows after the migration, want 4 (Interim, Start, Accounting-On, the one without fields)", len(all))
	}
	byRaw := map[byte]nettportal.QuarantinedRecord{}
	for _, e := range all {
		byRaw[e.Raw[1]] = e
	}
	if e := byRaw[1]; e.Repeats != 3 || !e.At.Equal(base) || !e.LastSeen.Equal(base.Add(2*time.Minute)) {
		t.Errorf("merged Interim: repeats %d, at %s, last seen %s", e.Repeats, e.At, e.LastSeen)
	}
	if e := byRaw[4]; e.Repeats != 2 {
		t.Errorf("merged Start: repeats %d", e.Repeats)
	}
	// A copy arriving now lands on the migrated rows: the keys agree (the
	// Accounting-On's by its event second, whatever the fraction).
	accOn.NASIdent = "r1\x00"
	accOn.EventTime = accOn.EventTime.Add(100 * time.Millisecond)
	for _, x := range []nettportal.AccountingRecord{interim, start, accOn} {
		if o := outcomes(t, db, x); o[0] != nettportal.RecordQuarantined {
			t.Fatalf("%s: %v", x.Status, o)
		}
	}
	after, err := db.Quarantine(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	copies := map[byte]int64{}
	for _, e := range after {
		copies[e.Raw[1]] = e.Repeats
	}
	if want := map[byte]int64{1: 4, 4: 3, 6: 2, 7: 1}; len(after) != 4 || !maps.Equal(copies, want) {
		t.Errorf("after three more copies: copies by first packet %v, want %v", copies, want)
	}
}

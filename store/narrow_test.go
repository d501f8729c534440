package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// The narrow update of existing sessions is an optimisation of the full
// upsert, so both must leave the same rows and the same usage. Random
// sessions (lost Starts and Stops, Stops without counters, records missing
// descriptive fields that later ones carry, profile changes, midnight,
// replays, reordering, an Accounting-On) go in the same random batches to
// two databases, one of them through the full upsert alone.
func TestNarrowUpdateMatchesFullUpsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	narrow := storetest.MustOpenDB(t)
	full := storetest.MustOpenDB(t)
	store.SetFullUpsertOnly(full, true)

	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2026, 11, 24, 23, 20, 0, 0, time.UTC)
	var all []nettportal.AccountingRecord
	for s := 0; s < 400; s++ {
		user := fmt.Sprintf("u%04d", s)
		sid := fmt.Sprintf("%08x", 0x84000000+s)
		start := base.Add(time.Duration(rng.IntN(40)) * time.Minute)
		mk := func(status nettportal.StatusType, step int) nettportal.AccountingRecord {
			r := rec(status, user, sid, 0)
			r.EventTime = start.Add(time.Duration(step) * 10 * time.Minute)
			if rng.IntN(8) == 0 {
				r.FramedIP = netip.Addr{} // a record without some fields
				r.CallingStation = ""
			}
			if rng.IntN(10) == 0 {
				r.Class = fmt.Sprintf("class-%d", step)
			}
			if rng.IntN(6) == 0 {
				r.Profile = fmt.Sprintf("plan-%d", rng.IntN(3))
			}
			if status != nettportal.StatusStart {
				r = withCounters(r, uint32(step*600), uint64(step)*1000+uint64(rng.IntN(10)), uint64(step)*9000)
			}
			return r
		}
		interims := rng.IntN(6)
		var recs []nettportal.AccountingRecord
		if rng.IntN(6) != 0 {
			recs = append(recs, mk(nettportal.StatusStart, 0))
		}
		for k := 1; k <= interims; k++ {
			recs = append(recs, mk(nettportal.StatusInterimUpdate, k))
		}
		switch rng.IntN(6) {
		case 0: // lost Stop
		case 1: // Stop without counters
			st := mk(nettportal.StatusStop, interims+1)
			st.InputOctets, st.OutputOctets, st.SessionTime = nil, nil, nil
			recs = append(recs, stop(st, "Lost-Carrier"))
		default:
			recs = append(recs, stop(mk(nettportal.StatusStop, interims+1), "User-Request"))
		}
		for _, r := range recs {
			all = append(all, r)
			if rng.IntN(7) == 0 {
				all = append(all, r) // a replay
			}
		}
	}
	// Mostly in order, with local reordering.
	for i := range all {
		if j := i + rng.IntN(5); j < len(all) {
			all[i], all[j] = all[j], all[i]
		}
	}
	on := rec(nettportal.StatusAccountingOn, "", "", 0)
	on.EventTime = base.Add(25 * time.Minute)
	mid := len(all) / 2
	all = append(all[:mid:mid], append([]nettportal.AccountingRecord{on}, all[mid:]...)...)

	for off := 0; off < len(all); {
		n := 1 + rng.IntN(60)
		end := min(off+n, len(all))
		for _, db := range []*store.DB{narrow, full} {
			if err := db.ApplyAccounting(ctx, all[off:end]); err != nil {
				t.Fatal(err)
			}
		}
		off = end
	}

	dump := func(db *store.DB, q string) []string {
		t.Helper()
		rows, err := db.Pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals...))
		}
		return out
	}
	cols := `SELECT acctuniqueid, ` + strings.Join([]string{"acctsessionid", "username", "realm", "nasipaddress", "nasportid",
		"nasporttype", "acctstarttime", "acctupdatetime", "acctstoptime", "acctinterval", "acctsessiontime",
		"acctauthentic", "connectinfo_start", "connectinfo_stop", "acctinputoctets", "acctoutputoctets",
		"calledstationid", "callingstationid", "acctterminatecause", "servicetype", "framedprotocol",
		"framedipaddress", "framedipv6address", "framedipv6prefix", "framedinterfaceid", "delegatedipv6prefix",
		"class", "nas_id", "nasidentifier", "closed_by", "acctinputpackets", "acctoutputpackets", "profile",
		"has_start", "prev_updatetime", "prev_inputoctets", "prev_outputoctets", "source", "input_bps",
		"output_bps", "mark_at", "mark_day"}, "||'|'||") + ` FROM radacct ORDER BY acctuniqueid`
	cols = strings.ReplaceAll(cols, "||'|'||", ", ")
	for _, q := range []string{cols,
		`SELECT * FROM usage_days ORDER BY acctuniqueid, day`,
		`SELECT * FROM usage_by_day('2026-11-01', '2026-11-30')`} {
		a, b := dump(narrow, q), dump(full, q)
		if len(a) != len(b) {
			t.Fatalf("%d rows through the narrow update, %d through the full upsert (%s)", len(a), len(b), q)
		}
		if len(a) == 0 {
			t.Fatalf("no rows: %s", q)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("differs (%s):\nnarrow: %s\nfull:   %s", q, a[i], b[i])
			}
		}
	}
	// The test is only worth something if both paths and the fills ran.
	var stopped, filled int
	narrow.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE acctstoptime IS NOT NULL), count(*) FILTER (WHERE class IS NOT NULL) FROM radacct`).Scan(&stopped, &filled)
	if stopped == 0 || filled == 0 {
		t.Fatalf("the random sessions missed cases: %d stopped, %d with a class", stopped, filled)
	}
	if n := store.NarrowApplied(narrow); n < int64(len(all))/3 {
		t.Fatalf("the narrow update applied %d of %d records", n, len(all))
	}
	if n := store.NarrowApplied(full); n != 0 {
		t.Fatalf("the full-upsert database took %d records through the narrow update", n)
	}
	t.Logf("%d records, %d through the narrow update", len(all), store.NarrowApplied(narrow))
}

// Batches that share sessions, mixing records for the narrow update with
// records for the full upsert (as the spool's replay and live traffic do
// after an outage), must not deadlock: each waits for the other instead.
func TestMixedBatchesSharingSessionsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MustOpenDB(t)
	const sessions = 300
	session := func(i int) (string, string) { return fmt.Sprintf("d%04d", i), fmt.Sprintf("%08x", 0x85000000+i) }
	var starts []nettportal.AccountingRecord
	for i := 0; i < sessions; i += 2 { // half the sessions have their row
		u, sid := session(i)
		starts = append(starts, rec(nettportal.StatusStart, u, sid, 0))
	}
	mustApply(t, db, starts)
	errc := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for b := 0; b < 40; b++ {
				var batch []nettportal.AccountingRecord
				for _, i := range rng.Perm(sessions)[:120] {
					u, sid := session(i)
					if rng.IntN(3) == 0 {
						batch = append(batch, rec(nettportal.StatusStart, u, sid, 0))
						continue
					}
					step := time.Duration(1+rng.IntN(50)) * time.Minute
					batch = append(batch, withCounters(rec(nettportal.StatusInterimUpdate, u, sid, step), uint32(step/time.Second), uint64(step), uint64(step)))
				}
				if err := db.ApplyAccounting(ctx, batch); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}(w)
	}
	for w := 0; w < 4; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

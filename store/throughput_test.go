package store_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// sessionOn is rec for a session of user on router id (named "r<id>").
func sessionOn(id int64, user, sid string) nettportal.AccountingRecord {
	r := rec(nettportal.StatusStart, user, sid, 0)
	r.RouterID = id
	r.NASIP = netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + id)})
	r.NASIdent = "r" + string(rune('0'+id))
	r.UniqueID = nettportal.AcctUniqueID(user, sid, r.NASIP.String(), r.NASIdent, r.NASPortID, "2164260876")
	r.EventTime = time.Now().Add(-3 * time.Hour)
	return r
}

// TestThroughput: samples become per-router, per-bucket sums of each
// session's average rate (a session sampled twice in a bucket counts once,
// at its rate over both), a delta belongs to the bucket of its later
// sample, a bucket starts at its boundary, the bucket cut by the window's
// start and anything older are left out, and no samples is no points.
func TestThroughput(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	const bucket, span = 10 * time.Minute, time.Hour
	// The window ends at a time of the test's choosing, so no bucket
	// boundary can pass between placing the samples and the query.
	now := time.Now()

	if got, err := db.Throughput(ctx, now, span, bucket); err != nil || len(got) != 0 {
		t.Fatalf("no samples: %v, %v; want no points", got, err)
	}
	for _, bad := range [][2]time.Duration{{0, bucket}, {span, time.Millisecond}, {2001 * time.Second, time.Second}} {
		if _, err := db.Throughput(ctx, now, bad[0], bad[1]); err == nil {
			t.Errorf("Throughput(%v, %v) accepted", bad[0], bad[1])
		}
	}

	for _, r := range []string{"r1", "r2"} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ($1, $2, 's')`,
			"127.0.0.1"+r[1:], r); err != nil {
			t.Fatal(err)
		}
	}
	a, b := sessionOn(1, "alice", "81000001"), sessionOn(1, "bob", "81000002")
	c, e := sessionOn(2, "carol", "81000003"), sessionOn(2, "erin", "81000004")
	old := sessionOn(2, "olga", "81000005")
	mustApply(t, db, []nettportal.AccountingRecord{a, b, c, e, old})

	b0 := now.Truncate(bucket) // the current bucket
	x := b0.Add(-2 * bucket)   // a full bucket well inside the window
	first := b0.Add(-5 * bucket)
	type sample struct {
		r       nettportal.AccountingRecord
		at      time.Time
		in, out int64
	}
	mins := func(n float64) time.Duration { return time.Duration(n * float64(time.Minute)) }
	samples := []sample{
		// alice: 1,000 B/s down, 250 B/s up across x, sampled three times
		// in it; her next sample is in x+1.
		{a, x.Add(mins(1)), 0, 0}, {a, x.Add(mins(3)), 30_000, 120_000}, {a, x.Add(mins(5)), 60_000, 240_000},
		{a, x.Add(mins(11)), 150_000, 600_000},
		// bob: 500 B/s down in x.
		{b, x.Add(mins(2)), 0, 0}, {b, x.Add(mins(4)), 0, 60_000},
		// carol on r2: 500 B/s down in x; her next sample is exactly on
		// x+1's first instant and belongs there.
		{c, x.Add(mins(1)), 0, 0}, {c, x.Add(mins(2)), 0, 30_000}, {c, x.Add(bucket), 0, 270_000},
		// erin on r2: her first sample lies in the bucket the window's
		// start cuts (left out), her second in the first full one; the
		// delta between them counts there.
		{e, first.Add(-bucket).Add(10 * time.Second), 0, 0}, {e, first.Add(10 * time.Second), 0, 600_000},
		// olga: samples two hours old, outside the window.
		{old, b0.Add(-2 * time.Hour), 0, 0}, {old, b0.Add(-2 * time.Hour).Add(mins(1)), 0, 60_000},
		// A counter that went down (a router reboot) is no negative rate.
		{b, x.Add(mins(12)), 0, 10_000}, {b, x.Add(mins(14)), 0, 70_000},
	}
	for _, s := range samples {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO session_samples (acctuniqueid, at, input_octets, output_octets) VALUES ($1, $2, $3, $4)`,
			s.r.UniqueID, s.at, s.in, s.out); err != nil {
			t.Fatal(err)
		}
	}

	got, err := db.Throughput(ctx, now, span, bucket)
	if err != nil {
		t.Fatal(err)
	}
	type point struct {
		At                time.Time
		Router            string
		Sessions, In, Out int64
	}
	var have []point
	for _, p := range got {
		have = append(have, point{p.At.UTC(), p.Router, p.Sessions, p.InputBps, p.OutputBps})
	}
	want := []point{
		{first.UTC(), "r2", 1, 0, 8000},       // erin: 600,000 B over 600 s
		{x.UTC(), "r1", 2, 2000, 8000 + 4000}, // alice 1,000 B/s and bob 500 B/s down
		{x.UTC(), "r2", 1, 0, 4000},           // carol
		// x+1: alice 90,000 B up, 360,000 B down over 6 min; bob's drop
		// counts 0 over its 8 min, then 60,000 B in 2: 800 bps over 10.
		{x.Add(bucket).UTC(), "r1", 2, 2000, 8000 + 800},
		{x.Add(bucket).UTC(), "r2", 1, 0, 4000}, // carol: 240,000 B over 8 min
	}
	if !slices.Equal(have, want) {
		t.Errorf("throughput:\n got %+v\nwant %+v", have, want)
	}
}

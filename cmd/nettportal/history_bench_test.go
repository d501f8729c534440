package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// historyRows is the closed-session history BenchmarkHistory builds:
// NETTPORTAL_BENCH_HISTORY_ROWS, default 20,000,000 (a few years of a
// mid-sized ISP).
func historyRows(tb testing.TB) int {
	v := os.Getenv("NETTPORTAL_BENCH_HISTORY_ROWS")
	if v == "" {
		return 20_000_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("NETTPORTAL_BENCH_HISTORY_ROWS=%q: want a row count", v)
	}
	return n
}

const (
	historyRouters = 200
	historyOpen    = 50_000
)

// BenchmarkHistory measures what a large history costs: accounting ingest
// through the real serve wiring and the live page's queries over 50,000
// open sessions on 200 routers, first without history, then with
// NETTPORTAL_BENCH_HISTORY_ROWS closed sessions spread over the same
// routers and two years. It prints both sets of figures side by side. It
// runs once (make bench uses -benchtime 1x).
func BenchmarkHistory(b *testing.B) {
	rows := historyRows(b)
	dbURL := storetest.MustCreateDatabase(b)
	mustRun(b, "migrate", "--db", dbURL)
	ctx := context.Background()
	db, err := store.OpenWith(ctx, dbURL, store.Options{MaxConns: 4, StatementTimeout: -1}, zerolog.Nop()) // seeding runs longer than a page may
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	load := sim.LoadConfig{Secret: "hist-load", Routers: 20, SessionsPerRouter: 1000, InterimsPerSession: 3,
		Concurrency: 2048, Timeout: 2 * time.Second}
	for _, r := range load.NASRouters() {
		if err := db.CreateRouter(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
	minID := seedHistoryRouters(b, db)
	seedOpen(b, db, minID)
	vacuum(b, db)
	// The seeded open sessions get no interims: keep the stale sweep off
	// them for the length of the run.
	srv := startServe(b, dbURL, "--log-level", "warn", "--stale-grace", "100000h")
	load.Server = srv.AcctAddr

	before := measureHistory(b, db, load)
	took := seedHistory(b, db, minID, rows)
	var size string
	if err := db.Pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('radacct'))`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("history: %d closed sessions inserted in %v (%.0f rows/s, INSERT ... SELECT); radacct with indexes: %s\n",
		rows, took.Round(time.Second), float64(rows)/took.Seconds(), size)
	after := measureHistory(b, db, load)

	fmt.Printf("\n%-40s %20s %20s\n", "", "without history", fmt.Sprintf("with %d closed", rows))
	for i := range before {
		fmt.Printf("%-40s %20s %20s\n", before[i].name, before[i].value, after[i].value)
	}
	b.ReportMetric(after[0].num, "ingest-pkt/s")
	b.ReportMetric(before[0].num, "ingest-empty-pkt/s")
}

type figure struct {
	name, value string
	num         float64
}

// measureHistory times the live page's queries, then runs one accounting
// load through serve.
func measureHistory(b *testing.B, db *store.DB, load sim.LoadConfig) []figure {
	ctx := context.Background()
	var open int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE acctstoptime IS NULL`).Scan(&open); err != nil {
		b.Fatal(err)
	}
	if open < historyOpen {
		b.Fatalf("%d open sessions, want at least %d (did something close them?)", open, historyOpen)
	}
	out := []figure{{"open sessions", strconv.FormatInt(open, 10), float64(open)}}
	timeIt := func(name string, f func() error) {
		const runs = 30
		lat := make([]time.Duration, 0, runs)
		for range runs {
			t := time.Now()
			if err := f(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			lat = append(lat, time.Since(t))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50, p95 := lat[len(lat)/2], lat[len(lat)*95/100]
		out = append(out, figure{name + " p50/p95", fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p95)), ms(p95)})
	}
	views := []struct {
		name string
		f    nettportal.SessionFilter
	}{
		{"sessions: default page", nettportal.SessionFilter{Limit: 50}},
		{"sessions: one router", nettportal.SessionFilter{Router: "h-007", Limit: 50}},
		{"sessions: username search", nettportal.SessionFilter{Query: "user0123", Limit: 50}},
		{"sessions: sort by download", nettportal.SessionFilter{Sort: "output_octets", Order: "desc", Limit: 50}},
		{"sessions: router history (closed)", nettportal.SessionFilter{Router: "h-007", Closed: true, Limit: 50}},
	}
	for _, v := range views {
		timeIt(v.name, func() error { _, err := db.Sessions(ctx, v.f); return err })
	}
	timeIt("metrics: open per router", func() error { _, err := db.OpenSessionCounts(ctx); return err })
	timeIt("floor: count(*) open", func() error {
		var n int64
		return db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE acctstoptime IS NULL`).Scan(&n)
	})
	// The load last: its updates leave dead rows the queries above should
	// not see (the history fill vacuums before the second measurement).
	res, err := sim.RunLoad(ctx, load)
	if err != nil {
		b.Fatal(err)
	}
	return append([]figure{
		{"ingest (acked after commit)", fmt.Sprintf("%.0f pkt/s", res.PacketsPerSecond()), res.PacketsPerSecond()},
		{"ingest ack p50 / p99", fmt.Sprintf("%.1f / %.1f ms", ms(res.P50), ms(res.P99)), ms(res.P99)},
		{"ingest failed / retransmits", fmt.Sprintf("%d / %d", res.Failed, res.Retransmits), float64(res.Failed)},
	}, out...)
}

// seedHistoryRouters adds the 200 routers the history belongs to (they
// send nothing; their addresses are outside loopback) and returns the
// first one's id; the ids are consecutive.
func seedHistoryRouters(b *testing.B, db *store.DB) int64 {
	var minID int64
	err := db.Pool.QueryRow(context.Background(), `WITH ins AS (
		INSERT INTO nas (nasname, shortname, secret)
		SELECT host('10.20.0.0'::inet + i), 'h-' || lpad(i::text, 3, '0'), 'unused'
		FROM generate_series(0, $1 - 1) i ORDER BY i RETURNING id)
		SELECT min(id) FROM ins`, historyRouters).Scan(&minID)
	if err != nil {
		b.Fatalf("seed routers: %v", err)
	}
	return minID
}

// seedOpen adds the open sessions, spread over the history routers, with
// a previous interim so rates are set.
func seedOpen(b *testing.B, db *store.DB, minID int64) {
	_, err := db.Pool.Exec(context.Background(), `INSERT INTO radacct (acctsessionid, acctuniqueid, username,
		nasipaddress, nas_id, nasidentifier, nasportid, nasporttype, acctstarttime, acctupdatetime, acctinterval,
		acctsessiontime, acctauthentic, acctinputoctets, acctoutputoctets, calledstationid, callingstationid,
		servicetype, framedprotocol, framedipaddress, has_start, prev_updatetime, prev_inputoctets, prev_outputoctets)
		SELECT to_hex(2181038080 + i), md5('open' || i), 'user' || lpad(i::text, 6, '0'),
			'10.20.0.0'::inet + (i % $2), $3 + (i % $2), 'h-' || lpad((i % $2)::text, 3, '0'),
			'<pppoe-user' || i || '>', 'Ethernet',
			now() - make_interval(secs => 300 + (i * 7919) % 864000), now() - make_interval(secs => i % 300), 300,
			300 + (i * 7919) % 864000, 'RADIUS',
			(i::bigint * 104729) % 50000000000, (i::bigint * 1299709) % 200000000000, 'isp-pppoe',
			'AA:BB:' || upper(lpad(to_hex(i), 8, '0')), 'Framed-User', 'PPP', '100.64.0.0'::inet + i, true,
			now() - make_interval(secs => 300 + i % 300),
			greatest((i::bigint * 104729) % 50000000000 - (i * 31) % 100000000, 0),
			greatest((i::bigint * 1299709) % 200000000000 - (i * 97) % 1000000000, 0)
		FROM generate_series(0, $1 - 1) i`, historyOpen, historyRouters, minID)
	if err != nil {
		b.Fatalf("seed open sessions: %v", err)
	}
}

// seedHistory inserts n closed sessions on the server side, in chunks so a
// long fill shows progress, over two years ending three days ago, with the
// table's indexes in place (as a real history grows).
func seedHistory(b *testing.B, db *store.DB, minID int64, n int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	const chunk = 1_000_000
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		_, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id,
			nasidentifier, nasportid, nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctinterval,
			acctsessiontime, acctauthentic, acctinputoctets, acctoutputoctets, calledstationid, callingstationid,
			acctterminatecause, servicetype, framedprotocol, framedipaddress, has_start, closed_by)
			SELECT to_hex(2164260864 + i % 16777216), md5('hist' || i), 'user' || lpad((i % 100000)::text, 6, '0'),
				'10.20.0.0'::inet + (i % $4), $3 + (i % $4), 'h-' || lpad((i % $4)::text, 3, '0'),
				'<pppoe-user' || (i % 100000) || '>', 'Ethernet', st, st + dur, st + dur, 300,
				extract(epoch FROM dur)::bigint, 'RADIUS',
				(i::bigint * 104729) % 50000000000, (i::bigint * 1299709) % 200000000000, 'isp-pppoe',
				'AA:BB:' || upper(lpad(to_hex(i % 16777216), 8, '0')),
				(ARRAY['User-Request','Lost-Carrier','Idle-Timeout','NAS-Reboot'])[1 + i % 4],
				'Framed-User', 'PPP', '100.64.0.0'::inet + (i % 65536), true, 'stop'
			FROM (SELECT i, now() - interval '733 days' + (i::float8 / $5) * interval '730 days' AS st,
				make_interval(secs => 60 + (i * 7919) % 259200) AS dur
				FROM generate_series($1::bigint, $2::bigint - 1) i) g`, lo, hi, minID, historyRouters, max(n, 1))
		if err != nil {
			b.Fatalf("seed history rows %d-%d: %v", lo, hi, err)
		}
		if n > chunk {
			fmt.Printf("history: %d / %d rows (%v)\n", hi, n, time.Since(start).Round(time.Second))
		}
	}
	took := time.Since(start)
	vacuum(b, db)
	return took
}

// vacuum brings the table to steady state (what autovacuum would do):
// statistics and the visibility map for index-only scans.
func vacuum(b *testing.B, db *store.DB) {
	if _, err := db.Pool.Exec(context.Background(), `VACUUM (ANALYZE) radacct`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package store_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// SeedOpenSessions fills radacct with n open sessions on 20 routers, each
// with a customer, counters and a previous interim (so rates are set), and
// a tenth as many closed ones as history. It writes with INSERT ... SELECT
// because 100,000 sessions through the accounting path would take the
// benchmark's whole time budget.
func seedOpenSessions(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	stmts := []string{
		`INSERT INTO nas (nasname, shortname, secret) SELECT '127.0.1.' || i, 'r' || lpad(i::text, 2, '0'), 's'
			FROM generate_series(1, 20) i`,
		fmt.Sprintf(`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id, nasportid,
			acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets,
			callingstationid, framedipaddress, has_start, prev_updatetime, prev_inputoctets, prev_outputoctets, closed_by)
		SELECT to_hex(2164260864 + i), md5(i::text), 'user' || lpad((i %% %[1]d)::text, 6, '0'),
			('127.0.1.' || (1 + i %% 20))::inet, (SELECT id FROM nas WHERE shortname = 'r' || lpad((1 + i %% 20)::text, 2, '0')),
			'<pppoe-user' || i || '>',
			now() - make_interval(secs => 300 + (i * 7919) %% 864000), now() - make_interval(secs => (i %% 300)),
			CASE WHEN i >= %[1]d THEN now() END, (i * 7919) %% 864000,
			(i::bigint * 104729) %% 50000000000, (i::bigint * 1299709) %% 200000000000,
			'AA:BB:' || upper(lpad(to_hex(i), 8, '0')), '100.64.0.0'::inet + i, true,
			now() - make_interval(secs => 300 + (i %% 300)),
			greatest((i::bigint * 104729) %% 50000000000 - (i * 31) %% 100000000, 0),
			greatest((i::bigint * 1299709) %% 200000000000 - (i * 97) %% 1000000000, 0),
			CASE WHEN i >= %[1]d THEN 'stop' END
		FROM generate_series(0, %[2]d - 1) i`, n, n+n/10),
		fmt.Sprintf(`INSERT INTO customers (name, username, profile)
			SELECT (ARRAY['Hansen','Berg','Olsen','Dahl','Lie'])[1 + i %% 5] || ' ' || i, 'user' || lpad(i::text, 6, '0'),
				(ARRAY['10M','50M','100M','1G'])[1 + i %% 4]
			FROM generate_series(0, %d - 1) i`, n),
		`ANALYZE nas`, `ANALYZE radacct`, `ANALYZE customers`,
	}
	for _, s := range stmts {
		if _, err := db.Pool.Exec(ctx, s); err != nil {
			tb.Fatalf("seed: %v\n%s", err, s)
		}
	}
}

// BenchmarkSessionsAPI measures the live page's query (a sorted, filtered
// page plus the totals of the selection) over 100,000 open sessions and
// prints p50/p95 per kind of view. The target is p95 < 50 ms. A bare
// count(*) of the open sessions is printed as the in-run floor.
func BenchmarkSessionsAPI(b *testing.B) {
	db := storetest.MustOpenDB(b)
	ctx := context.Background()
	const n = 100000
	start := time.Now()
	seedOpenSessions(b, db, n)
	b.Logf("seeded %d open sessions in %v", n, time.Since(start).Round(time.Millisecond))
	views := []struct {
		name string
		f    nettportal.SessionFilter
	}{
		{"default (newest first)", nettportal.SessionFilter{}},
		{"username search", nettportal.SessionFilter{Query: "user0123"}},
		{"customer search", nettportal.SessionFilter{Query: "hansen 12"}},
		{"ip prefix", nettportal.SessionFilter{Query: "100.64.1"}},
		{"router", nettportal.SessionFilter{Router: "r07"}},
		{"router, sort by download", nettportal.SessionFilter{Router: "r07", Sort: "output_octets", Order: "desc"}},
		{"sort by rate desc", nettportal.SessionFilter{Sort: "output_bps", Order: "desc"}},
		{"sort by output_octets desc", nettportal.SessionFilter{Sort: "output_octets", Order: "desc"}},
		{"sort by customer", nettportal.SessionFilter{Sort: "customer"}},
		{"sort by username, page 20", nettportal.SessionFilter{Sort: "username", Offset: 1000}},
	}
	const runs = 40
	for n := 0; n < b.N; n++ {
		var floor []time.Duration
		for i := 0; i < runs; i++ {
			t := time.Now()
			var c int64
			if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM radacct WHERE acctstoptime IS NULL").Scan(&c); err != nil {
				b.Fatal(err)
			}
			floor = append(floor, time.Since(t))
		}
		p50, p95 := percentiles(floor)
		fmt.Printf("%-28s p50 %6.1f ms  p95 %6.1f ms\n", "floor: count(*) open", ms(p50), ms(p95))
		worst := time.Duration(0)
		for _, v := range views {
			var lat []time.Duration
			var total int64
			for i := 0; i < runs; i++ {
				t := time.Now()
				p, err := db.Sessions(ctx, v.f)
				if err != nil {
					b.Fatalf("%s: %v", v.name, err)
				}
				lat = append(lat, time.Since(t))
				total = p.Total
			}
			p50, p95 := percentiles(lat)
			worst = max(worst, p95)
			fmt.Printf("%-28s p50 %6.1f ms  p95 %6.1f ms  (%d matching)\n", v.name, ms(p50), ms(p95), total)
		}
		b.ReportMetric(ms(worst), "worst-p95-ms")
	}
}

func percentiles(d []time.Duration) (p50, p95 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)*95/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

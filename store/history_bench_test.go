package store_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// BenchmarkHistorySearch is issue 12's search target: substring searches
// over closed sessions (400,000, spread over 90 days, usernames of 60,000
// subscribers) and 50,000 customers, through Sessions (first page and
// total), over the last 30 days and over 90. It prints p50/p95 per search;
// the target is p95 < 1 s. Narrow searches match a few usernames or
// customers; broad ones match thousands (every customer's name has
// "ustomer" in it).
func BenchmarkHistorySearch(b *testing.B) {
	db := storetest.MustOpenDB(b)
	ctx := context.Background()
	const closed, customers, subscribers = 400000, 50000, 60000
	began := time.Now()
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO customers (name, username, profile)
			SELECT 'Customer ' || i, 'sub' || i, (ARRAY['home-10','home-50','biz-100'])[1 + i %% 3]
			FROM generate_series(0, %d - 1) i`, customers),
		fmt.Sprintf(`INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime,
				acctupdatetime, acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets, framedipaddress)
			SELECT to_hex(2164260864 + i), md5('h' || i), 'sub' || (i::bigint * 7919 %% %[1]d), '10.0.0.1',
				s, s + interval '1 hour', s + interval '1 hour', 3600, i::bigint * 1000, i::bigint * 5000, '100.64.0.0'::inet + (i %% 60000)
			FROM generate_series(0, %[2]d - 1) i,
				LATERAL (SELECT now() - interval '2 hours' - make_interval(secs => i * 90 * 86400.0 / %[2]d) AS s) t`,
			subscribers, closed),
		"ANALYZE",
	} {
		if _, err := db.AccountingPool().Exec(ctx, stmt); err != nil {
			b.Fatalf("seed: %v\n%s", err, stmt)
		}
	}
	fmt.Printf("history search: %d closed sessions, %d customers filled in %v\n", closed, customers, time.Since(began).Round(time.Millisecond))
	now := time.Now()
	searches := []struct{ name, q string }{
		{"username (narrow)", "sub4711"},
		{"customer name (narrow)", "Customer 4711"},
		{"username (broad)", "ub1"},
		{"customer name (broad)", "ustomer"},
		{"no match", "zzzz"},
		{"address prefix", "100.64.1"},
	}
	const runs = 15
	for n := 0; n < b.N; n++ {
		var worst time.Duration
		for _, days := range []int{30, 90} {
			for _, s := range searches {
				f := nettportal.SessionFilter{Closed: true, Query: s.q, Limit: 50,
					From: now.AddDate(0, 0, -days), To: now}
				lat := make([]time.Duration, runs)
				var total int64
				for i := range lat {
					start := time.Now()
					page, err := db.Sessions(ctx, f)
					if err != nil {
						b.Fatalf("%s over %d days: %v", s.name, days, err)
					}
					lat[i], total = time.Since(start), page.Total
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				p50, p95 := percentiles(lat)
				worst = max(worst, p95)
				fmt.Printf("history search %2d days %-24s %7d rows  p50 %7.1f ms  p95 %7.1f ms\n", days, s.name, total, ms(p50), ms(p95))
			}
		}
		b.ReportMetric(ms(worst), "worst-p95-ms")
	}
}

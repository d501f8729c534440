package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store/storetest"
)

// BenchmarkApplyAccounting measures the accounting upsert alone: batches of
// interims for many open sessions, one transaction each, fsync on. The
// "straight" figure upserts the same rows with the plainest possible
// statement in the same run, the limit this machine's Postgres allows.
func BenchmarkApplyAccounting(b *testing.B) {
	db := storetest.MustOpenDB(b)
	ctx := context.Background()
	const sessions, batchSize, rounds = 50000, 4096, 8
	recs := make([]nettportal.AccountingRecord, sessions)
	for i := range recs {
		sid := fmt.Sprintf("%08x", 0x81000000+i)
		recs[i] = rec(nettportal.StatusStart, fmt.Sprintf("user%06d", i), sid, 0)
	}
	apply := func(records []nettportal.AccountingRecord) {
		for off := 0; off < len(records); off += batchSize {
			end := min(off+batchSize, len(records))
			if err := db.ApplyAccounting(ctx, records[off:end]); err != nil {
				b.Fatal(err)
			}
		}
	}
	apply(recs)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		start := time.Now()
		for r := 1; r <= rounds; r++ {
			for i := range recs {
				recs[i] = withCounters(rec(nettportal.StatusInterimUpdate, recs[i].Username, recs[i].SessionID, time.Duration(r)*time.Minute), uint32(r*60), uint64(r)*1e6, uint64(r)*5e6)
			}
			apply(recs)
		}
		elapsed := time.Since(start)
		ours := float64(sessions*rounds) / elapsed.Seconds()

		// The same number of rows through a bare upsert of three columns.
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_straight (id text PRIMARY KEY, a bigint, b bigint)`); err != nil {
			b.Fatal(err)
		}
		ids := make([]string, sessions)
		for i := range ids {
			ids[i] = recs[i].UniqueID
		}
		start = time.Now()
		for r := 1; r <= rounds; r++ {
			for off := 0; off < sessions; off += batchSize {
				end := min(off+batchSize, sessions)
				if _, err := db.Pool.Exec(ctx, `INSERT INTO bench_straight SELECT unnest($1::text[]), $2, $2
					ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b`, ids[off:end], r); err != nil {
					b.Fatal(err)
				}
			}
		}
		straight := float64(sessions*rounds) / time.Since(start).Seconds()
		b.ReportMetric(ours, "rows/s")
		b.ReportMetric(straight, "straight-rows/s")
		var hot, upd int64
		db.Pool.QueryRow(ctx, "SELECT n_tup_hot_upd, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'radacct'").Scan(&hot, &upd)
		fmt.Printf("radacct updates %d, HOT %d\n", upd, hot)
		fmt.Printf("accounting upsert: %.0f rows/s; bare 3-column upsert of the same rows: %.0f rows/s (batches of %d, %d sessions)\n", ours, straight, batchSize, sessions)
	}
}

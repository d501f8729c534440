package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
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

// BenchmarkApplyByKind applies 40,000 Starts, then an interim and a Stop
// for each, in batches of 500, and prints per kind the records/s and the
// CPU PostgreSQL's backends spent per record (from /proc, so the figure
// holds on a busy machine where the rate does not). It is the profile of
// what each kind of record costs the database: a Start inserts into every
// index of radacct, an interim is a HOT update, a Stop a non-HOT one.
// "exact" has the router's own nas row only; "cidr" adds FreeRADIUS CIDR
// client rows, one of them covering the router's address, as a database
// shared with FreeRADIUS has (issue 13: ingest must not pay for them).
func BenchmarkApplyByKind(b *testing.B) {
	b.Run("exact", func(b *testing.B) { benchApplyByKind(b, nil) })
	b.Run("cidr", func(b *testing.B) {
		benchApplyByKind(b, []string{"127.0.0.0/8", "127.0.0.0/24", "10.0.0.0/8", "100.64.0.0/10", "2001:db8::/32"})
	})
}

func benchApplyByKind(b *testing.B, ranges []string) {
	db := storetest.MustOpenDB(b)
	ctx := context.Background()
	router := nettportal.Router{Name: "r1", IP: netip.MustParseAddr("127.0.0.11"), Secret: "s1"}
	if err := db.CreateRouter(ctx, &router); err != nil {
		b.Fatal(err)
	}
	for i, r := range ranges {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO nas (nasname, shortname, secret) VALUES ($1, $2, 'x')`, r, fmt.Sprintf("range-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	const sessions, batchSize = 40000, 500
	recs := make([]nettportal.AccountingRecord, sessions)
	apply := func(kind string, build func(i int) nettportal.AccountingRecord) {
		for i := range recs {
			recs[i] = build(i)
			recs[i].RouterID = router.ID
		}
		cpu0, cpuOK := backendCPU(ctx, db)
		start := time.Now()
		for off := 0; off < len(recs); off += batchSize {
			if err := db.ApplyAccounting(ctx, recs[off:min(off+batchSize, len(recs))]); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		cpu1, _ := backendCPU(ctx, db)
		line := fmt.Sprintf("%-6s %-8s %7.0f records/s", b.Name()[len("BenchmarkApplyByKind/"):], kind, float64(sessions)/elapsed.Seconds())
		if cpuOK {
			perRecord := float64(cpu1-cpu0) / float64(sessions)
			line += fmt.Sprintf(", PostgreSQL CPU %.1f µs per record", perRecord/1e3)
			b.ReportMetric(perRecord/1e3, "pg-µs/"+kind)
		}
		fmt.Println(line)
	}
	user := func(i int) string { return fmt.Sprintf("customer%06d", i) }
	sid := func(i int) string { return fmt.Sprintf("%08x", 0x81000000+i) }
	for n := 0; n < b.N; n++ {
		apply("start", func(i int) nettportal.AccountingRecord {
			return rec(nettportal.StatusStart, user(i), sid(i), 0)
		})
		apply("interim", func(i int) nettportal.AccountingRecord {
			return withCounters(rec(nettportal.StatusInterimUpdate, user(i), sid(i), time.Minute), 60, 1e6, 5e6)
		})
		apply("stop", func(i int) nettportal.AccountingRecord {
			return stop(withCounters(rec(nettportal.StatusStop, user(i), sid(i), 2*time.Minute), 120, 2e6, 9e6), "User-Request")
		})
	}
	// The ranges must not have taken the router's rows.
	var foreign int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM radacct WHERE nas_id IS DISTINCT FROM $1`, router.ID).Scan(&foreign); err != nil || foreign != 0 {
		b.Fatalf("%d rows not the router's (%v)", foreign, err)
	}
}

// backendCPU is the CPU time (user and system) the database's backends
// have used, read from /proc; false where that cannot be read (another
// host, another OS). Backends that connect during a phase count from 0.
func backendCPU(ctx context.Context, db *store.DB) (time.Duration, bool) {
	rows, err := db.Pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		return 0, false
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ
	var ticks int64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// Fields after the command name, which may hold spaces: state is
		// the first, utime the 12th, stime the 13th.
		_, rest, ok := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, false
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / ticksPerSecond, true
}

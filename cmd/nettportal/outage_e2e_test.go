package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store/pglocal"
)

// outageScenario is a database outage under load: serve keeps answering
// from its spool while PostgreSQL is down, and replays once it is back.
type outageScenario struct {
	Outage time.Duration // how long PostgreSQL is down
	Load   sim.LoadConfig
}

// outageFigures is what one outage run measured.
type outageFigures struct {
	Load          sim.LoadResult
	AckedInOutage float64 // packets answered while PostgreSQL was down
	OutageSeconds float64
	SpoolPeak     float64
	Replay        time.Duration // from PostgreSQL back to an empty spool
}

// runOutage starts a throwaway PostgreSQL cluster and serve with
// --spool-after 500ms, runs the load, stops PostgreSQL (immediate mode, as
// a crash) a second in, keeps it down for s.Outage, starts it again, waits
// for the spool to drain, and checks the ledger against radacct.
func runOutage(t testing.TB, s outageScenario) outageFigures {
	t.Helper()
	ctx := context.Background()
	cluster, err := pglocal.Start(ctx, zerolog.Nop())
	if err != nil {
		t.Skipf("no throwaway PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() { cluster.Stop() })
	db := openMigrated(t, cluster.URL)
	registerLoad(t, db, s.Load)

	// --stale-grace: the load's event times are virtual and look hours
	// old; the stale sweep has nothing to do with this test.
	srv := newServeProc(t, buildBinary(t), cluster.URL, "--log-level", "warn", "--spool-after", "500ms", "--stale-grace", "1000h")
	srv.Start()
	load := s.Load
	load.Server = srv.AcctAddr

	done := goLoad(ctx, load)

	var f outageFigures
	time.Sleep(time.Second) // paces the outage a second into the load; it waits for no state
	const packets, ok = "nettportal_radius_packets_total", `outcome="ok"`
	okBefore, err := metric(srv.HTTPURL, packets, ok)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.StopServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	for time.Since(down) < s.Outage {
		if v, err := metric(srv.HTTPURL, "nettportal_spool_records"); err == nil && v > f.SpoolPeak {
			f.SpoolPeak = v
		}
		time.Sleep(100 * time.Millisecond) // paces the sampling through the outage's fixed length
	}
	okAfter, err := metric(srv.HTTPURL, packets, ok)
	if err != nil {
		t.Fatal(err)
	}
	f.OutageSeconds = time.Since(down).Seconds()
	f.AckedInOutage = okAfter - okBefore
	if err := cluster.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if f.SpoolPeak == 0 || f.AckedInOutage == 0 {
		t.Fatalf("nothing was acknowledged from the spool while PostgreSQL was down (peak depth %v, %v answered)\n%s",
			f.SpoolPeak, f.AckedInOutage, srv.Log.String())
	}
	// The replay runs while the load goes on, as it would in production.
	f.Replay = waitSpoolEmpty(t, srv.HTTPURL, 2*time.Minute)

	var o loadOutcome
	select {
	case o = <-done:
	case <-time.After(s.Outage + 3*time.Minute):
		t.Fatal("load did not finish")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	f.Load = o.res
	waitSpoolEmpty(t, srv.HTTPURL, time.Minute)
	fmt.Printf("database outage of %.1fs: %.0f packets acknowledged meanwhile (%.0f/s), spool peak %.0f records, "+
		"spool empty %v after PostgreSQL was back; load: %d sent, %d acknowledged, %d retransmits, %d failed, p99 %v\n",
		f.OutageSeconds, f.AckedInOutage, f.AckedInOutage/f.OutageSeconds, f.SpoolPeak, f.Replay.Round(time.Millisecond),
		o.res.Sent, o.res.Acked, o.res.Retransmits, o.res.Failed, o.res.P99)
	checkLedger(t, db, o.res)
	checkNoDuplicates(t, db)
	return f
}

// TestDatabaseOutage takes PostgreSQL away for 10 s under load: packets
// keep being acknowledged from the spool, which drains once PostgreSQL is
// back, and nothing acknowledged is missing or doubled.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own PostgreSQL and runs a load for ~20 s")
	}
	runOutage(t, outageScenario{
		Outage: 10 * time.Second,
		// ~36,000 packets at 2,000/s: the load outlasts the outage. While
		// the database is down every answer waits --spool-after, so the
		// packets in flight, not the server, bound the rate: 2,048 in
		// flight, as many routers with many sessions would have.
		Load: sim.LoadConfig{Secret: "outage-secret", Routers: 20, SessionsPerRouter: 100, InterimsPerSession: 16,
			Rate: 2000, Concurrency: 2048, BaseIP: netip.MustParseAddr("127.0.41.1")},
	})
}

// BenchmarkOutage (`make outage`) is the same with PostgreSQL down a full
// minute (NETTPORTAL_OUTAGE_SECONDS) at 5,000 packets/s
// (NETTPORTAL_OUTAGE_RATE). It runs only when NETTPORTAL_OUTAGE_BENCH is
// set, so `make bench` stays short.
func BenchmarkOutage(b *testing.B) {
	if os.Getenv("NETTPORTAL_OUTAGE_BENCH") == "" {
		b.Skip("set NETTPORTAL_OUTAGE_BENCH=1, or run `make outage`")
	}
	outage := time.Duration(benchEnvInt("NETTPORTAL_OUTAGE_SECONDS", 60)) * time.Second
	rate := benchEnvInt("NETTPORTAL_OUTAGE_RATE", 5000)
	for n := 0; n < b.N; n++ {
		// Enough packets for the outage plus 20 s around it.
		sessions := int((outage.Seconds()+20)*float64(rate)) / 22 / 50
		f := runOutage(b, outageScenario{
			Outage: outage,
			Load: sim.LoadConfig{Secret: "outage-secret", Routers: 50, SessionsPerRouter: max(sessions, 1),
				InterimsPerSession: 20, Rate: rate, Concurrency: 8192, BaseIP: netip.MustParseAddr("127.0.42.1")},
		})
		b.ReportMetric(f.AckedInOutage/f.OutageSeconds, "acked/s-in-outage")
		b.ReportMetric(f.SpoolPeak, "spool-peak")
		b.ReportMetric(f.Replay.Seconds(), "replay-s")
	}
}

package main

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store/storetest"
)

// TestKill9DuringLoad kills serve with SIGKILL while batches are in flight,
// restarts it on the same ports and spool, lets the simulated routers
// retransmit, and then requires every acknowledged packet in radacct: an
// answer is only ever sent after COMMIT (or fsync of the spool), so nothing
// a router was told is durable may be lost by a crash.
func TestKill9DuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a load")
	}
	dbURL := storetest.MustCreateDatabase(t)
	db := openMigrated(t, dbURL)
	// Its own loopback range, so its rows are its own.
	load := sim.LoadConfig{Secret: "crash-secret", Routers: 10, SessionsPerRouter: 200, InterimsPerSession: 20,
		Rate: 5000, Concurrency: 512, BaseIP: netip.MustParseAddr("127.0.40.1"), Timeout: time.Second, Retries: 8}
	registerLoad(t, db, load)

	bin := buildBinary(t)
	// --stale-grace: the load's event times are virtual and look hours
	// old; the stale sweep has nothing to do with this test.
	srv := newServeProc(t, bin, dbURL, "--log-level", "warn", "--max-batch", "512", "--stale-grace", "1000h")
	srv.Start()
	load.Server = srv.AcctAddr

	done := goLoad(context.Background(), load)

	// Kill once serve has committed a second's worth of the load (5,000
	// records of 44,000 at 5,000 packets/s), so batches are being
	// committed and answered when the signal lands. The count is serve's,
	// another process, and sim has no progress hook: its metric is polled.
	eventually(t, 30*time.Second, 10*time.Millisecond, "5000 records committed", func() (string, bool) {
		v, err := metric(srv.HTTPURL, "nettportal_radius_batch_records_sum")
		return fmt.Sprintf("%v records (%v)", v, err), err == nil && v >= 5000
	})
	before, _ := metric(srv.HTTPURL, "nettportal_radius_queue_records")
	srv.Kill()
	killedAt := time.Now()
	srv.Start()
	t.Logf("killed with %v records queued; back after %v", before, time.Since(killedAt).Round(time.Millisecond))

	var o loadOutcome
	select {
	case o = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("load did not finish")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	fmt.Printf("crash test: %d sent, %d acknowledged, %d retransmits, %d failed, p99 %v\n",
		o.res.Sent, o.res.Acked, o.res.Retransmits, o.res.Failed, o.res.P99)
	if o.res.Retransmits == 0 {
		t.Fatalf("no retransmissions: the kill landed outside the run")
	}
	// Spooled batches (if any) go in before the check.
	waitSpoolEmpty(t, srv.HTTPURL, 30*time.Second)
	checkLedger(t, db, o.res)
	checkNoDuplicates(t, db)
}

// waitSpoolEmpty waits until serve's spool depth gauge reads 0.
func waitSpoolEmpty(t testing.TB, url string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, 100*time.Millisecond, "spool empty", func() (string, bool) {
		v, err := metric(url, "nettportal_spool_records")
		return fmt.Sprintf("%v records (%v)", v, err), err == nil && v == 0
	})
	return time.Since(start)
}

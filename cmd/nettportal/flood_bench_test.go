package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nettportal/nettportal/sim"
)

// BenchmarkOneRouterFlood offers serve an open-loop reconnect storm from
// one router beside the steady work of three others: the busy router
// (127.0.0.11) at NETTPORTAL_BENCH_FLOOD_RATE packets/s (default 12000,
// above a 2-core machine's capacity on its own; much more measures the
// load's own CPU, on the same cores, more than the server), the quiet ones
// (127.0.0.12-14) at NETTPORTAL_BENCH_FLOOD_QUIET_RATE in all (default
// 2000), for NETTPORTAL_BENCH_FLOOD_SECONDS (12). Both loads send on their
// own schedule and retransmit as a NAS does. It prints each load's
// offered, answered, failed, retransmits, p50 and p99 from the first send,
// and checks both ledgers. One router's storm must not cost the others
// their answers: the quiet routers' p99 should stay what it is without the
// storm (it prints that too, from a run of the quiet load alone first).
func BenchmarkOneRouterFlood(b *testing.B) {
	floodRate := benchEnvInt("NETTPORTAL_BENCH_FLOOD_RATE", 12000)
	quietRate := benchEnvInt("NETTPORTAL_BENCH_FLOOD_QUIET_RATE", 2000)
	duration := time.Duration(benchEnvInt("NETTPORTAL_BENCH_FLOOD_SECONDS", 12)) * time.Second
	for n := 0; n < b.N; n++ {
		t := startOurTarget(b)
		busyIP := sim.DefaultBaseIP()
		flood := sim.OpenLoopConfig{Server: t.addr(), Secret: t.secret(), Routers: 1, BaseIP: busyIP,
			Rate: floodRate, Duration: duration, Mix: sim.MixStorm, Tag: "fl00"}
		quiet := sim.OpenLoopConfig{Server: t.addr(), Secret: t.secret(), Routers: rampRouters - 1, BaseIP: busyIP.Next(),
			Rate: quietRate, Duration: duration, Mix: sim.MixStorm, Tag: "qt00"}
		var ledger []sim.LedgerEntry
		var acked uint64
		run := func(label string, cfg sim.OpenLoopConfig) sim.OpenLoopResult {
			res, err := sim.RunOpenLoop(context.Background(), cfg)
			if err != nil {
				b.Fatalf("%s: %v", label, err)
			}
			return res
		}
		report := func(label string, cfg sim.OpenLoopConfig, res sim.OpenLoopResult) {
			fmt.Printf("one-router flood %-14s %d router(s) offered %6d/s (%d): answered %7.0f/s, failed %d, retransmits %d (%.2f%%), p50 %v, p99 %v, first-send p99 %v, max %v\n",
				label, cfg.Routers, cfg.Rate, res.Offered, res.Goodput(), res.Failed, res.Retransmits,
				100*float64(res.Retransmits)/float64(max(res.Offered, 1)),
				res.P50.Round(time.Millisecond/10), res.P99.Round(time.Millisecond/10),
				res.FirstSend.P99.Round(time.Millisecond/10), res.Max.Round(time.Millisecond))
			ledger, acked = append(ledger, res.Ledger...), acked+res.Answered
		}
		b.ResetTimer()
		// The quiet load alone first: what its routers get without the
		// storm (connections opened, caches and plans warm as well).
		alone := quiet
		alone.Tag = "qt01"
		report("quiet alone", alone, run("quiet alone", alone))
		t.settle(b)

		detail := t.overloadDetail()
		var wg sync.WaitGroup
		var quietRes, floodRes sim.OpenLoopResult
		wg.Add(2)
		go func() { defer wg.Done(); floodRes = run("flood", flood) }()
		go func() { defer wg.Done(); quietRes = run("quiet", quiet) }()
		wg.Wait()
		t.settle(b)
		report("busy router", flood, floodRes)
		report("quiet routers", quiet, quietRes)
		fmt.Printf("one-router flood %-14s %s\n", "", detail())
		b.StopTimer()
		fmt.Print("nettportal ")
		checkLedgerEntries(b, t.ledgerDB(), ledger, acked)
		b.ReportMetric(float64(quietRes.P99.Microseconds())/1000, "quiet-p99-ms")
		b.ReportMetric(float64(quietRes.Failed), "quiet-failed")
		b.ReportMetric(100*float64(quietRes.Retransmits)/float64(max(quietRes.Offered, 1)), "quiet-retransmit-%")
		b.ReportMetric(floodRes.Goodput(), "busy-goodput/s")
	}
}

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal/sim"
)

// soakSample is serve's footprint at one moment.
type soakSample struct {
	at         time.Duration
	rssKB      int64
	goroutines float64
	queue      float64 // records waiting for a batch
	answered   float64 // packets answered so far
}

// BenchmarkSoak (`make soak`) runs the fleet simulator at 10,000 packets/s
// over 50,000 open sessions for NETTPORTAL_SOAK_DURATION (default 15m)
// against serve as its own process, and reports its resident memory and
// goroutines early and late in the run (each must grow less than 10%),
// the p99 answer latency, and the ledger check of every session. It runs
// only when NETTPORTAL_SOAK is set, so `make bench` stays short.
func BenchmarkSoak(b *testing.B) {
	if os.Getenv("NETTPORTAL_SOAK") == "" {
		b.Skip("set NETTPORTAL_SOAK=1, or run `make soak`")
	}
	duration := 15 * time.Minute
	if v := os.Getenv("NETTPORTAL_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			b.Fatalf("NETTPORTAL_SOAK_DURATION=%q: want a duration of at least 1m", v)
		}
		duration = d
	}
	rate := benchEnvInt("NETTPORTAL_SOAK_RATE", 10000)
	sessions := benchEnvInt("NETTPORTAL_SOAK_SESSIONS", 50000)
	const routers = 50
	for n := 0; n < b.N; n++ {
		dbURL, db := benchDB(b, 2)
		// Every session is open at once (one in-flight slot each), and
		// sends a packet every sessions/rate seconds: the interims are
		// what makes the rate, as on a real fleet.
		perSession := max(int(duration.Seconds()*float64(rate))/sessions, 3)
		load := sim.LoadConfig{Secret: "soak-secret", Routers: routers, SessionsPerRouter: sessions / routers,
			InterimsPerSession: perSession - 2, Rate: rate, Concurrency: sessions,
			BaseIP: netip.MustParseAddr("127.0.50.1"), Timeout: 2 * time.Second}
		registerLoad(b, db, load)
		// The load's event times are virtual (five-minute interims a few
		// seconds apart), so its sessions look hours old to the stale sweep.
		srv := newServeProc(b, buildBinary(b), dbURL, "--log-level", "warn", "--stale-grace", "1000h")
		srv.Start()
		load.Server = srv.AcctAddr

		start := time.Now()
		done := goLoad(context.Background(), load)
		var samples []soakSample
		tick := time.NewTicker(5 * time.Second)
		var o loadOutcome
	wait:
		for {
			select {
			case o = <-done:
				break wait
			case <-tick.C:
				s, err := sampleServe(srv)
				if err != nil {
					b.Logf("sample: %v", err)
					continue
				}
				s.at = time.Since(start)
				samples = append(samples, s)
			}
		}
		tick.Stop()
		if o.err != nil {
			b.Fatal(o.err)
		}
		report(b, fmt.Sprintf("soak %v at %d/s over %d sessions", duration, rate, sessions), o.res)
		var outcomes []string
		for _, oc := range []string{"ok", "duplicate", "queue_full", "given_up", "bad_authenticator", "unknown_router", "malformed"} {
			if v, err := metric(srv.HTTPURL, "nettportal_radius_packets_total", `outcome="`+oc+`"`); err == nil && v > 0 {
				outcomes = append(outcomes, fmt.Sprintf("%s %.0f", oc, v))
			}
		}
		fmt.Printf("serve's packet outcomes: %s\n", strings.Join(outcomes, ", "))
		// Early: after the first 20% (the heap and the pools have grown to
		// the load); late: the last 20% before the load ended. The median
		// of each window evens out GC's sawtooth.
		early, late := window(samples, 0.2, 0.4), window(samples, 0.8, 1.0)
		if len(early) == 0 || len(late) == 0 {
			b.Fatalf("too few samples (%d) to compare", len(samples))
		}
		rss0, rss1 := median(early, func(s soakSample) float64 { return float64(s.rssKB) }), median(late, func(s soakSample) float64 { return float64(s.rssKB) })
		g0, g1 := median(early, func(s soakSample) float64 { return s.goroutines }), median(late, func(s soakSample) float64 { return s.goroutines })
		peak := slices.MaxFunc(samples, func(a, b soakSample) int { return int(a.rssKB - b.rssKB) })
		fmt.Printf("soak footprint: RSS %.0f MB early, %.0f MB late (%+.1f%%), peak %.0f MB at %v; goroutines %.0f early, %.0f late (%+.1f%%); %d samples\n",
			rss0/1024, rss1/1024, 100*(rss1/rss0-1), float64(peak.rssKB)/1024, peak.at.Round(time.Second), g0, g1, 100*(g1/g0-1), len(samples))
		// The timeline shows when a stall happened, if one did.
		var tl strings.Builder
		for i, s := range samples {
			rate := s.answered / s.at.Seconds()
			if i > 0 {
				rate = (s.answered - samples[i-1].answered) / (s.at - samples[i-1].at).Seconds()
			}
			fmt.Fprintf(&tl, " %v:%.0f/s,q%.0f,%.0fMB", s.at.Round(time.Second), rate, s.queue, float64(s.rssKB)/1024)
		}
		fmt.Printf("soak timeline (answered/s, queue, RSS):%s\n", tl.String())
		b.ReportMetric(o.res.PacketsPerSecond(), "acked/s")
		b.ReportMetric(float64(o.res.P99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(rss1/1024, "rss-MB-late")
		b.ReportMetric(100*(rss1/rss0-1), "rss-growth-%")
		b.ReportMetric(g1, "goroutines-late")
		waitSpoolEmpty(b, srv.HTTPURL, time.Minute)
		checkLedger(b, db, o.res)
		checkNoDuplicates(b, db)
		if rss1 > rss0*1.10 {
			b.Errorf("RSS grew %.1f%% from early to late in the run (%.0f -> %.0f MB)", 100*(rss1/rss0-1), rss0/1024, rss1/1024)
		}
		if g1 > g0*1.10 {
			b.Errorf("goroutines grew %.1f%% from early to late in the run (%.0f -> %.0f)", 100*(g1/g0-1), g0, g1)
		}
	}
}

// sampleServe reads serve's resident memory from /proc and its goroutines
// from /metrics (the Go collector).
func sampleServe(p *serveProc) (soakSample, error) {
	var s soakSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return s, fmt.Errorf("read RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rssKB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("parse VmRSS %q: %w", line, err)
			}
		}
	}
	if s.goroutines, err = metric(p.HTTPURL, "go_goroutines"); err != nil {
		return s, err
	}
	if s.queue, err = metric(p.HTTPURL, "nettportal_radius_queue_records"); err != nil {
		return s, err
	}
	s.answered, err = metric(p.HTTPURL, "nettportal_radius_packets_total", `outcome="ok"`)
	return s, err
}

// window returns the samples from fraction lo to hi of the run.
func window(s []soakSample, lo, hi float64) []soakSample {
	a, b := int(lo*float64(len(s))), int(hi*float64(len(s)))
	return s[a:max(a, b)]
}

func median(s []soakSample, f func(soakSample) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	slices.Sort(v)
	return v[len(v)/2]
}

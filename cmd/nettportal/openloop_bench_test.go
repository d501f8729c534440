package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal/freeradius/freeradiustest"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
)

// acctTarget is an accounting server an open-loop ramp is offered to:
// where it listens, the secret it knows the load's routers by, and the
// database it writes radacct to (for the ledger check). The load's
// routers send from 127.0.0.11 upwards (rampRouters of them).
type acctTarget interface {
	name() string
	addr() string
	secret() string
	ledgerDB() *store.DB
	// shed is how many packets the server has dropped on purpose so far;
	// false when it does not say.
	shed() (float64, bool)
	// settle waits until the server has worked off what it was sent.
	settle(tb testing.TB)
}

// rampRouters is the open-loop load's router count: a few busy routers,
// as a reconnect storm after a core outage brings.
const rampRouters = 4

// ourTarget is `nettportal serve`, in-process, on its own database.
type ourTarget struct {
	srv *testServer
	db  *store.DB
}

func (o *ourTarget) name() string        { return "nettportal" }
func (o *ourTarget) addr() string        { return o.srv.AcctAddr }
func (o *ourTarget) secret() string      { return "bench-secret" }
func (o *ourTarget) ledgerDB() *store.DB { return o.db }

func (o *ourTarget) shed() (float64, bool) {
	v, err := metric(o.srv.HTTPURL, "nettportal_radius_packets_total", `outcome="shed"`)
	return v, err == nil
}

// overloadDetail reads the listener's overload counters now and returns
// what they counted by the time it is called: datagrams read, packets shed
// by reason, retransmissions of shed packets queued and answered.
func (o *ourTarget) overloadDetail() func() string {
	type series struct{ name, label, what string }
	all := []series{
		{"nettportal_radius_received_total", "", "read"},
		{"nettportal_radius_shed_total", `reason="fresh"`, "shed fresh"},
		{"nettportal_radius_shed_total", `reason="retry_expired"`, "retry expired"},
		{"nettportal_radius_shed_total", `reason="retry_full"`, "retry full"},
		{"nettportal_radius_shed_total", `reason="retry_over_quota"`, "retry over quota"},
		{"nettportal_radius_retried_total", "", "retried"},
		{"nettportal_radius_retry_answered_total", "", "retry answered"},
	}
	read := func() []float64 {
		v := make([]float64, len(all))
		for i, m := range all {
			var labels []string
			if m.label != "" {
				labels = append(labels, m.label)
			}
			v[i], _ = metric(o.srv.HTTPURL, m.name, labels...)
		}
		return v
	}
	before := read()
	return func() string {
		after := read()
		parts := make([]string, len(all))
		for i, m := range all {
			parts[i] = fmt.Sprintf("%s %.0f", m.what, after[i]-before[i])
		}
		return strings.Join(parts, ", ")
	}
}

// settle waits for the listener's queue to be empty: a step's
// stragglers are committed or shed before the next step begins.
func (o *ourTarget) settle(tb testing.TB) {
	eventually(tb, 30*time.Second, 20*time.Millisecond, "server queue empty after the step", func() (string, bool) {
		v, err := metric(o.srv.HTTPURL, "nettportal_radius_queue_records")
		return fmt.Sprintf("%v, %v", v, err), err == nil && v == 0
	})
}

// startOurTarget creates a database, registers the ramp's routers and
// starts serve as BenchmarkIngest does.
func startOurTarget(b *testing.B) *ourTarget {
	dbURL, db := benchDB(b, 4)
	printDurability(db)
	o := &ourTarget{db: db}
	for _, r := range (sim.OpenLoopConfig{Routers: rampRouters, Secret: o.secret()}).NASRouters() {
		if err := db.CreateRouter(context.Background(), &r); err != nil {
			b.Fatal(err)
		}
	}
	// --stale-grace: a storm's event times are virtual and look up to
	// half an hour old, so the stale sweep would close live sessions.
	// NETTPORTAL_BENCH_SERVE_FLAGS adds serve flags, to compare settings
	// (say "--max-batch 1024 --max-queue-delay 100ms") in the same ramp.
	args := append([]string{"--log-level", "warn", "--db-conns", "8", "--stale-grace", "1000h"},
		strings.Fields(os.Getenv("NETTPORTAL_BENCH_SERVE_FLAGS"))...)
	if len(args) > 6 {
		fmt.Printf("serve flags: %s\n", strings.Join(args[6:], " "))
	}
	o.srv = startServe(b, dbURL, args...)
	return o
}

// rampSettings are the ramp's knobs: NETTPORTAL_BENCH_RATES (offered
// packets/s per step, comma-separated), NETTPORTAL_BENCH_STEP (each
// step's length; 12s gives a storm session Start, one interim and Stop)
// and NETTPORTAL_BENCH_OVERLOAD_RATE (the overload step's rate instead of
// twice the capacity: the capacity asks for p99 < 100 ms, so twice it may
// still be below what the server can commit).
type rampSettings struct {
	rates    []int
	step     time.Duration
	overload int // the overload step's rate; 0: twice the capacity
}

func rampSettingsFromEnv(b *testing.B, ratesEnv string, defaultRates []int) rampSettings {
	s := rampSettings{rates: defaultRates, step: 12 * time.Second}
	if v := os.Getenv(ratesEnv); v != "" {
		s.rates = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: want comma-separated packets/s", ratesEnv, v)
			}
			s.rates = append(s.rates, n)
		}
	}
	if v := os.Getenv("NETTPORTAL_BENCH_OVERLOAD_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("NETTPORTAL_BENCH_OVERLOAD_RATE=%q: want packets/s", v)
		}
		s.overload = n
	}
	if v := os.Getenv("NETTPORTAL_BENCH_STEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("NETTPORTAL_BENCH_STEP=%q: want a duration like 12s", v)
		}
		s.step = d
	}
	return s
}

// The default ramp of our server, and of a peer an order of magnitude
// slower (FreeRADIUS + rlm_sql answered 3,000/s on the machine).
var (
	defaultRampRates     = []int{5000, 10000, 20000, 30000, 40000, 50000, 60000}
	defaultPeerRampRates = []int{500, 1000, 2000, 3000, 4000, 5000, 6000, 8000}
)

// rampStep is one step's offered rate and what the load measured.
type rampStep struct {
	rate int
	res  sim.OpenLoopResult
	shed float64 // -1: the server does not say
}

// ok says whether the step is within capacity: p99 < 100 ms, nothing
// given up, fewer than 0.1% retransmits.
func (s rampStep) ok() bool {
	return s.res.Offered > 0 && s.res.P99 < 100*time.Millisecond && s.res.Failed == 0 && s.res.Retransmits*1000 < s.res.Offered
}

// rampResult is one mix's ramp on one server.
type rampResult struct {
	mix                sim.Mix
	capacity           int // highest ok step's rate; 0: none
	overload, recovery rampStep
	ledger             []sim.LedgerEntry
	acked              uint64
}

// rampRunner offers steps to one target: storm steps each on new
// sessions, steady steps continuing the same sessions.
type rampRunner struct {
	t    acctTarget
	cfg  rampSettings
	tags int
	// steady sessions continue across steps: their packets count on.
	steadyRound int
}

func (r *rampRunner) step(b *testing.B, mix sim.Mix, label string, rate int) rampStep {
	return r.stepFor(b, mix, label, rate, r.cfg.step)
}

func (r *rampRunner) stepFor(b *testing.B, mix sim.Mix, label string, rate int, d time.Duration) rampStep {
	cfg := sim.OpenLoopConfig{Server: r.t.addr(), Secret: r.t.secret(), Routers: rampRouters, Rate: rate,
		Duration: d, Mix: mix}
	if mix == sim.MixSteady {
		cfg.Tag, cfg.FirstRound = "stdy", r.steadyRound
	} else {
		r.tags++
		cfg.Tag = fmt.Sprintf("r%03d", r.tags%1000)
	}
	shedBefore, known := r.t.shed()
	var detail func() string
	if o, ok := r.t.(*ourTarget); ok {
		detail = o.overloadDetail()
	}
	res, err := sim.RunOpenLoop(context.Background(), cfg)
	if err != nil {
		b.Fatalf("%s %s step at %d/s: %v", r.t.name(), mix, rate, err)
	}
	if mix == sim.MixSteady {
		r.steadyRound += res.Rounds
	}
	r.t.settle(b)
	s := rampStep{rate: rate, res: res, shed: -1}
	if shedAfter, ok := r.t.shed(); known && ok {
		s.shed = shedAfter - shedBefore
	}
	shed := "?"
	if s.shed >= 0 {
		shed = strconv.FormatFloat(s.shed, 'f', 0, 64)
	}
	verdict := "within capacity"
	if !s.ok() {
		verdict = "over"
	}
	fmt.Printf("%s %s %-9s offered %6d/s (%d): answered %7.0f/s, failed %d, retransmits %d (%.2f%%), shed %s, p50 %v, p99 %v, max %v: %s\n",
		r.t.name(), mix, label, rate, res.Offered, res.Goodput(), res.Failed, res.Retransmits,
		100*float64(res.Retransmits)/float64(max(res.Offered, 1)), shed,
		res.P50.Round(time.Millisecond/10), res.P99.Round(time.Millisecond/10), res.Max.Round(time.Millisecond), verdict)
	if detail != nil && s.shed > 0 {
		fmt.Printf("%s %s %-9s %s\n", r.t.name(), mix, "", detail())
	}
	return s
}

// ramp offers the rates in order until a step is over capacity, then one
// step at twice the capacity and a recovery step at half of it.
func (r *rampRunner) ramp(b *testing.B, mix sim.Mix) rampResult {
	out := rampResult{mix: mix}
	keep := func(s rampStep) {
		out.ledger = append(out.ledger, s.res.Ledger...)
		out.acked += s.res.Answered
	}
	over := false
	for _, rate := range r.cfg.rates {
		s := r.step(b, mix, "ramp", rate)
		keep(s)
		if over = !s.ok(); over {
			break
		}
		out.capacity = rate
	}
	name := r.t.name()
	if !over && out.capacity > 0 {
		fmt.Printf("%s %s: every step was within capacity, so the capacity is at least the last one (NETTPORTAL_BENCH_RATES goes higher)\n", name, mix)
	}
	if out.capacity == 0 {
		fmt.Printf("%s %s: no step within capacity (p99 < 100ms, 0 failed, < 0.1%% retransmits); no overload step\n", name, mix)
		return out
	}
	fmt.Printf("%s %s capacity: %d packets/s\n", name, mix, out.capacity)
	overload := 2 * out.capacity
	if r.cfg.overload > 0 {
		overload = r.cfg.overload
		fmt.Printf("%s %s: the overload step offers %d/s (NETTPORTAL_BENCH_OVERLOAD_RATE), %.1fx capacity\n", name, mix, overload, float64(overload)/float64(out.capacity))
	}
	out.overload = r.step(b, mix, "overload", overload)
	keep(out.overload)
	o := out.overload.res
	fmt.Printf("%s %s overload: goodput %.0f/s = %.0f%% of capacity (target >= 90%%), answered p99 %v (target < 300ms)\n",
		name, mix, o.Goodput(), 100*o.Goodput()/float64(out.capacity), o.P99.Round(time.Millisecond/10))
	// The answered p99 mixes two populations: latency counts from the
	// first send, so an answer to a retransmission is at least one
	// timeout late (the router's copy was shed, lost or answered late).
	fmt.Printf("%s %s overload: %d answers (%.1f%%) were to a retransmission; the answers to a first transmission: p50 %v, p99 %v\n",
		name, mix, o.AnsweredOnRetry, 100*float64(o.AnsweredOnRetry)/float64(max(o.Answered, 1)),
		o.FirstSend.P50.Round(time.Millisecond/10), o.FirstSend.P99.Round(time.Millisecond/10))
	out.recovery = r.step(b, mix, "recovery", max(out.capacity/2, 1))
	keep(out.recovery)
	back := "back to normal"
	if !out.recovery.ok() {
		back = "NOT back to normal"
	}
	fmt.Printf("%s %s after the overload, at capacity/2: %s (p99 %v, %d failed, %d retransmits)\n",
		name, mix, back, out.recovery.res.P99.Round(time.Millisecond/10), out.recovery.res.Failed, out.recovery.res.Retransmits)
	return out
}

// report puts a ramp's key figures into the benchmark's result line.
func (rr rampResult) report(b *testing.B, prefix string) {
	b.ReportMetric(float64(rr.capacity), prefix+"capacity/s")
	if rr.capacity == 0 {
		return
	}
	o := rr.overload.res
	b.ReportMetric(100*o.Goodput()/float64(rr.capacity), prefix+"2x-goodput-%")
	b.ReportMetric(float64(o.P99.Microseconds())/1000, prefix+"2x-p99-ms")
	b.ReportMetric(float64(rr.recovery.res.P99.Microseconds())/1000, prefix+"recovery-p99-ms")
}

// rampMixes are the mixes a benchmark ramps (NETTPORTAL_BENCH_MIXES:
// storm, steady or both, comma-separated).
func rampMixes(b *testing.B, def string) []sim.Mix {
	v := os.Getenv("NETTPORTAL_BENCH_MIXES")
	if v == "" {
		v = def
	}
	var mixes []sim.Mix
	for _, f := range strings.Split(v, ",") {
		switch strings.TrimSpace(f) {
		case "storm":
			mixes = append(mixes, sim.MixStorm)
		case "steady":
			mixes = append(mixes, sim.MixSteady)
		default:
			b.Fatalf("NETTPORTAL_BENCH_MIXES=%q: want storm, steady or both", v)
		}
	}
	return mixes
}

func mixPrefix(m sim.Mix) string {
	if m == sim.MixSteady {
		return "steady-"
	}
	return "storm-"
}

// runRamps ramps each mix on one target and checks its ledger at the end:
// every acknowledged packet is in radacct.
func runRamps(b *testing.B, t acctTarget, settings rampSettings, mixes []sim.Mix) []rampResult {
	r := &rampRunner{t: t, cfg: settings}
	var out []rampResult
	var ledger []sim.LedgerEntry
	var acked uint64
	// A warm-up the capacity does not count: connections opened, caches
	// and plans warm, on both servers alike.
	if len(settings.rates) > 0 {
		w := r.stepFor(b, sim.MixStorm, "warm-up", settings.rates[0], min(settings.step, 3*time.Second))
		ledger, acked = append(ledger, w.res.Ledger...), w.res.Answered
	}
	for _, mix := range mixes {
		rr := r.ramp(b, mix)
		out = append(out, rr)
		ledger = append(ledger, rr.ledger...)
		acked += rr.acked
	}
	fmt.Printf("%s ", t.name())
	checkLedgerEntries(b, t.ledgerDB(), ledger, acked)
	return out
}

// BenchmarkOpenLoop offers serve (its real wiring, on PostgreSQL with
// fsync and synchronous_commit on) an open-loop ramp: 4 routers send on
// their own schedule whatever the answers, retransmit after 1 s up to 3
// times, latency from the first send. First the reconnect-storm mix
// (sessions = 4 x rate: Start, interim, Stop), then the steady mix
// (sessions = 20 x rate, interims). Per step it prints offered,
// answered/s, failed, retransmits, shed, p50 and p99; the capacity is the
// highest step with p99 < 100 ms, none failed and < 0.1% retransmits;
// then a step at 2x capacity (goodput and answered p99), a recovery step
// at capacity/2, and the ledger check.
//
// NETTPORTAL_BENCH_RATES (default 5000,...,60000), NETTPORTAL_BENCH_STEP
// (12s), NETTPORTAL_BENCH_MIXES (storm,steady).
func BenchmarkOpenLoop(b *testing.B) {
	settings := rampSettingsFromEnv(b, "NETTPORTAL_BENCH_RATES", defaultRampRates)
	mixes := rampMixes(b, "storm,steady")
	for n := 0; n < b.N; n++ {
		t := startOurTarget(b)
		b.ResetTimer()
		for _, rr := range runRamps(b, t, settings, mixes) {
			rr.report(b, mixPrefix(rr.mix))
		}
		b.StopTimer()
		for _, name := range []string{"nettportal_radius_spooled_records_total"} {
			if v, err := metric(t.srv.HTTPURL, name); err == nil && v > 0 {
				fmt.Printf("note: %s = %.0f (the database did not keep up within --spool-after)\n", name, v)
			}
		}
	}
}

// freeradiusTarget is FreeRADIUS 3.2 with the stock rlm_sql on its own
// database with the stock schema, as freeradiustest runs it (threaded,
// no debug output).
type freeradiusTarget struct {
	srv *freeradiustest.Server
	db  *store.DB
}

func (f *freeradiusTarget) name() string          { return "freeradius" }
func (f *freeradiusTarget) addr() string          { return f.srv.AcctAddr().String() }
func (f *freeradiusTarget) secret() string        { return f.srv.Secret }
func (f *freeradiusTarget) ledgerDB() *store.DB   { return f.db }
func (f *freeradiusTarget) shed() (float64, bool) { return 0, false }

// settle waits until FreeRADIUS has worked off the step: requests the
// load gave up on are still in its queue (it works them off within its
// max_request_time) and each one it works off writes radacct. FreeRADIUS
// says nothing of its queue, so the state read is radacct itself: settled
// once two reads 200 ms apart find the same rows with the same counters.
// (A poll of another process's database, through the package's deadline
// poll: there is no event to wait on.)
func (f *freeradiusTarget) settle(tb testing.TB) {
	last := ""
	eventually(tb, 60*time.Second, 200*time.Millisecond, "FreeRADIUS's radacct unchanged after the step", func() (string, bool) {
		var rows, sum int64
		err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*),
			coalesce(sum(acctsessiontime + acctinputoctets + acctoutputoctets), 0) FROM radacct`).Scan(&rows, &sum)
		now := fmt.Sprintf("%d rows, counters %d (%v)", rows, sum, err)
		settled := err == nil && now == last
		last = now
		return now, settled
	})
}

func startFreeRADIUSTarget(b *testing.B) *freeradiusTarget {
	dbURL := freeradiustest.StockDatabase(b)
	db, err := store.OpenWith(context.Background(), dbURL, store.Options{MaxConns: 2, StatementTimeout: -1}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	// The default client is 127.0.0.0/8: the load's routers included.
	return &freeradiusTarget{srv: freeradiustest.Start(b, freeradiustest.Config{DatabaseURL: dbURL}), db: db}
}

// BenchmarkOpenLoopPeer runs BenchmarkOpenLoop's ramp against our server
// and then, in the same run on the same machine, against FreeRADIUS 3.2
// with rlm_sql (stock configuration and schema, its own database), and
// prints the ratio of the capacities. It fails when FreeRADIUS is not
// installed. NETTPORTAL_BENCH_RATES is our ramp, NETTPORTAL_BENCH_PEER_RATES
// FreeRADIUS's (default 500,...,8000), NETTPORTAL_BENCH_MIXES (storm).
func BenchmarkOpenLoopPeer(b *testing.B) {
	if err := freeradiustest.Available(); err != nil {
		b.Fatalf("bench-peer measures FreeRADIUS 3.2 + rlm_sql beside nettportal: install the Debian packages freeradius and freeradius-postgresql (%v)", err)
	}
	ours := rampSettingsFromEnv(b, "NETTPORTAL_BENCH_RATES", defaultRampRates)
	peer := rampSettingsFromEnv(b, "NETTPORTAL_BENCH_PEER_RATES", defaultPeerRampRates)
	mixes := rampMixes(b, "storm")
	for n := 0; n < b.N; n++ {
		b.ResetTimer()
		o := startOurTarget(b)
		mine := runRamps(b, o, ours, mixes)
		o.srv.stop() // FreeRADIUS gets the machine to itself
		f := startFreeRADIUSTarget(b)
		theirs := runRamps(b, f, peer, mixes)
		b.StopTimer()
		for i, rr := range mine {
			p := mixPrefix(rr.mix)
			rr.report(b, p)
			b.ReportMetric(float64(theirs[i].capacity), p+"freeradius-capacity/s")
			if theirs[i].capacity == 0 {
				fmt.Printf("%s: FreeRADIUS had no step within capacity; no ratio (NETTPORTAL_BENCH_PEER_RATES lower)\n", rr.mix)
				continue
			}
			ratio := float64(rr.capacity) / float64(theirs[i].capacity)
			fmt.Printf("%s capacity: nettportal %d/s, FreeRADIUS %d/s: %.1fx\n", rr.mix, rr.capacity, theirs[i].capacity, ratio)
			b.ReportMetric(ratio, p+"ratio")
		}
	}
}

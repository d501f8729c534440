package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// benchDB is a new database, migrated, opened with maxConns connections
// and no statement timeout (seeding runs longer than a page may); it is
// closed at cleanup.
func benchDB(b testing.TB, maxConns int32) (string, *store.DB) {
	b.Helper()
	dbURL := storetest.MustCreateDatabase(b)
	db, err := store.OpenWith(context.Background(), dbURL, store.Options{MaxConns: maxConns, StatementTimeout: -1}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	if err := db.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return dbURL, db
}

// printDurability prints the server's fsync and synchronous_commit, which
// the figures depend on.
func printDurability(db *store.DB) {
	var fsync, syncCommit string
	db.Pool.QueryRow(context.Background(), "SHOW fsync").Scan(&fsync)
	db.Pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&syncCommit)
	fmt.Printf("postgres: fsync=%s synchronous_commit=%s\n", fsync, syncCommit)
}

// benchEnvInt reads a size knob for a benchmark (tests may read the
// environment; nothing else outside cmd does).
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchEnvCount is benchEnvInt for a count that may be 0 (a part of a
// load left out).
func benchEnvCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// BenchmarkIngest drives the real serve wiring with the fleet simulator's
// load mode: every session sends Start, interims and Stop, each only after
// the previous one was answered, from many sockets on their own loopback
// addresses. It prints acknowledged packets/s and latency at full speed and
// at 20,000 packets/s, checks every acknowledged packet against radacct, and
// measures the store alone on the same machine as the limit.
func BenchmarkIngest(b *testing.B) {
	routers := benchEnvInt("NETTPORTAL_BENCH_ROUTERS", 50)
	sessions := benchEnvInt("NETTPORTAL_BENCH_SESSIONS", 400) // per router
	interims := benchEnvInt("NETTPORTAL_BENCH_INTERIMS", 8)
	// Requests in flight: each waits for its answer, as a router's do. A
	// full-speed figure needs enough of them to keep the server busy: 82
	// per router, fewer than a router with a few thousand sessions has
	// outstanding after a reboot, and answered well within the 1 s
	// retransmit timeout (more than that would only measure retransmission
	// storms). NETTPORTAL_BENCH_INFLIGHT=1024 gives the earlier figures.
	inflight := benchEnvInt("NETTPORTAL_BENCH_INFLIGHT", 4096)
	for n := 0; n < b.N; n++ {
		dbURL, db := benchDB(b, 4)
		printDurability(db)

		full := sim.LoadConfig{Secret: "bench-secret", Routers: routers, SessionsPerRouter: sessions,
			InterimsPerSession: interims, Concurrency: inflight}
		half := full
		half.BaseIP = addrPlus(sim.DefaultBaseIP(), routers) // its own routers, so its rows are new
		half.Rate = 20000
		half.Concurrency = inflight
		halfRouters := half.NASRouters()
		for i := range halfRouters {
			halfRouters[i].Name = "capped-" + halfRouters[i].Name
		}
		for _, r := range append(full.NASRouters(), halfRouters...) {
			if err := db.CreateRouter(context.Background(), &r); err != nil {
				b.Fatal(err)
			}
		}
		// --stale-grace: the load's event times are virtual and look up to
		// an hour old, so the stale sweep would close live sessions mid-run.
		srv := startServe(b, dbURL, "--log-level", "warn", "--db-conns", "8", "--stale-grace", "1000h")
		full.Server, half.Server = srv.AcctAddr, srv.AcctAddr

		b.ResetTimer()
		cpu, wal, ckpt, batches := readCPU(), walPosition(b, db), checkpoints(b, db), readBatches(b, srv)
		res, err := sim.RunLoad(context.Background(), full)
		cpu = readCPU().since(cpu)
		wal = walPosition(b, db) - wal
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		report(b, "full speed", res)
		cpu.report(res.Acked)
		fmt.Printf("WAL: %.0f MB, %.0f bytes per acknowledged packet; %d checkpoints began\n",
			float64(wal)/1e6, float64(wal)/float64(max(res.Acked, 1)), checkpoints(b, db)-ckpt)
		readBatches(b, srv).report(batches)
		b.ReportMetric(res.PacketsPerSecond(), "acked/s")
		checkLedger(b, db, res)

		ckpt, batches = checkpoints(b, db), readBatches(b, srv)
		res, err = sim.RunLoad(context.Background(), half)
		if err != nil {
			b.Fatal(err)
		}
		report(b, "capped at 20000/s", res)
		readBatches(b, srv).report(batches)
		// A checkpoint in the phase adds full-page images to the WAL after
		// it: one of the things the p99 varies with between runs here.
		fmt.Printf("checkpoints began during the capped phase: %d\n", checkpoints(b, db)-ckpt)
		b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms@20k")
		checkLedger(b, db, res)

		// The limit on this machine: the same number of records applied
		// straight to the store, no network, no server.
		limit := storeOnlyRate(b, db, routers*sessions*(interims+2))
		fmt.Printf("store alone (same machine, same run): %.0f records/s\n", limit)
		b.ReportMetric(limit, "store-only/s")
	}
}

// cpuTimes are the machine's CPU times from /proc/stat, in clock ticks:
// what the whole machine (server, Postgres, load generator) spent is a
// steadier figure on a shared machine than the rate alone.
type cpuTimes struct{ busy, idle, steal float64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var v [8]float64
	for i := range v {
		if i+1 < len(f) {
			v[i], _ = strconv.ParseFloat(f[i+1], 64)
		}
	}
	return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}
}

func (c cpuTimes) since(then cpuTimes) cpuTimes {
	return cpuTimes{busy: c.busy - then.busy, idle: c.idle - then.idle, steal: c.steal - then.steal}
}

func (c cpuTimes) report(packets uint64) {
	total := c.busy + c.idle + c.steal
	if total == 0 || packets == 0 {
		return
	}
	const ticks = 100 // USER_HZ
	fmt.Printf("machine CPU: %.1f%% busy, %.1f%% idle, %.1f%% stolen; %.1f CPU-ms per 1000 acknowledged packets (server, Postgres and load generator)\n",
		100*c.busy/total, 100*c.idle/total, 100*c.steal/total, 1000*c.busy/ticks/float64(packets)*1000)
}

// walPosition is the server's WAL insert position in bytes: how much WAL a
// phase wrote (full-page images after each checkpoint included).
func walPosition(b *testing.B, db *store.DB) int64 {
	var pos int64
	if err := db.Pool.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn() - '0/0'`).Scan(&pos); err != nil {
		b.Fatal(err)
	}
	return pos
}

// checkpoints is how many checkpoints the server has begun (timed and
// requested), from pg_stat_bgwriter.
func checkpoints(b *testing.B, db *store.DB) int64 {
	var n int64
	if err := db.Pool.QueryRow(context.Background(), `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// serverBatches is what the server's /metrics says of its commits so far:
// transactions, records, and the cumulative commit-time histogram.
type serverBatches struct {
	count, records float64
	commitLE       map[float64]float64 // upper bound (s) -> commits at most that long
}

func readBatches(b testing.TB, srv *testServer) serverBatches {
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	m := serverBatches{commitLE: map[float64]float64{}}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch name := f[0]; {
		case name == "nettportal_radius_batch_records_sum":
			m.records = v
		case name == "nettportal_radius_batch_records_count":
			m.count = v
		case strings.HasPrefix(name, `nettportal_radius_commit_seconds_bucket{`) && strings.Contains(name, `result="ok"`):
			_, le, _ := strings.Cut(name, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			if bound, err := strconv.ParseFloat(le, 64); err == nil {
				m.commitLE[bound] = v
			}
		}
	}
	return m
}

// report prints the batches committed since then: their size, and the
// commit time at p50 and p99 as the histogram bucket that holds it (the
// server's share of the latency; the rest is the queue and the network).
func (m serverBatches) report(then serverBatches) {
	n := m.count - then.count
	if n <= 0 {
		return
	}
	bounds := make([]float64, 0, len(m.commitLE))
	for le := range m.commitLE {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	at := func(q float64) string {
		for _, le := range bounds {
			if m.commitLE[le]-then.commitLE[le] >= q*n {
				return fmt.Sprintf("<= %gms", le*1000)
			}
		}
		return "?"
	}
	fmt.Printf("batches: %.0f transactions, %.0f records each on average; commit p50 %s, p99 %s\n",
		n, (m.records-then.records)/n, at(0.5), at(0.99))
}

func addrPlus(a netip.Addr, n int) netip.Addr {
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a
}

func report(b *testing.B, what string, r sim.LoadResult) {
	fmt.Printf("ingest %s: %d sent, %d acknowledged in %.1fs = %.0f acknowledged packets/s; latency p50 %v p90 %v p99 %v max %v; %d retransmits, %d failed\n",
		what, r.Sent, r.Acked, r.Duration.Seconds(), r.PacketsPerSecond(), r.P50, r.P90, r.P99, r.Max, r.Retransmits, r.Failed)
}

// checkLedger verifies that radacct holds, for every session, at least what
// its newest acknowledged packet said.
func checkLedger(b testing.TB, db *store.DB, r sim.LoadResult) {
	checkLedgerEntries(b, db, r.Ledger, r.Acked)
}

// checkLedgerEntries is checkLedger for any load's ledger: sessions that
// appear more than once (steady runs continuing the same sessions) are
// checked for each entry, so the newest counters must be there.
func checkLedgerEntries(b testing.TB, db *store.DB, ledger []sim.LedgerEntry, acked uint64) {
	type row struct {
		in, out int64
		stopped bool
	}
	rows, err := db.Pool.Query(context.Background(), `SELECT host(nasipaddress), username, acctsessionid,
		coalesce(acctinputoctets, 0), coalesce(acctoutputoctets, 0), acctstoptime IS NOT NULL FROM radacct`)
	if err != nil {
		b.Fatal(err)
	}
	have := map[string]row{}
	for rows.Next() {
		var ip, user, sid string
		var x row
		if err := rows.Scan(&ip, &user, &sid, &x.in, &x.out, &x.stopped); err != nil {
			b.Fatal(err)
		}
		have[ip+"|"+user+"|"+sid] = x
	}
	rows.Close()
	missing := 0
	for _, e := range ledger {
		if e.Acked == 0 {
			continue
		}
		x, ok := have[e.NASIP.String()+"|"+e.Username+"|"+e.SessionID]
		if !ok || x.in < int64(e.InputOctets) || x.out < int64(e.OutputOctets) || (e.Status == nettportal.StatusStop && !x.stopped) {
			missing++
			if missing <= 5 {
				fmt.Printf("ledger mismatch: %+v in db: %+v (found %v)\n", e, x, ok)
			}
		}
	}
	fmt.Printf("ledger check: %d sessions, %d acknowledged packets, %d not in radacct\n", len(ledger), acked, missing)
	if missing > 0 {
		b.Fatalf("%d acknowledged sessions are not in radacct as acknowledged", missing)
	}
}

func storeOnlyRate(b *testing.B, db *store.DB, records int) float64 {
	const batch = 4096
	recs := make([]nettportal.AccountingRecord, batch)
	start := time.Now()
	done := 0
	for done < records {
		for i := range recs {
			k := done + i
			user := fmt.Sprintf("limit%07d", k%50000)
			sid := fmt.Sprintf("%08x", 0x90000000+k%50000)
			st, in, out := uint32(k), uint64(k)*100, uint64(k)*500
			recs[i] = nettportal.AccountingRecord{Status: nettportal.StatusInterimUpdate, RouterID: 1,
				EventTime: time.Unix(1764000000+int64(k), 0).UTC(), UniqueID: nettportal.AcctUniqueID(user, sid, "127.0.0.1", "", "", ""),
				SessionID: sid, Username: user, NASIP: sim.DefaultBaseIP(), SessionTime: &st, InputOctets: &in, OutputOctets: &out}
		}
		if err := db.ApplyAccounting(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		done += batch
	}
	return float64(done) / time.Since(start).Seconds()
}

// BenchmarkIngestPeer runs BenchmarkIngest's load against another
// accounting server on this machine, FreeRADIUS with rlm_sql say, so both
// are measured the same way: NETTPORTAL_BENCH_PEER is its host:port,
// NETTPORTAL_BENCH_PEER_SECRET the secret it knows the load routers by
// (127.0.0.11 upwards), NETTPORTAL_BENCH_PEER_DB the database it writes
// radacct to. FreeRADIUS's radacct has the columns the ledger check reads,
// so every acknowledged packet is checked there too. Requests in flight
// default to 256 (NETTPORTAL_BENCH_INFLIGHT): more only queue behind a
// slower server until they are retransmitted.
func BenchmarkIngestPeer(b *testing.B) {
	peer, peerDB := os.Getenv("NETTPORTAL_BENCH_PEER"), os.Getenv("NETTPORTAL_BENCH_PEER_DB")
	if peer == "" || peerDB == "" {
		b.Skip("set NETTPORTAL_BENCH_PEER=host:port and NETTPORTAL_BENCH_PEER_DB=url to measure another accounting server")
	}
	secret := os.Getenv("NETTPORTAL_BENCH_PEER_SECRET")
	if secret == "" {
		secret = "bench-secret"
	}
	load := sim.LoadConfig{Server: peer, Secret: secret,
		Routers:            benchEnvInt("NETTPORTAL_BENCH_ROUTERS", 50),
		SessionsPerRouter:  benchEnvInt("NETTPORTAL_BENCH_SESSIONS", 100),
		InterimsPerSession: benchEnvInt("NETTPORTAL_BENCH_INTERIMS", 8),
		Concurrency:        benchEnvInt("NETTPORTAL_BENCH_INFLIGHT", 256),
		Rate:               benchEnvInt("NETTPORTAL_BENCH_RATE", 0)}
	db, err := store.OpenWith(context.Background(), peerDB, store.Options{MaxConns: 2, StatementTimeout: -1}, zerolog.Nop()) // seeding runs longer than a page may
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for n := 0; n < b.N; n++ {
		b.ResetTimer()
		cpu := readCPU()
		res, err := sim.RunLoad(context.Background(), load)
		cpu = readCPU().since(cpu)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		report(b, "of "+peer, res)
		cpu.report(res.Acked)
		b.ReportMetric(res.PacketsPerSecond(), "acked/s")
		checkLedger(b, db, res)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// abuseConfig is one viewer-abuse run: a history of closed sessions and
// customers, then heavy viewers, CSV exports and WebSockets while an
// open-loop accounting load runs beside them.
type abuseConfig struct {
	closed, customers int
	heavy             int // viewers looping over heavy history requests
	sockets           int
	acctRate          int // accounting packets/s offered during the abuse
	acctDuration      time.Duration
	baseline          bool   // first the same accounting load without the abuse
	clientsNice       int    // the abusive viewers' nice value (0: the server's)
	noExport          bool   // no CSV exports
	profile           string // when set, a CPU profile of serve during the abuse is written here
}

// abuseResult is what an abuse run saw.
type abuseResult struct {
	baseline, acct sim.OpenLoopResult
	clients        abuseClientsResult
	limited        map[string]float64 // the server's websocket_limited_total by reason
	overload       string             // the listener's overload counters over the load beside the abuse (overloadDetail)
	// viewer queries that waited for accounting, how long in all, and
	// heavy ones refused because it was still behind
	yields, yieldSeconds, refused float64
	acctBegan, acctEnded          time.Time // the accounting load beside the abuse
	spooled                       float64   // records acknowledged from the spool
	spoolDepth                    float64
	spoolFiles                    int
	ledger                        []sim.LedgerEntry
	acked                         uint64
}

// wsTally counts what the abusive WebSocket clients got.
type wsTally struct {
	dialed, dialFailed, hello, snapshot, redials atomic.Int64
	closedMu                                     sync.Mutex
	closed                                       map[string]int // close reason (or error) -> sockets
}

func (w *wsTally) close(reason string) {
	w.closedMu.Lock()
	defer w.closedMu.Unlock()
	if w.closed == nil {
		w.closed = map[string]int{}
	}
	w.closed[reason]++
}

// raiseFileLimit makes room for n more descriptors in this process: the
// soft RLIMIT_NOFILE is raised up to the hard one; beyond that it fails.
func raiseFileLimit(tb testing.TB, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("getrlimit: %v", err)
	}
	need := n + 2048 // the server's pools, the load's sockets, the test's files
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		tb.Fatalf("need %d open files for %d WebSockets, the hard limit is %d: raise it (ulimit -Hn)", need, n, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("setrlimit NOFILE %d: %v", need, err)
	}
}

// fillHistory writes closed sessions over the last 60 days and the
// customers of most of their usernames, in SQL (a million rows through
// the listener would take minutes).
func fillHistory(tb testing.TB, db *store.DB, closed, customers int) {
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO customers (name, username, profile, phone, address)
		SELECT 'Customer ' || i, 'sub' || i, (ARRAY['home-10','home-25','home-50','biz-100','biz-200'])[1 + i % 5],
			'+880 17' || lpad((i::bigint * 7919 % 100000000)::text, 8, '0'), 'House ' || i % 300 || ', Road ' || i % 40 || ', Dhaka'
		FROM generate_series(0, $1 - 1) i`, customers); err != nil {
		tb.Fatalf("fill customers: %v", err)
	}
	// Usernames run over 1.2 x customers, so some sessions have none.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nas_id,
			acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets,
			framedipaddress, callingstationid, acctterminatecause, closed_by, profile, has_start)
		SELECT to_hex(i), md5('closed' || i), 'sub' || (i % ($2 * 6 / 5)), '127.0.0.11', (SELECT min(id) FROM nas),
			s, s + interval '50 min', s + interval '1 hour', 3600, i::bigint * 1000, i::bigint * 7000,
			'100.64.0.0'::inet + i % 60000, 'AA:00:00:00:00:00', 'User-Request', 'stop',
			(ARRAY['home-10','home-25','home-50','biz-100','biz-200'])[1 + i % 5], true
		FROM generate_series(1, $1) i, LATERAL (SELECT now() - interval '2 hours' - (i % 86400 * 60) * interval '1 s' AS s) t`,
		closed, max(customers, 1)); err != nil {
		tb.Fatalf("fill closed sessions: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, "VACUUM ANALYZE radacct"); err != nil {
		tb.Fatalf("vacuum: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, "VACUUM ANALYZE customers"); err != nil {
		tb.Fatalf("vacuum: %v", err)
	}
}

// heavyPaths are the viewer requests issue 12 found holding connections
// for minutes: substring searches over history, sorted on a joined
// column, paged deep (a history search now needs a time range).
func heavyPaths(closed int) []string {
	from := time.Now().Add(-90 * 24 * time.Hour).UTC().Format(time.RFC3339)
	deep := closed * 3 / 4
	rng := "&from=" + url.QueryEscape(from)
	return []string{
		fmt.Sprintf("/api/sessions?q=ustomer&closed=true&sort=profile&offset=%d%s", deep, rng),
		fmt.Sprintf("/api/sessions?q=ustomer&closed=true&sort=username&order=desc&offset=%d%s", deep, rng),
		fmt.Sprintf("/api/sessions?q=sub1&closed=true&sort=output_octets&offset=%d%s", deep/4, rng),
		fmt.Sprintf("/api/sessions?q=ustomer&closed=true&sort=started_at&offset=%d%s", deep, rng),
		fmt.Sprintf("/api/sessions?closed=true&sort=profile&offset=%d", deep),
		fmt.Sprintf("/api/sessions?q=Road&closed=true&sort=ip&offset=%d%s", deep/2, rng),
		fmt.Sprintf("/api/sessions?q=ub2&closed=true&sort=input_octets&order=desc&offset=%d%s", deep/8, rng),
		fmt.Sprintf("/api/sessions?q=ustomer&closed=true&sort=profile&offset=%d%s", deep/2, rng),
	}
}

// wsViews are what the abusive sockets subscribe to.
var wsViews = []string{
	`{"type":"subscribe","sort":"started_at","order":"desc","limit":50}`,
	`{"type":"subscribe","sort":"output_bps","order":"desc","limit":100}`,
	`{"type":"subscribe","q":"sub1","sort":"username","order":"asc","limit":50}`,
	`{"type":"subscribe","q":"ustomer","sort":"profile","order":"asc","limit":250}`,
}

// runViewerAbuse runs serve as its own process (10,000 sockets need their
// descriptors on both ends) over a filled history, opens the sockets,
// starts the heavy viewers and the CSV exports, and offers the accounting
// load while they all run.
func runViewerAbuse(tb testing.TB, cfg abuseConfig) *abuseResult {
	ctx := context.Background()
	raiseFileLimit(tb, uint64(cfg.sockets))
	dbURL := storetest.MustCreateDatabase(tb)
	db, err := store.OpenWith(ctx, dbURL, store.Options{MaxConns: 4, StatementTimeout: -1}, zerolog.Nop()) // the fill runs longer than a page may
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	load := sim.OpenLoopConfig{Secret: "abuse-secret", Routers: rampRouters, Rate: cfg.acctRate, Duration: cfg.acctDuration}
	for _, r := range load.NASRouters() {
		if err := db.CreateRouter(ctx, &r); err != nil {
			tb.Fatal(err)
		}
	}
	began := time.Now()
	fillHistory(tb, db, cfg.closed, cfg.customers)
	fmt.Printf("viewer abuse: %d closed sessions and %d customers filled in %v\n", cfg.closed, cfg.customers, time.Since(began).Round(time.Millisecond))

	// Enough tokens and addresses that the per-user (50) and per-address
	// (200) socket bounds admit every socket: the abuse is their number.
	ntokens, naddrs := (cfg.sockets+39)/40, (cfg.sockets+149)/150
	tokens := make([]string, ntokens)
	for i := range tokens {
		if tokens[i], err = db.CreateToken(ctx, fmt.Sprintf("wall-%04d", i), nettportal.RoleViewer); err != nil {
			tb.Fatal(err)
		}
	}
	heavyToken, err := db.CreateToken(ctx, "heavy", nettportal.RoleViewer)
	if err != nil {
		tb.Fatal(err)
	}

	// NETTPORTAL_BENCH_SERVE_FLAGS: serve flags to compare, as in the
	// open-loop ramp.
	serveArgs := append([]string{"--log-level", "warn", "--stale-grace", "1000h"}, strings.Fields(os.Getenv("NETTPORTAL_BENCH_SERVE_FLAGS"))...)
	if cfg.profile != "" {
		serveArgs = append(serveArgs, "--metrics-addr", "127.0.0.1:0", "--pprof")
	}
	srv := newServeProc(tb, buildBinary(tb), dbURL, serveArgs...)
	spoolDir := ""
	for i, a := range srv.args {
		if a == "--spool-dir" {
			spoolDir = srv.args[i+1]
		}
	}
	srv.Start()
	load.Server = srv.AcctAddr
	res := &abuseResult{}

	if cfg.baseline {
		load.Tag = "base"
		if res.baseline, err = sim.RunOpenLoop(ctx, load); err != nil {
			tb.Fatal(err)
		}
		res.ledger = append(res.ledger, res.baseline.Ledger...)
		res.acked += res.baseline.Answered
	}

	clients := abuseClients{HTTPURL: srv.HTTPURL, HeavyToken: heavyToken, Tokens: tokens, Addrs: naddrs,
		Sockets: cfg.sockets, Heavy: cfg.heavy, Closed: cfg.closed, NoExport: cfg.noExport}
	stopClients := startAbuseClients(tb, clients, cfg.clientsNice)

	load.Tag = "abus"
	metricsOf := &testServer{HTTPURL: srv.HTTPURL}
	batches := readBatches(tb, metricsOf)
	profiled := make(chan struct{})
	if cfg.profile != "" {
		go func() {
			defer close(profiled)
			secs := max(int(cfg.acctDuration/time.Second)-1, 1)
			if err := fetchToFile(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", srv.MetricsURL, secs), cfg.profile); err != nil {
				fmt.Printf("viewer abuse: CPU profile: %v\n", err)
			}
		}()
	} else {
		close(profiled)
	}
	overload := (&ourTarget{srv: metricsOf}).overloadDetail()
	res.acctBegan = time.Now()
	res.acct, err = sim.RunOpenLoop(ctx, load)
	if err != nil {
		tb.Fatal(err)
	}
	res.acctEnded = time.Now()
	res.overload = overload()
	<-profiled
	// The commits' share of the latency beside the abuse (the rest is the
	// queue, the process's CPU and the network).
	fmt.Print("viewer abuse: accounting ")
	readBatches(tb, metricsOf).report(batches)
	res.ledger = append(res.ledger, res.acct.Ledger...)
	res.acked += res.acct.Answered
	res.clients = stopClients()

	res.limited = map[string]float64{}
	for _, reason := range []string{"per_user", "per_address", "subscribe_rate", "snapshot_busy", "push_rate"} {
		res.limited[reason], _ = metric(srv.HTTPURL, "nettportal_websocket_limited_total", `reason="`+reason+`"`)
	}
	res.yields, _ = metric(srv.HTTPURL, "nettportal_viewer_yields_total")
	res.yieldSeconds, _ = metric(srv.HTTPURL, "nettportal_viewer_yield_seconds_total")
	res.refused, _ = metric(srv.HTTPURL, "nettportal_viewer_refused_total")
	if res.spooled, err = metric(srv.HTTPURL, "nettportal_radius_spooled_records_total"); err != nil {
		tb.Fatal(err)
	}
	if res.spoolDepth, err = metric(srv.HTTPURL, "nettportal_spool_records"); err != nil {
		tb.Fatal(err)
	}
	entries, _ := os.ReadDir(spoolDir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			res.spoolFiles++
		}
	}
	srv.Stop()
	res.print(cfg, spoolDir)
	checkLedgerEntries(tb, db, res.ledger, res.acked)
	return res
}

// abuseClients are a run's abusive viewers: heavy history requests, full
// CSV exports and WebSockets. They run in a child process of the test
// binary (startAbuseClients), so their own work (10,000 sockets' reads)
// does not share a Go scheduler with the accounting load, whose clock
// measures the latency.
type abuseClients struct {
	HTTPURL, HeavyToken string
	Tokens              []string
	Addrs, Sockets      int  // loopback source addresses, sockets
	Heavy, Closed       int  // heavy viewers; closed sessions (for their paths)
	NoExport            bool // no CSV exports (to tell what slows accounting)
}

// abuseClientsResult is what the abusive viewers got.
type abuseClientsResult struct {
	HeavyStatus                                  map[int]int // HTTP status -> answers
	HeavyTimes                                   []time.Duration
	CSVStatus                                    map[int]int
	CSVRows                                      int64 // rows of the longest complete export
	CSVTime                                      time.Duration
	DialTime                                     time.Duration // until every socket's first dial was done
	Dialed, DialFailed, Hello, Snapshot, Redials int64
	Closed                                       map[string]int // close reason (or error) -> sockets
}

// run starts the viewers, calls started once every heavy viewer and the
// export had a first answer and every socket its first dial, and returns
// what they got once ctx ends.
func (c abuseClients) run(ctx context.Context, started func()) abuseClientsResult {
	res := abuseClientsResult{HeavyStatus: map[int]int{}, CSVStatus: map[int]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	client := &http.Client{Timeout: 5 * time.Minute}
	get := func(path string) (int, io.ReadCloser, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.HTTPURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.HeavyToken)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		return resp.StatusCode, resp.Body, nil
	}
	// Each heavy viewer repeats its request until the abuse ends; each one
	// is told when its first answer came.
	first := make(chan struct{}, c.Heavy+1)
	paths := heavyPaths(c.Closed)
	for i := range c.Heavy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				t0 := time.Now()
				status, body, err := get(paths[i%len(paths)])
				if err == nil {
					io.Copy(io.Discard, body)
					body.Close()
					mu.Lock()
					res.HeavyStatus[status]++
					res.HeavyTimes = append(res.HeavyTimes, time.Since(t0))
					mu.Unlock()
				}
				if n == 0 {
					first <- struct{}{}
				}
			}
		}()
	}
	// The full export of every closed session, again and again.
	exports := 1
	if c.NoExport {
		exports = 0
	}
	for range exports {
		wg.Add(1)
		go c.export(ctx, &wg, &mu, &res, get, first)
	}
	for range c.Heavy + exports {
		<-first
	}
	// The sockets, opened while the viewers above run.
	dialing := time.Now()
	var tally wsTally
	openSockets(ctx, c.HTTPURL, c.Tokens, c.Addrs, c.Sockets, &tally, &wg)
	res.DialTime = time.Since(dialing)
	started()
	<-ctx.Done()
	wg.Wait()
	res.Dialed, res.DialFailed, res.Redials = tally.dialed.Load(), tally.dialFailed.Load(), tally.redials.Load()
	res.Hello, res.Snapshot = tally.hello.Load(), tally.snapshot.Load()
	res.Closed = tally.closed
	return res
}

// export asks for the full export of every closed session again and
// again until ctx ends, and tells first of its first answer.
func (c abuseClients) export(ctx context.Context, wg *sync.WaitGroup, mu *sync.Mutex, res *abuseClientsResult,
	get func(string) (int, io.ReadCloser, error), first chan<- struct{}) {
	defer wg.Done()
	for n := 0; ctx.Err() == nil; n++ {
		t0 := time.Now()
		status, body, err := get("/api/sessions.csv?closed=true")
		if err == nil {
			lines, err := countLines(body)
			body.Close()
			mu.Lock()
			res.CSVStatus[status]++
			if status == 200 && err == nil && lines-1 > res.CSVRows {
				res.CSVRows, res.CSVTime = lines-1, time.Since(t0)
			}
			mu.Unlock()
		}
		if n == 0 {
			first <- struct{}{}
		}
		if status != 200 {
			// A 503 (every heavy slot taken) comes back at once: ask
			// again a little later, as a person clicking again would.
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// abuseClientsEnv carries the abusive viewers' configuration to the child
// process.
const abuseClientsEnv = "NETTPORTAL_ABUSE_CLIENTS"

// startAbuseClients runs c in a child process of the test binary, at the
// given nice value (0: the same priority as the server), and returns once
// they all run; stop ends them and returns what they got.
func startAbuseClients(tb testing.TB, c abuseClients, nice int) (stop func() abuseClientsResult) {
	tb.Helper()
	spec, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{os.Args[0], "-test.run=^TestAbuseClientsProcess$", "-test.count=1", "-test.timeout=3h"}
	if nice != 0 {
		// nice(1), so every thread the child's runtime starts has it.
		args = append([]string{"nice", "-n", strconv.Itoa(nice)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), abuseClientsEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the abusive viewers: %v", err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 256<<20)
	for lines.Scan() && lines.Text() != "started" {
	}
	if lines.Err() != nil || lines.Text() != "started" {
		stdin.Close()
		cmd.Wait()
		tb.Fatalf("the abusive viewers' process ended before they all ran (%v)", lines.Err())
	}
	var once sync.Once
	var res abuseClientsResult
	stop = func() abuseClientsResult {
		once.Do(func() {
			stdin.Close() // the child's signal to stop
			found := false
			for lines.Scan() {
				if rest, ok := strings.CutPrefix(lines.Text(), "result "); ok {
					found = json.Unmarshal([]byte(rest), &res) == nil
				}
			}
			if err := cmd.Wait(); err != nil || !found {
				tb.Fatalf("the abusive viewers' process: %v, result read: %v", err, found)
			}
		})
		return res
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// TestAbuseClientsProcess is not a test: it is the child process of
// startAbuseClients (and skips without its configuration). It runs the
// viewers, says "started" on stdout, and once stdin closes prints their
// result as JSON.
func TestAbuseClientsProcess(t *testing.T) {
	spec := os.Getenv(abuseClientsEnv)
	if spec == "" {
		t.Skip("the child process of the viewer-abuse runs")
	}
	var c abuseClients
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatalf("%s: %v", abuseClientsEnv, err)
	}
	raiseFileLimit(t, uint64(c.Sockets))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	res := c.run(ctx, func() { fmt.Println("started") })
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("result %s\n", out)
}

// openSockets keeps n WebSockets open from naddrs loopback addresses
// (127.0.0.100 upwards) spread over the tokens until ctx ends: each
// subscribes to a view and reads until it is closed, and one the server
// closes dials again after the page's backoff. It returns once
// every socket's first dial is done; the sockets run on under wg.
func openSockets(ctx context.Context, httpURL string, tokens []string, naddrs, n int, tally *wsTally, wg *sync.WaitGroup) {
	u, _ := url.Parse(httpURL)
	next := atomic.Int64{}
	var dialers sync.WaitGroup
	for range 32 {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				a := i % naddrs
				local := netip.AddrFrom4([4]byte{127, 0, byte(a / 150), byte(100 + a%150)})
				d := websocket.Dialer{HandshakeTimeout: time.Minute, NetDialContext: (&net.Dialer{
					LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}).DialContext}
				hdr := http.Header{"Origin": {httpURL}, "Authorization": {"Bearer " + tokens[i%len(tokens)]}}
				dial := func() *websocket.Conn {
					ws, _, err := d.DialContext(ctx, "ws://"+u.Host+"/ws", hdr)
					if err != nil {
						if ctx.Err() == nil {
							tally.dialFailed.Add(1)
							tally.close("dial: " + err.Error())
						}
						return nil
					}
					tally.dialed.Add(1)
					if err := ws.WriteMessage(websocket.TextMessage, []byte(wsViews[i%len(wsViews)])); err != nil {
						tally.close("subscribe: " + err.Error())
					}
					return ws
				}
				ws := dial()
				wg.Add(1)
				go func() {
					defer wg.Done()
					attempt := 0
					for {
						if ws != nil {
							stop := context.AfterFunc(ctx, func() { ws.Close() })
							if readSocket(ctx, ws, tally) {
								attempt = 0
							}
							stop()
							ws.Close()
						}
						if ctx.Err() != nil {
							return
						}
						// The page's backoff (web/ui/js/live.js): 0.5 s
						// doubling to 15 s, half of it jitter.
						base := min(15*time.Second, 500*time.Millisecond<<min(attempt, 5))
						attempt++
						select {
						case <-ctx.Done():
							return
						case <-time.After(base/2 + rand.N(base/2)):
						}
						tally.redials.Add(1)
						ws = dial()
					}
				}()
			}
		}()
	}
	dialers.Wait()
}

// readSocket reads ws until it is closed and says whether a snapshot came.
func readSocket(ctx context.Context, ws *websocket.Conn, tally *wsTally) (gotSnapshot bool) {
	for {
		var m struct{ Type string }
		err := ws.ReadJSON(&m)
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case ctx.Err() != nil:
				tally.close("open until the end")
			case errors.As(err, &ce):
				tally.close(fmt.Sprintf("closed by the server: %d %s", ce.Code, ce.Text))
			default:
				tally.close("read: " + err.Error())
			}
			return gotSnapshot
		}
		switch m.Type {
		case "hello":
			tally.hello.Add(1)
		case "sessions":
			if !gotSnapshot {
				gotSnapshot = true
				tally.snapshot.Add(1)
			}
		}
	}
}

func countLines(r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (r *abuseResult) print(cfg abuseConfig, spoolDir string) {
	p := func(label string, x sim.OpenLoopResult) {
		fmt.Printf("viewer abuse: accounting %s: offered %d/s for %v: answered %.0f/s, failed %d, retransmits %d, p50 %v, p99 %v, max %v\n",
			label, cfg.acctRate, cfg.acctDuration, x.Goodput(), x.Failed, x.Retransmits,
			x.P50.Round(time.Millisecond/10), x.P99.Round(time.Millisecond/10), x.Max.Round(time.Millisecond))
	}
	if cfg.baseline {
		p("alone", r.baseline)
	}
	p("beside the abuse", r.acct)
	fmt.Printf("viewer abuse: the load beside the abuse ran from %s to %s (unix %d to %d), to match with samples taken outside\n",
		r.acctBegan.UTC().Format(time.TimeOnly), r.acctEnded.UTC().Format(time.TimeOnly), r.acctBegan.Unix(), r.acctEnded.Unix())
	c := r.clients
	sort.Slice(c.HeavyTimes, func(i, j int) bool { return c.HeavyTimes[i] < c.HeavyTimes[j] })
	var med, longest time.Duration
	if n := len(c.HeavyTimes); n > 0 {
		med, longest = c.HeavyTimes[n/2], c.HeavyTimes[n-1]
	}
	fmt.Printf("viewer abuse: %d heavy viewers: answers by status %v, median %v, longest %v\n", cfg.heavy, c.HeavyStatus,
		med.Round(time.Millisecond), longest.Round(time.Millisecond))
	fmt.Printf("viewer abuse: CSV exports of every closed session: answers by status %v, longest complete: %d rows in %v\n",
		c.CSVStatus, c.CSVRows, c.CSVTime.Round(time.Millisecond))
	reasons := make([]string, 0, len(c.Closed))
	for k, v := range c.Closed {
		reasons = append(reasons, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(reasons)
	fmt.Printf("viewer abuse: %d WebSockets (first dials done in %v, viewers at nice %d): %d dials (%d of them again after a close, %d failed), %d hello, %d first snapshot; ends: %s; server limited %v\n",
		cfg.sockets, c.DialTime.Round(time.Millisecond), cfg.clientsNice, c.Dialed, c.Redials, c.DialFailed, c.Hello, c.Snapshot, strings.Join(reasons, "; "), r.limited)
	fmt.Printf("viewer abuse: the listener beside the abuse (shed: dropped unanswered after waiting past the queue budget, for the router to retransmit): %s\n", r.overload)
	fmt.Printf("viewer abuse: viewer queries that waited for accounting: %.0f (%.1fs in all), heavy ones refused as busy: %.0f\n",
		r.yields, r.yieldSeconds, r.refused)
	fmt.Printf("viewer abuse: spooled (answered from the spool) %.0f, spool depth %.0f, non-empty files in %s: %d\n",
		r.spooled, r.spoolDepth, filepath.Base(spoolDir), r.spoolFiles)
}

// TestAccountingBesideHeavyViewers: with a history of closed sessions,
// heavy viewer requests (history searches paged deep), full CSV exports
// and many WebSockets running, an accounting load is still committed to
// radacct, never to the spool. No timing is asserted (BenchmarkViewerAbuse
// has the figures): every acknowledged packet is in radacct, nothing was
// spooled or answered from the spool, the spool is empty.
func TestAccountingBesideHeavyViewers(t *testing.T) {
	res := runViewerAbuse(t, abuseConfig{closed: 20000, customers: 2500, heavy: 8, sockets: 1000,
		acctRate: 400, acctDuration: 3 * time.Second})
	if res.acct.Answered == 0 {
		t.Fatalf("no accounting packet answered beside the viewers: %+v", res.acct)
	}
	if res.spooled != 0 || res.spoolDepth != 0 || res.spoolFiles != 0 {
		t.Errorf("accounting went to the spool beside the viewers: %.0f answered from the spool, depth %.0f, %d spool files",
			res.spooled, res.spoolDepth, res.spoolFiles)
	}
	heavy := 0
	for _, n := range res.clients.HeavyStatus {
		heavy += n
	}
	csv := 0
	for _, n := range res.clients.CSVStatus {
		csv += n
	}
	if heavy < 8 || csv == 0 || res.clients.Dialed == 0 {
		t.Errorf("the abuse did not run: %d heavy answers, %d CSV answers, %d sockets", heavy, csv, res.clients.Dialed)
	}
}

// BenchmarkViewerAbuse: 400,000 closed sessions and 50,000 customers
// (NETTPORTAL_BENCH_ABUSE_CLOSED, _CUSTOMERS), 8 heavy viewers (_HEAVY),
// full CSV exports (_EXPORTS=0: none) and 10,000 WebSockets (_SOCKETS)
// while an open-loop reconnect storm of NETTPORTAL_BENCH_ABUSE_RATE
// (5,000/s) runs for NETTPORTAL_BENCH_ABUSE_SECONDS (20): accounting
// p50/p99 alone and beside the abuse, what the viewers got, spooled count,
// ledger check; NETTPORTAL_BENCH_ABUSE_PROFILE=file writes serve's CPU
// profile during the abuse to file. The viewers run in their own process at
// NETTPORTAL_BENCH_ABUSE_NICE (0): on a real network their CPU is not the
// server's, here it is.
func BenchmarkViewerAbuse(b *testing.B) {
	cfg := abuseConfig{
		closed:       benchEnvInt("NETTPORTAL_BENCH_ABUSE_CLOSED", 400000),
		customers:    benchEnvInt("NETTPORTAL_BENCH_ABUSE_CUSTOMERS", 50000),
		heavy:        benchEnvCount("NETTPORTAL_BENCH_ABUSE_HEAVY", 8),
		sockets:      benchEnvCount("NETTPORTAL_BENCH_ABUSE_SOCKETS", 10000),
		acctRate:     benchEnvInt("NETTPORTAL_BENCH_ABUSE_RATE", 5000),
		acctDuration: time.Duration(benchEnvInt("NETTPORTAL_BENCH_ABUSE_SECONDS", 20)) * time.Second,
		baseline:     true,
		clientsNice:  benchEnvInt("NETTPORTAL_BENCH_ABUSE_NICE", 0),
		noExport:     benchEnvCount("NETTPORTAL_BENCH_ABUSE_EXPORTS", 1) == 0,
		profile:      os.Getenv("NETTPORTAL_BENCH_ABUSE_PROFILE"),
	}
	for n := 0; n < b.N; n++ {
		res := runViewerAbuse(b, cfg)
		b.ReportMetric(float64(res.acct.P50.Microseconds())/1000, "acct-p50-ms")
		b.ReportMetric(float64(res.acct.P99.Microseconds())/1000, "acct-p99-ms")
		b.ReportMetric(float64(res.baseline.P99.Microseconds())/1000, "alone-p99-ms")
		b.ReportMetric(float64(res.acct.Failed), "acct-failed")
		b.ReportMetric(res.spooled, "spooled")
	}
}

// fetchToFile writes what GET url answers to path.
func fetchToFile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

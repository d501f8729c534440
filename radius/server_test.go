package radius_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/radius/radiustest"
	"github.com/nettportal/nettportal/spool"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

const secret = "s3cret"

// testServer is a Server under test and the outcomes it counted, which
// tests wait on instead of polling its counters.
type testServer struct {
	*radius.Server
	outcomes *outcomeLog
}

// startServer runs a Server on 127.0.0.1:0 against a real database that
// knows 127.0.0.1 as a router; it returns once Serve has started (its
// first router load) and shuts down at cleanup.
func startServer(t *testing.T, db *store.DB, configure func(*radius.Server)) *testServer {
	t.Helper()
	r := nettportal.Router{Name: "core-1", IP: netip.MustParseAddr("127.0.0.1"), Secret: secret}
	if err := db.CreateRouter(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	// No shedding unless a test asks for it: these tests send a packet once
	// (no router retransmitting), and on a loaded CI machine a scheduler
	// stall can exceed the default queue-delay budget.
	srv := &radius.Server{Addr: "127.0.0.1:0", Routers: db, Store: db, MaxQueueDelay: -1}
	if configure != nil {
		configure(srv)
	}
	ts := &testServer{Server: srv, outcomes: newOutcomeLog()}
	if prev := srv.OnOutcome; prev != nil {
		srv.OnOutcome = func(o nettportal.Outcome) { ts.outcomes.add(o); prev(o) }
	} else {
		srv.OnOutcome = ts.outcomes.add
	}
	loaded := &firstLoad{RouterLister: srv.Routers, done: make(chan struct{})}
	srv.Routers = loaded
	conn, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	select {
	case <-loaded.done:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve never loaded the routers")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, radius.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// firstLoad tells when Serve first reads the routers: by then it has
// started (LocalAddr is set and Shutdown will stop it).
type firstLoad struct {
	nettportal.RouterLister
	once sync.Once
	done chan struct{}
}

func (f *firstLoad) Routers(ctx context.Context) ([]nettportal.Router, error) {
	f.once.Do(func() { close(f.done) })
	return f.RouterLister.Routers(ctx)
}

// outcomeLog counts the outcomes a server reports through OnOutcome and
// wakes whoever waits for one.
type outcomeLog struct {
	mu      sync.Mutex
	n       [nettportal.NumOutcomes]int
	changed chan struct{} // closed and replaced at every outcome
}

func newOutcomeLog() *outcomeLog { return &outcomeLog{changed: make(chan struct{})} }

func (l *outcomeLog) add(o nettportal.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[o]++
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *outcomeLog) count(o nettportal.Outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[o]
}

// changes is closed at the next outcome counted: a waiter takes it, then
// checks its condition, then waits on it.
func (l *outcomeLog) changes() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// await waits until n packets have had outcome o.
func (l *outcomeLog) await(t *testing.T, o nettportal.Outcome, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got, changed := l.n[o], l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%d packets with outcome %v, waited for %d", got, o, n)
		}
	}
}

// barrier sends a datagram too short to be RADIUS and waits until the
// server has counted it. With one reader (Readers: 1) the server handles
// datagrams in the order its socket received them, so every packet sent
// before the barrier (from any client) has been queued or dropped by then.
func (c *client) barrier(ts *testServer) {
	c.t.Helper()
	want := ts.outcomes.count(nettportal.OutcomeMalformed) + 1
	c.send([]byte{4, 0, 0})
	ts.outcomes.await(c.t, nettportal.OutcomeMalformed, want)
}

// request is user-sid's accounting request of status, as these tests send.
func request(t *testing.T, sid string, status rfc2866.AcctStatusType, secret string) []byte {
	t.Helper()
	return radiustest.Request{Status: status, User: "user-" + sid, SessionID: sid}.Encode(t, secret)
}

// client is a router's socket: it sends requests and collects answers.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func newClient(t *testing.T, srv *testServer) *client {
	conn, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

func (c *client) send(raw []byte) {
	if _, err := c.conn.Write(raw); err != nil {
		c.t.Fatal(err)
	}
}

// answers counts the authentic answers to reqs arriving within d.
func (c *client) answers(reqs [][]byte, d time.Duration) int {
	deadline := time.Now().Add(d)
	got := map[int]bool{}
	buf := make([]byte, 4096)
	for len(got) < len(reqs) {
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(buf)
		if err != nil {
			break
		}
		for i, req := range reqs {
			if rad.IsAuthenticResponse(buf[:n], req, []byte(secret)) {
				got[i] = true
			}
		}
	}
	return len(got)
}

// mustBeAnswered fails the test with msg unless the authentic answer to
// req arrives within 5s.
func (c *client) mustBeAnswered(req []byte, msg string) {
	c.t.Helper()
	if n := c.answers([][]byte{req}, 5*time.Second); n != 1 {
		c.t.Fatal(msg)
	}
}

// lockAccounting holds radacct locked until the returned func is called:
// commits wait, as they would for a stalled database.
func lockAccounting(t *testing.T, db *store.DB) func() {
	t.Helper()
	tx, err := db.Pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "LOCK TABLE radacct IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once atomic.Bool
	release := func() {
		if once.CompareAndSwap(false, true) {
			tx.Rollback(context.Background())
		}
	}
	t.Cleanup(release)
	return release
}

// secondRouter adds core-2 at 127.0.0.2 to the database (before
// startServer, which loads the routers once) for tests of two routers.
func secondRouter(t *testing.T, db *store.DB) {
	t.Helper()
	other := nettportal.Router{Name: "core-2", IP: netip.MustParseAddr("127.0.0.2"), Secret: secret}
	if err := db.CreateRouter(context.Background(), &other); err != nil {
		t.Fatal(err)
	}
}

// secondRouterClient is a socket of core-2 (see secondRouter).
func secondRouterClient(t *testing.T, srv *testServer) *client {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

func countRows(t *testing.T, db *store.DB) int {
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM radacct").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mustCountRows fails the test with msg unless radacct has want rows.
func mustCountRows(t *testing.T, db *store.DB, want int, msg string) {
	t.Helper()
	if countRows(t, db) != want {
		t.Fatal(msg)
	}
}

func TestNoAnswerBeforeCommit(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	srv := startServer(t, db, nil)
	c := newClient(t, srv)
	unlock := lockAccounting(t, db)
	req := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(req)
	if n := c.answers([][]byte{req}, 700*time.Millisecond); n != 0 {
		t.Fatal("answered while the commit was blocked")
	}
	unlock()
	c.mustBeAnswered(req, "no answer after the commit could proceed")
	mustCountRows(t, db, 1, "answered but not in radacct")
}

func TestFullQueueLeavesPacketsUnanswered(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	// No delay budget: the queued packets wait the lock out. One reader,
	// so a barrier packet tells when the others have been handled.
	dequeued := make(chan struct{}, 8)
	srv := startServer(t, db, func(s *radius.Server) {
		s.QueueSize = 2
		s.Workers = 1
		s.MaxBatch = 1
		s.Readers = 1
		s.MaxQueueDelay = -1
		s.OnDequeue = func(time.Duration) { dequeued <- struct{}{} }
	})
	c := newClient(t, srv)
	unlock := lockAccounting(t, db)
	var reqs [][]byte
	for i := 0; i < 6; i++ {
		reqs = append(reqs, request(t, fmt.Sprintf("8100000%d", i), rfc2866.AcctStatusType_Value_Start, secret))
	}
	c.send(reqs[0])
	select { // the worker holds the first: its commit waits for the lock
	case <-dequeued:
	case <-time.After(5 * time.Second):
		t.Fatal("the first packet never reached the worker")
	}
	for _, req := range reqs[1:] {
		c.send(req)
	}
	c.barrier(srv)
	if full := srv.Stats.Outcome(nettportal.OutcomeQueueFull); full != 3 {
		t.Errorf("queue full drops = %d, want 3 (1 in the worker, 2 queued)", full)
	}
	if depth := srv.QueueDepth(); depth != 2 {
		t.Errorf("queue depth %d, want 2", depth)
	}
	if n := c.answers(reqs, 300*time.Millisecond); n != 0 {
		t.Fatalf("%d answers while blocked", n)
	}
	unlock()
	if n := c.answers(reqs, 5*time.Second); n != 3 {
		t.Errorf("%d answers after unblocking, want the 3 accepted", n)
	}
	// The router retransmits the dropped ones; now they go through (one
	// at a time: the queue holds two, and a worker may not have taken the
	// first yet when the third comes).
	for i, req := range reqs[3:] {
		c.send(req)
		if n := c.answers([][]byte{req}, 5*time.Second); n != 1 {
			t.Errorf("retransmission %d not answered", i+1)
		}
	}
	if got := countRows(t, db); got != 6 {
		t.Errorf("%d rows, want 6", got)
	}
}

// A packet that waited longer than MaxQueueDelay for its batch is dropped
// unanswered and counted as shed; the router's retransmission is then
// served as a new request.
func TestOverdueQueuedPacketsAreShed(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	var maxDelay atomic.Int64
	// The packets' age is the property under test: the server's clock is
	// moved on instead of the test sleeping through the budget.
	var ahead atomic.Int64
	dequeued := make(chan struct{}, 8)
	srv := startServer(t, db, func(s *radius.Server) {
		s.Workers = 1
		s.MaxBatch = 1
		s.Readers = 1 // for the barrier
		s.MaxQueueDelay = 100 * time.Millisecond
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		s.OnDequeue = func(d time.Duration) {
			if int64(d) > maxDelay.Load() {
				maxDelay.Store(int64(d))
			}
			select {
			case dequeued <- struct{}{}:
			default:
			}
		}
	})
	c := newClient(t, srv)
	unlock := lockAccounting(t, db)
	first := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(first)
	// The worker holds the first (its commit waits for the lock) once the
	// dequeue hook saw it.
	select {
	case <-dequeued:
	case <-time.After(5 * time.Second):
		t.Fatal("the first packet never reached the worker")
	}
	late := [][]byte{
		request(t, "81000002", rfc2866.AcctStatusType_Value_Start, secret),
		request(t, "81000003", rfc2866.AcctStatusType_Value_Start, secret),
	}
	for _, req := range late {
		c.send(req)
	}
	c.barrier(srv)
	if depth := srv.QueueDepth(); depth != 2 {
		t.Fatalf("queue depth %d, want the 2 late packets", depth)
	}
	ahead.Add(int64(150 * time.Millisecond)) // past the 100ms budget
	unlock()
	c.mustBeAnswered(first, "the packet committed first was not answered")
	for range late { // the worker has taken each overdue packet
		select {
		case <-dequeued:
		case <-time.After(5 * time.Second):
			t.Fatal("the overdue packets never reached the worker")
		}
	}
	if n := c.answers(late, 300*time.Millisecond); n != 0 {
		t.Errorf("%d overdue packets answered, want 0 (shed)", n)
	}
	if got := srv.Stats.Outcome(nettportal.OutcomeShed); got != 2 {
		t.Fatalf("shed = %d, want 2", got)
	}
	if d := time.Duration(maxDelay.Load()); d < 100*time.Millisecond {
		t.Errorf("largest queue delay seen by OnDequeue %v, want above the budget", d)
	}
	if got := countRows(t, db); got != 1 {
		t.Errorf("%d rows after shedding, want 1 (the shed ones are not written)", got)
	}
	// The retransmissions find an empty queue and are answered. One at a
	// time, as two routers' would come: sent together, the second would
	// wait for the first's commit and could be shed in turn on a slow
	// machine.
	for i, req := range late {
		c.send(req)
		if n := c.answers([][]byte{req}, 5*time.Second); n != 1 {
			t.Errorf("retransmission %d not answered", i)
		}
	}
	if got := countRows(t, db); got != 3 {
		t.Errorf("%d rows, want 3", got)
	}
}

// flakyStore fails its first calls the way an unreachable database does.
type flakyStore struct {
	db       *store.DB
	failures atomic.Int32
}

func (f *flakyStore) ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return f.db.ApplyAccounting(ctx, batch)
}

func TestRecoversWhenTheDatabaseReturns(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	flaky := &flakyStore{db: db}
	flaky.failures.Store(4)
	srv := startServer(t, db, func(s *radius.Server) { s.Store = flaky })
	c := newClient(t, srv)
	req := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(req)
	c.mustBeAnswered(req, "no answer after the database came back")
	if srv.Stats.CommitErrors.Load() != 4 || countRows(t, db) != 1 {
		t.Errorf("commit errors %d rows %d", srv.Stats.CommitErrors.Load(), countRows(t, db))
	}
}

func TestGivesUpAfterCommitTimeoutThenAcceptsRetransmission(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	flaky := &flakyStore{db: db}
	flaky.failures.Store(1000)
	srv := startServer(t, db, func(s *radius.Server) { s.Store = flaky; s.CommitTimeout = 300 * time.Millisecond })
	c := newClient(t, srv)
	req := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(req)
	if n := c.answers([][]byte{req}, time.Second); n != 0 {
		t.Fatal("answered although nothing was committed")
	}
	if srv.Stats.Outcome(nettportal.OutcomeGivenUp) != 1 {
		t.Fatalf("given up %d", srv.Stats.Outcome(nettportal.OutcomeGivenUp))
	}
	flaky.failures.Store(0)
	// The router retransmits until answered: on a loaded machine a
	// recovered commit can still overrun the 300ms CommitTimeout once.
	for try := 1; ; try++ {
		c.send(req)
		if c.answers([][]byte{req}, 2*time.Second) == 1 {
			break
		}
		if try == 4 {
			t.Fatal("the retransmissions after recovery were not answered")
		}
	}
}

func TestBadPacketsAreCountedAndDropped(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	srv := startServer(t, db, nil)
	c := newClient(t, srv)
	wrong := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, "not-the-secret")
	c.send(wrong)
	c.send([]byte{4, 1, 0})               // shorter than a header
	c.send([]byte{4, 1, 0, 200, 1, 2, 3}) // length beyond the datagram
	noSession := request(t, "", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(noSession)
	if n := c.answers([][]byte{wrong, noSession}, 500*time.Millisecond); n != 0 {
		t.Fatal("a bad packet was answered")
	}
	if srv.Stats.Outcome(nettportal.OutcomeBadAuthenticator) != 1 || srv.Stats.Outcome(nettportal.OutcomeMalformed) != 3 {
		t.Errorf("bad authenticator %d malformed %d", srv.Stats.Outcome(nettportal.OutcomeBadAuthenticator), srv.Stats.Outcome(nettportal.OutcomeMalformed))
	}
	if countRows(t, db) != 0 {
		t.Error("a bad packet was written")
	}
	// From an address that is not a router.
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 99)}, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(request(t, "81000002", rfc2866.AcctStatusType_Value_Start, secret))
	srv.outcomes.await(t, nettportal.OutcomeUnknownRouter, 1)
	if n := srv.Stats.Outcome(nettportal.OutcomeUnknownRouter); n != 1 {
		t.Errorf("unknown router counted %d times, want 1", n)
	}
}

func TestShutdownAnswersWhatIsQueued(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	srv := startServer(t, db, func(s *radius.Server) { s.Readers = 1 }) // for the barrier
	c := newClient(t, srv)
	unlock := lockAccounting(t, db)
	reqs := starts(t, c, "810000", 20)
	c.barrier(srv) // all 20 are queued or in a worker's blocked commit
	shutCtx := &doneWatch{Context: context.Background(), asked: make(chan struct{})}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(shutCtx) }()
	// Shutdown looks at its context once reading has stopped and the
	// queue is closed: from then on only the workers answer.
	select {
	case <-shutCtx.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown never stopped reading")
	}
	unlock()
	if n := c.answers(reqs, 5*time.Second); n != 20 {
		t.Errorf("%d of 20 queued packets answered during shutdown", n)
	}
	if err := <-shut; err != nil {
		t.Error(err)
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM radacct").Scan(&n); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	if n != 20 {
		t.Errorf("%d rows", n)
	}
}

// doneWatch is a context that tells when its Done is first asked for.
type doneWatch struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (d *doneWatch) Done() <-chan struct{} {
	d.once.Do(func() { close(d.asked) })
	return d.Context.Done()
}

func TestDatabaseOutageIsSpooledAndAnswered(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	sp, err := spool.Open(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	down := &flakyStore{db: db}
	down.failures.Store(1 << 30)
	// The probe is due by the server's clock, which the test moves on
	// instead of sleeping through the interval.
	var ahead atomic.Int64
	srv := startServer(t, db, func(s *radius.Server) {
		s.Store = down
		s.Spool = sp
		// Long enough that the recovery's probe commit is not cut off on
		// a loaded machine (it once was at 300ms, and was spooled).
		s.SpoolAfter = 2 * time.Second
		s.ProbeInterval = time.Minute
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})
	c := newClient(t, srv)
	reqs := starts(t, c, "810000", 10)
	if n := c.answers(reqs, 5*time.Second); n != 10 {
		t.Fatalf("%d of 10 answered during the outage", n)
	}
	if srv.Stats.Spooled.Load() != 10 || sp.Depth() != 10 || countRows(t, db) != 0 {
		t.Fatalf("spooled %d, depth %d, rows %d", srv.Stats.Spooled.Load(), sp.Depth(), countRows(t, db))
	}
	// Known down: later packets go straight to the spool, not after
	// SpoolAfter of retries each: at most one attempt (a due probe), where
	// retrying for SpoolAfter takes many.
	more := request(t, "82000001", rfc2866.AcctStatusType_Value_Start, secret)
	errorsBefore := srv.Stats.CommitErrors.Load()
	c.send(more)
	if n := c.answers([][]byte{more}, 5*time.Second); n != 1 || srv.Stats.CommitErrors.Load()-errorsBefore > 1 {
		t.Fatalf("during a known outage: %d answers after %d commit attempts (want 1 answer, at most one probe)",
			n, srv.Stats.CommitErrors.Load()-errorsBefore)
	}
	// Back: a probe finds the database and batches go to it again.
	down.failures.Store(0)
	back := request(t, "83000001", rfc2866.AcctStatusType_Value_Start, secret)
	ahead.Add(int64(time.Minute)) // the probe interval has passed
	c.send(back)
	if n := c.answers([][]byte{back}, 5*time.Second); n != 1 || countRows(t, db) != 1 {
		t.Fatalf("after recovery: %d answers, %d rows (want the new packet committed straight away)", n, countRows(t, db))
	}
	// The database is back: replay.
	if n, err := sp.Replay(context.Background(), db, 0); err != nil || n != 11 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	if countRows(t, db) != 12 {
		t.Fatalf("%d rows after replay", countRows(t, db))
	}
}

func TestFloodFromOneRouterDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	secondRouter(t, db)
	srv := startServer(t, db, func(s *radius.Server) {
		s.QueueSize = 100
		s.PerRouterQueue = 20
		s.Workers = 1
		s.MaxBatch = 1
		s.Readers = 1 // for the barrier
	})
	flooder := newClient(t, srv)
	quietClient := secondRouterClient(t, srv)
	unlock := lockAccounting(t, db)
	flood := sendRequests(t, flooder, rfc2866.AcctStatusType_Value_InterimUpdate, "8%07d", 200)
	calm := sendRequests(t, quietClient, rfc2866.AcctStatusType_Value_InterimUpdate, "9%07d", 5)
	flooder.barrier(srv) // sent after the quiet router's: all 205 handled
	if depth := srv.QueueDepth(); depth > 100 {
		t.Fatalf("queue depth %d beyond its bound", depth)
	}
	unlock()
	if n := quietClient.answers(calm, 5*time.Second); n != 5 {
		t.Errorf("the quiet router got %d of 5 answers during another router's flood", n)
	}
	answered := flooder.answers(flood, 5*time.Second)
	if over := srv.Stats.Outcome(nettportal.OutcomeOverQuota); over < 150 || answered > 50 {
		t.Errorf("flooder: %d over quota, %d answered; its share is 20 queued", over, answered)
	}
}

// A router's backlog waits behind its own packets, not in front of
// another router's: the batch after the one in flight takes the quiet
// router's packets, however many the busy one has queued (a reconnect
// storm on one router must not make every other router's accounting
// wait for it, nor shed it: under MaxQueueDelay the packets that wait are
// the busy router's).
func TestQuietRouterIsNotQueuedBehindAnotherRoutersBacklog(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	secondRouter(t, db)
	var mu sync.Mutex
	var batches [][]string // the session ids of each committed batch, in commit order
	srv := startServer(t, db, func(s *radius.Server) {
		s.QueueSize = 400
		s.PerRouterQueue = 300
		s.Workers = 1
		s.MaxBatch = 10
		s.BatchCommitTime = -1
		s.Readers = 1 // for the barrier
		s.OnCommit = func(batch []nettportal.AccountingRecord) {
			var sids []string
			for _, r := range batch {
				sids = append(sids, r.SessionID)
			}
			mu.Lock()
			batches = append(batches, sids)
			mu.Unlock()
		}
	})
	busy := newClient(t, srv)
	quiet := secondRouterClient(t, srv)
	unlock := lockAccounting(t, db)
	backlog := sendRequests(t, busy, rfc2866.AcctStatusType_Value_InterimUpdate, "8%07d", 200)
	calm := sendRequests(t, quiet, rfc2866.AcctStatusType_Value_InterimUpdate, "9%07d", 5)
	busy.barrier(srv) // sent after the quiet router's: all 205 queued
	unlock()
	if n := quiet.answers(calm, 10*time.Second); n != 5 {
		t.Fatalf("the quiet router got %d of 5 answers", n)
	}
	if n := busy.answers(backlog, 10*time.Second); n != 200 {
		t.Fatalf("the busy router got %d of 200 answers: its backlog is within its share and must all be answered", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first batch was taken, and held by the lock, before the quiet
	// router's packets came; the next one must hold them.
	quietFound := 0
	for i, sids := range batches {
		for _, sid := range sids {
			if sid[0] != '9' {
				continue
			}
			quietFound++
			if i > 1 {
				t.Fatalf("the quiet router's %s was committed in batch %d of %d, behind the busy router's backlog", sid, i+1, len(batches))
			}
		}
	}
	if quietFound != 5 || len(batches) < 20 {
		t.Fatalf("%d of the quiet router's 5 records in %d batches: want all 5, in the 20 or more batches of 10 that 205 records take", quietFound, len(batches))
	}
}

// A server on the dual-stack wildcard ([::], as the default ":1813" is)
// hears IPv4 routers and answers them from the same socket, through the
// batched reads and writes.
func TestDualStackSocketAnswersIPv4Routers(t *testing.T) {
	t.Parallel()
	probe, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Skip("no IPv6 on this machine:", err)
	}
	probe.Close()
	db := storetest.MustOpenDB(t)
	srv := startServer(t, db, func(s *radius.Server) { s.Addr = "[::]:0" })
	port := srv.LocalAddr().(*net.UDPAddr).Port
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn}
	req := request(t, "81000001", rfc2866.AcctStatusType_Value_Start, secret)
	c.send(req)
	c.mustBeAnswered(req, "no answer to an IPv4 router on a dual-stack socket")
	mustCountRows(t, db, 1, "answered but not in radacct")
}

// Many requests at once from many sockets, more than one system call
// reads or writes: every one is answered, to its own socket.
func TestBurstFromManySocketsIsAnsweredToEach(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	srv := startServer(t, db, nil)
	const socks, each = 20, 25 // 500 requests, several read and write batches
	clients := make([]*client, socks)
	reqs := make([][][]byte, socks)
	for i := range clients {
		clients[i] = newClient(t, srv)
		for j := 0; j < each; j++ {
			reqs[i] = append(reqs[i], request(t, fmt.Sprintf("%08x", 0x81000000+i*each+j), rfc2866.AcctStatusType_Value_Start, secret))
		}
	}
	for i, c := range clients {
		for _, r := range reqs[i] {
			c.send(r)
		}
	}
	for i, c := range clients {
		if n := c.answers(reqs[i], 10*time.Second); n != each {
			t.Fatalf("socket %d: %d of %d answered", i, n, each)
		}
	}
	if n := countRows(t, db); n != socks*each {
		t.Fatalf("%d rows, want %d", n, socks*each)
	}
}

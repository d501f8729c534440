package radius_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/store"
	"github.com/nettportal/nettportal/store/storetest"
)

// retransmit is req as a router sends it again after delay seconds: the
// same Identifier and attributes, a larger Acct-Delay-Time, so a new
// Request Authenticator (RouterOS and the simulator do this).
func retransmit(t *testing.T, req []byte, delay uint32) []byte {
	t.Helper()
	p, err := rad.Parse(req, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := rfc2866.AcctDelayTime_Set(p, rfc2866.AcctDelayTime(delay)); err != nil {
		t.Fatal(err)
	}
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// waitFor waits until cond, a state of the server's workers, holds: it
// checks cond again each time ts counts an outcome, 10s at most. Every
// state these tests wait for this way is reached just before an outcome
// is counted: a packet shed as a worker takes it or as it expires in the
// retry queue is counted OutcomeShed once ShedFresh or RetryExpired is,
// and a commit's OnCommit runs before its answers are counted. (A batch
// given up is counted without OnOutcome: cond is checked once more at the
// deadline.) What the reader does is settled by a barrier instead.
func waitFor(t *testing.T, ts *testServer, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		// Taken before cond is checked: a change cond misses closes it.
		changed := ts.outcomes.changes()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			if !cond() {
				t.Fatalf("timed out waiting for %s", what)
			}
			return
		}
	}
}

// settled sends a barrier (the rig's server has one reader), so every
// datagram sent before it has been queued or dropped, and checks that
// state holds then: the read path's effects are known at once, no wait.
func (r *overloadRig) settled(what string, state func() bool) {
	r.t.Helper()
	r.c.barrier(r.srv)
	if !state() {
		r.t.Fatalf("once the reader had handled every packet sent: not %s", what)
	}
}

// shed waits until n more packets than before have been shed (by a
// worker, or expired from the retry queue).
func (r *overloadRig) shed(before, n int) {
	r.t.Helper()
	r.srv.outcomes.await(r.t, nettportal.OutcomeShed, before+n)
}

// overloadRig is a server with one worker taking one packet a batch, a
// clock the test moves on, and hooks that tell what the worker took and
// committed, so a test builds a queue behind a held commit and ages it.
type overloadRig struct {
	t        *testing.T
	db       *store.DB
	srv      *testServer
	c        *client
	ahead    atomic.Int64
	dequeued chan struct{}
	mu       sync.Mutex
	commits  []string // Acct-Session-Ids in commit order
}

func newOverloadRig(t *testing.T, configure func(*radius.Server)) *overloadRig {
	r := &overloadRig{t: t, db: storetest.MustOpenDB(t), dequeued: make(chan struct{}, 64)}
	r.srv = startServer(t, r.db, func(s *radius.Server) {
		s.Workers = 1
		s.MaxBatch = 1
		// One reader: a barrier tells when the packets sent before it
		// have been queued, put in the retry queue or refused.
		s.Readers = 1
		// Budgets far above any scheduling stall: the test ages packets
		// by moving the clock, not by waiting.
		s.MaxQueueDelay = 2 * time.Second
		s.OverloadQueueDelay = time.Second
		s.Now = func() time.Time { return time.Now().Add(time.Duration(r.ahead.Load())) }
		s.OnDequeue = func(time.Duration) { r.dequeued <- struct{}{} }
		s.OnCommit = func(batch []nettportal.AccountingRecord) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, rec := range batch {
				r.commits = append(r.commits, rec.SessionID)
			}
		}
		if configure != nil {
			configure(s)
		}
	})
	r.c = newClient(t, r.srv)
	return r
}

func (r *overloadRig) advance(d time.Duration) { r.ahead.Add(int64(d)) }

// took waits until the worker has taken n more fresh packets.
func (r *overloadRig) took(n int) {
	r.t.Helper()
	for range n {
		select {
		case <-r.dequeued:
		case <-time.After(5 * time.Second):
			r.t.Fatal("the worker took no packet")
		}
	}
}

func (r *overloadRig) committed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.commits...)
}

// hold sends req and waits until the worker holds it in a commit that
// waits for the lock (lockAccounting before).
func (r *overloadRig) hold(req []byte) {
	r.c.send(req)
	r.took(1)
}

// retryBehindHeld holds a commit of a fresh Start (session 5) and sends
// the first retransmissions of b and c, which wait in the retry queue; it
// returns the lock's release, the held Start and the copies sent.
func (r *overloadRig) retryBehindHeld(b, c []byte) (unlock func(), e, b1, c1 []byte) {
	r.t.Helper()
	unlock = lockAccounting(r.t, r.db)
	e = request(r.t, sid(5), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(e)
	b1, c1 = retransmit(r.t, b, 1), retransmit(r.t, c, 1)
	r.c.send(b1)
	r.c.send(c1)
	r.settled("the retransmissions in the retry queue", func() bool { return r.srv.RetryDepth() == 2 })
	return unlock, e, b1, c1
}

// startShedTwo sends the Starts of sessions 1, 2 and 3 (a, b, c) and has
// the worker commit a and shed b and c (shedTwo).
func (r *overloadRig) startShedTwo() (a, b, c []byte) {
	r.t.Helper()
	a = request(r.t, sid(1), rfc2866.AcctStatusType_Value_Start, secret)
	b = request(r.t, sid(2), rfc2866.AcctStatusType_Value_Start, secret)
	c = request(r.t, sid(3), rfc2866.AcctStatusType_Value_Start, secret)
	r.shedTwo(a, b, c)
	return a, b, c
}

// shedTwo has the worker shed two fresh packets, b and c: they wait behind
// a held commit of a until the clock is past their budget.
func (r *overloadRig) shedTwo(a, b, c []byte) {
	r.t.Helper()
	unlock := lockAccounting(r.t, r.db)
	r.hold(a)
	r.c.send(b)
	r.c.send(c)
	r.settled("two packets queued", func() bool { return r.srv.QueueDepth() == 2 })
	r.advance(3 * time.Second) // past the 2s budget
	shed := r.srv.outcomes.count(nettportal.OutcomeShed)
	unlock()
	if n := r.c.answers([][]byte{a}, 5*time.Second); n != 1 {
		r.t.Fatal("the packet committed first was not answered")
	}
	r.took(2)
	r.shed(shed, 2)
	if n := r.srv.Stats.ShedFresh.Load(); n != 2 {
		r.t.Fatalf("%d fresh packets shed, want 2", n)
	}
}

// answeredOf reads n answers and says which of reqs each one is for.
func (c *client) answeredOf(reqs [][]byte, n int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	var got []int
	buf := make([]byte, 4096)
	for len(got) < n {
		c.conn.SetReadDeadline(deadline)
		m, err := c.conn.Read(buf)
		if err != nil {
			break
		}
		for i, req := range reqs {
			if rad.IsAuthenticResponse(buf[:m], req, []byte(secret)) {
				got = append(got, i)
			}
		}
	}
	return got
}

func sid(n int) string { return strconv.Itoa(82000000 + n) }

// Under load the fresh packets are served before the retransmissions of
// shed ones, which are answered once no fresh packet waits; the answer is
// for the copy the router sent last.
func TestFreshPacketsGoBeforeRetransmissionsOfShed(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, nil)
	_, b, c := r.startShedTwo()
	if got := countRows(t, r.db); got != 1 {
		t.Fatalf("%d rows after shedding, want 1", got)
	}

	unlock, e, b1, c1 := r.retryBehindHeld(b, c)
	// b's next copy joins the waiting one: the answer must be for it.
	b2 := retransmit(t, b, 2)
	r.c.send(b2)
	r.settled("the later copy folded", func() bool { return r.srv.Stats.RetryFolded.Load() == 1 })
	d := request(t, sid(4), rfc2866.AcctStatusType_Value_Start, secret)
	r.c.send(d)
	r.settled("the fresh packet queued", func() bool { return r.srv.QueueDepth() == 3 })
	unlock()

	reqs := [][]byte{e, d, b2, c1, b1}
	got := r.c.answeredOf(reqs, 4, 5*time.Second)
	if len(got) != 4 {
		t.Fatalf("answers for %v, want e, d, b's last copy and c's", got)
	}
	for _, i := range got {
		if i == 4 {
			t.Errorf("answered b's superseded copy")
		}
	}
	want := []string{sid(1), sid(5), sid(4), sid(2), sid(3)}
	if got := r.committed(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[4] != want[4] {
		t.Errorf("commit order %v, want %v (fresh d before the retransmissions)", got, want)
	}
	// The answers are counted once sent: the router may read one first.
	r.srv.outcomes.await(t, nettportal.OutcomeOK, 5)
	st := &r.srv.Stats
	if st.Retried.Load() != 2 || st.RetryAnswered.Load() != 2 || st.Outcome(nettportal.OutcomeShed) != 2 {
		t.Errorf("retried %d, retry answered %d, shed %d; want 2, 2, 2", st.Retried.Load(), st.RetryAnswered.Load(), st.Outcome(nettportal.OutcomeShed))
	}
	if got := countRows(t, r.db); got != 5 {
		t.Errorf("%d rows, want 5", got)
	}
}

// While overloaded, a worker left idle does not take the retry queue while
// another worker's commit is in flight: the database is busy with it, and
// a fresh packet arriving meanwhile goes first. The retransmissions are
// taken once no commit is in flight.
func TestOverloadedRetriesWaitForNoCommitInFlight(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, func(s *radius.Server) { s.Workers = 2 })
	a := request(t, sid(1), rfc2866.AcctStatusType_Value_Start, secret)
	b := request(t, sid(2), rfc2866.AcctStatusType_Value_Start, secret)
	c := request(t, sid(3), rfc2866.AcctStatusType_Value_Start, secret)
	e := request(t, sid(5), rfc2866.AcctStatusType_Value_Start, secret)
	// Each worker holds a commit; b and c age past the 2s budget behind
	// them and are shed, which starts the overload.
	unlock := lockAccounting(t, r.db)
	r.hold(a)
	r.hold(e)
	r.c.send(b)
	r.c.send(c)
	r.settled("two packets queued", func() bool { return r.srv.QueueDepth() == 2 })
	r.advance(3 * time.Second)
	shed := r.srv.outcomes.count(nettportal.OutcomeShed)
	unlock()
	if n := r.c.answers([][]byte{a, e}, 5*time.Second); n != 2 {
		t.Fatal("the held packets were not answered")
	}
	r.took(2)
	r.shed(shed, 2)

	unlock = lockAccounting(t, r.db)
	f := request(t, sid(6), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(f)
	b1, c1 := retransmit(t, b, 1), retransmit(t, c, 1)
	r.c.send(b1)
	r.c.send(c1)
	r.settled("the retransmissions in the retry queue", func() bool { return r.srv.RetryDepth() == 2 })
	// The idle worker takes a fresh packet: had it taken a retransmission
	// it would be waiting for the lock with it, and g would stay queued.
	g := request(t, sid(7), rfc2866.AcctStatusType_Value_Start, secret)
	r.c.send(g)
	r.took(1)
	if n := r.srv.RetryDepth(); n != 2 {
		t.Fatalf("retry queue holds %d while a commit was in flight, want 2", n)
	}
	unlock()

	if n := r.c.answers([][]byte{f, g, b1, c1}, 5*time.Second); n != 4 {
		t.Fatalf("%d of the two fresh packets and two retransmissions answered, want 4", n)
	}
	got := r.committed()
	if len(got) != 6 {
		t.Fatalf("commit order %v, want 6 records", got)
	}
	fresh := map[string]bool{got[2]: true, got[3]: true}
	if !fresh[sid(6)] || !fresh[sid(7)] || got[4] != sid(2) || got[5] != sid(3) {
		t.Errorf("commit order %v, want f and g (%s, %s) before b and c (%s, %s)", got, sid(6), sid(7), sid(2), sid(3))
	}
	r.srv.outcomes.await(t, nettportal.OutcomeOK, len(got)) // counted once sent
	if st := &r.srv.Stats; st.Retried.Load() != 2 || st.RetryAnswered.Load() != 2 {
		t.Errorf("retried %d, retry answered %d; want 2, 2", st.Retried.Load(), st.RetryAnswered.Load())
	}
}

// The retry queue is bounded by length and by delay: a retransmission
// that finds it full, or waits in it past RetryQueueDelay, is dropped
// (shed); the router's next copy is taken again.
func TestRetryQueueIsBounded(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, func(s *radius.Server) {
		s.RetryQueueSize = 1
		s.RetryQueueDelay = time.Second
	})
	_, b, c := r.startShedTwo()

	unlock := lockAccounting(t, r.db)
	e := request(t, sid(5), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(e)
	b1, c1 := retransmit(t, b, 1), retransmit(t, c, 1)
	r.c.send(b1)
	r.settled("b in the retry queue", func() bool { return r.srv.RetryDepth() == 1 })
	r.c.send(c1)
	r.settled("c refused by the full retry queue", func() bool { return r.srv.Stats.RetryFull.Load() == 1 })
	r.advance(2 * time.Second) // b waited past RetryQueueDelay
	shed := r.srv.outcomes.count(nettportal.OutcomeShed)
	unlock()
	if n := r.c.answers([][]byte{e}, 5*time.Second); n != 1 {
		t.Fatal("the held packet was not answered")
	}
	// The worker, with no fresh packet left, expires b.
	r.shed(shed, 1)
	if n := r.srv.Stats.RetryExpired.Load(); n != 1 {
		t.Fatalf("%d retransmissions expired, want 1 (b)", n)
	}
	if n := r.srv.RetryDepth(); n != 0 {
		t.Errorf("retry queue holds %d after the expiry, want 0", n)
	}
	if got := r.srv.Stats.Outcome(nettportal.OutcomeShed); got != 4 {
		t.Errorf("shed = %d, want 4 (2 fresh, 1 full, 1 expired)", got)
	}

	// Load is over: the routers' next copies are answered (one at a
	// time: the retry queue holds one).
	for _, req := range [][]byte{retransmit(t, b, 2), retransmit(t, c, 2)} {
		r.c.send(req)
		if n := r.c.answers([][]byte{req}, 5*time.Second); n != 1 {
			t.Fatal("a last copy was not answered")
		}
	}
	if got := r.srv.Stats.Retried.Load(); got != 3 {
		t.Errorf("retried = %d, want 3 (b, then b and c again)", got)
	}
	if got := countRows(t, r.db); got != 4 {
		t.Errorf("%d rows, want 4", got)
	}
}

// Once a packet waited past MaxQueueDelay, the budget tightens to
// OverloadQueueDelay for 5 x MaxQueueDelay; then it is MaxQueueDelay
// again. Packets shed under the tighter budget do not prolong it (else a
// slow server that keeps up would shed under it for ever).
func TestOverloadTightensTheBudgetForAWhile(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, nil)
	r.startShedTwo() // waited 3s: over MaxQueueDelay (2s), the tighter budget holds for 10s

	// waitBehind queues req behind a held commit, ages it by d and says
	// whether it was answered (or shed).
	waitBehind := func(n int, d time.Duration) bool {
		unlock := lockAccounting(t, r.db)
		held := request(t, sid(n), rfc2866.AcctStatusType_Value_Start, secret)
		r.hold(held)
		req := request(t, sid(n+1), rfc2866.AcctStatusType_Value_Start, secret)
		r.c.send(req)
		r.settled("one packet queued", func() bool { return r.srv.QueueDepth() == 1 })
		r.advance(d)
		shedBefore := r.srv.Stats.ShedFresh.Load()
		unlock()
		r.took(1)
		if n := r.c.answers([][]byte{held}, 5*time.Second); n != 1 {
			t.Fatal("the held packet was not answered")
		}
		waitFor(t, r.srv, "the queued packet's fate", func() bool {
			return r.srv.Stats.ShedFresh.Load() > shedBefore || r.hasCommitted(sid(n+1))
		})
		return r.srv.Stats.ShedFresh.Load() == shedBefore
	}
	// 1.5s: under MaxQueueDelay (2s), over OverloadQueueDelay (1s); taken
	// 1.5s after the overload began.
	if waitBehind(10, 1500*time.Millisecond) {
		t.Error("right after the overload, a packet that waited 1.5s was answered; want shed (budget 1s)")
	}
	// Taken 10.5s after the overload began, 9s after the shed just above.
	r.advance(7500 * time.Millisecond)
	if !waitBehind(20, 1500*time.Millisecond) {
		t.Error("10.5s after the overload, a packet that waited 1.5s was shed; want answered (budget 2s)")
	}
}

// hasCommitted says whether a record of session id was committed.
func (r *overloadRig) hasCommitted(id string) bool {
	for _, s := range r.committed() {
		if s == id {
			return true
		}
	}
	return false
}

// A client that retransmits what is not answered, as a router does,
// against a server shedding in rounds: every packet gets one outcome,
// everything answered is in radacct, and once the load stops every
// request is answered.
func TestOverloadLosesNoAcknowledgedRecord(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	var ahead atomic.Int64
	var committedMu sync.Mutex
	committed := map[string]bool{}
	srv := startServer(t, db, func(s *radius.Server) {
		s.Workers = 2
		s.MaxBatch = 8
		s.Readers = 1 // for the barrier
		s.MaxQueueDelay = 2 * time.Second
		s.OverloadQueueDelay = time.Second
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		s.OnCommit = func(batch []nettportal.AccountingRecord) {
			committedMu.Lock()
			defer committedMu.Unlock()
			for _, rec := range batch {
				committed[rec.SessionID] = true
			}
		}
	})
	conn, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}

	type pending struct {
		sid  string
		orig []byte
		last []byte
		sent int
	}
	var reqs []*pending
	answered := map[string]bool{}
	var sentTotal uint64
	var barriers uint64 // the barriers' datagrams, read and counted malformed too
	settled := func() bool {
		var n uint64
		for _, o := range nettportal.Outcomes() {
			n += srv.Stats.Outcome(o)
		}
		read := sentTotal + barriers
		return srv.Stats.Received.Load() == read && n == read && srv.QueueDepth() == 0
	}
	// collect reads the answers of a settled round (all are sent by then).
	collect := func() {
		var last [][]byte
		var open []*pending
		for _, p := range reqs {
			if !answered[p.sid] {
				last, open = append(last, p.last), append(open, p)
			}
		}
		for _, i := range c.answeredOf(last, len(last), 300*time.Millisecond) {
			answered[open[i].sid] = true
		}
	}
	round := func(fresh int, overloaded bool) {
		var unlock func()
		if overloaded {
			unlock = lockAccounting(t, db)
		}
		for _, p := range reqs {
			if !answered[p.sid] {
				p.last = retransmit(t, p.orig, uint32(p.sent))
				p.sent++
				c.send(p.last)
				sentTotal++
			}
		}
		for range fresh {
			p := &pending{sid: sid(len(reqs))}
			p.orig = request(t, p.sid, rfc2866.AcctStatusType_Value_Start, secret)
			p.last, p.sent = p.orig, 1
			reqs = append(reqs, p)
			c.send(p.orig)
			sentTotal++
		}
		if overloaded {
			c.barrier(srv)
			barriers++
			if got, want := srv.Stats.Received.Load(), sentTotal+barriers; got != want {
				t.Fatalf("%d datagrams read once the barrier was, want %d", got, want)
			}
			ahead.Add(int64(3 * time.Second)) // what waits is past its budget
			unlock()
		}
		waitFor(t, srv, "the round settled", settled)
		collect()
	}
	for range 4 {
		round(40, true)
	}
	for range 3 { // the load has stopped: the routers' retries get through
		round(0, false)
	}
	for _, p := range reqs {
		if !answered[p.sid] {
			t.Errorf("%s never answered after the load stopped", p.sid)
		}
	}
	var rows int
	for sid := range answered {
		committedMu.Lock()
		ok := committed[sid]
		committedMu.Unlock()
		if !ok {
			t.Errorf("%s answered but never committed", sid)
		}
		if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM radacct WHERE acctsessionid = $1", sid).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Errorf("%s answered, %d rows in radacct", sid, rows)
		}
	}
	st := &srv.Stats
	shed := st.Outcome(nettportal.OutcomeShed)
	if shed == 0 || st.Retried.Load() == 0 || st.RetryAnswered.Load() == 0 {
		t.Errorf("shed %d, retried %d, retry answered %d: the rounds did not overload the server", shed, st.Retried.Load(), st.RetryAnswered.Load())
	}
	if sum := st.ShedFresh.Load() + st.RetryExpired.Load() + st.RetryFull.Load() + st.RetryOverQuota.Load(); sum != shed {
		t.Errorf("shed by reason adds to %d, shed outcome %d", sum, shed)
	}
	t.Logf("sent %d for %d requests; shed %d (fresh %d), retried %d, answered from the retry queue %d",
		sentTotal, len(reqs), shed, st.ShedFresh.Load(), st.Retried.Load(), st.RetryAnswered.Load())
}

// A batch fills with packets that can still be answered: the overdue ones
// at the head of the queue are shed as they are taken, not after the
// batch is full, so they do not leave the commit short.
func TestShedPacketsDoNotShortenTheBatch(t *testing.T) {
	t.Parallel()
	var sizesMu sync.Mutex
	var sizes []int
	r := newOverloadRig(t, func(s *radius.Server) {
		s.MaxBatch = 4
		s.OnBatch = func(size int, _ time.Duration, err error) {
			if err == nil {
				sizesMu.Lock()
				sizes = append(sizes, size)
				sizesMu.Unlock()
			}
		}
	})
	unlock := lockAccounting(t, r.db)
	a := request(t, sid(1), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(a)
	for i := 2; i <= 4; i++ {
		r.c.send(request(t, sid(i), rfc2866.AcctStatusType_Value_Start, secret))
	}
	r.settled("three packets queued", func() bool { return r.srv.QueueDepth() == 3 })
	r.advance(3 * time.Second) // those three are overdue
	young := [][]byte{
		request(t, sid(5), rfc2866.AcctStatusType_Value_Start, secret),
		request(t, sid(6), rfc2866.AcctStatusType_Value_Start, secret),
	}
	for _, req := range young {
		r.c.send(req)
	}
	r.settled("five packets queued", func() bool { return r.srv.QueueDepth() == 5 })
	unlock()
	if n := r.c.answers(append([][]byte{a}, young...), 5*time.Second); n != 3 {
		t.Fatalf("%d of the held and the young packets answered, want 3", n)
	}
	sizesMu.Lock()
	defer sizesMu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 2 {
		t.Errorf("committed batches of %v, want [1 2] (the young two together)", sizes)
	}
	if got := r.srv.Stats.ShedFresh.Load(); got != 3 {
		t.Errorf("shed %d, want 3", got)
	}
}

// Shutdown answers the retry queue too, as it answers what is queued,
// however long it waited.
func TestShutdownAnswersTheRetryQueue(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, nil)
	_, b, c := r.startShedTwo()
	unlock, e, b1, c1 := r.retryBehindHeld(b, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shutdown looks at its context once it is closing, reading has
	// stopped and the queue is closed: from then on nothing is shed.
	shutCtx := &doneWatch{Context: ctx, asked: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- r.srv.Shutdown(shutCtx) }()
	select {
	case <-shutCtx.asked:
	case err := <-done:
		t.Fatalf("Shutdown returned before it waited for the workers: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown never stopped reading")
	}
	if !radius.Closing(r.srv.Server) {
		t.Fatal("Shutdown waits for the workers but has not begun closing")
	}
	// Past RetryQueueDelay: still answered, Shutdown drops nothing queued.
	r.advance(10 * time.Second)
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := r.c.answers([][]byte{e, b1, c1}, 5*time.Second); n != 3 {
		t.Errorf("%d of the held packet and the two retransmissions answered by Shutdown, want 3", n)
	}
	if got := countRows(t, r.db); got != 4 {
		t.Errorf("%d rows, want 4", got)
	}
}

// One router's shed backlog cannot take the whole retry queue: each router
// has a share of it, in the proportion PerRouterQueue is of QueueSize.
func TestRetryQueueIsSharedByRouters(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, func(s *radius.Server) {
		other := nettportal.Router{Name: "core-2", IP: netip.MustParseAddr("127.0.0.2"), Secret: secret}
		if err := s.Routers.(*store.DB).CreateRouter(context.Background(), &other); err != nil {
			t.Fatal(err)
		}
		s.QueueSize = 8
		s.PerRouterQueue = 4
		s.RetryQueueSize = 3 // a share of 4*3/8: one each
	})
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, r.srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	quiet := &client{t: t, conn: conn}

	// Shed three of the busy router's packets and one of the quiet one's.
	unlock := lockAccounting(t, r.db)
	r.hold(request(t, sid(1), rfc2866.AcctStatusType_Value_Start, secret))
	var busy [][]byte
	for i := 2; i <= 4; i++ {
		req := request(t, sid(i), rfc2866.AcctStatusType_Value_Start, secret)
		busy = append(busy, req)
		r.c.send(req)
	}
	q := request(t, sid(9), rfc2866.AcctStatusType_Value_Start, secret)
	quiet.send(q)
	r.settled("four packets queued", func() bool { return r.srv.QueueDepth() == 4 })
	r.advance(3 * time.Second)
	shed := r.srv.outcomes.count(nettportal.OutcomeShed)
	unlock()
	r.took(4)
	r.shed(shed, 4)
	if n := r.srv.Stats.ShedFresh.Load(); n != 4 {
		t.Fatalf("%d fresh packets shed, want 4", n)
	}

	unlock = lockAccounting(t, r.db)
	e := request(t, sid(5), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(e)
	var busy1 [][]byte
	for _, req := range busy {
		busy1 = append(busy1, retransmit(t, req, 1))
		r.c.send(busy1[len(busy1)-1])
	}
	r.settled("the busy router over its share", func() bool { return r.srv.Stats.RetryOverQuota.Load() == 2 })
	q1 := retransmit(t, q, 1)
	quiet.send(q1)
	r.settled("both routers in the retry queue", func() bool { return r.srv.RetryDepth() == 2 })
	unlock()
	if n := quiet.answers([][]byte{q1}, 5*time.Second); n != 1 {
		t.Error("the quiet router's retransmission was not answered")
	}
	if n := r.c.answers([][]byte{e, busy1[0]}, 5*time.Second); n != 2 {
		t.Errorf("%d of the busy router's held packet and first retransmission answered, want 2", n)
	}
	if got, want := r.srv.Stats.Outcome(nettportal.OutcomeShed), uint64(4+2); got != want {
		t.Errorf("shed = %d, want %d", got, want)
	}
}

// Behind reports accounting as behind while the last batch answered, in
// the last second, waited past BehindLatency from its oldest packet's
// arrival, or while more than a batch waits in the queue.
func TestBehindFollowsAnswerLatencyAndQueue(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, func(s *radius.Server) { s.BehindLatency = 500 * time.Millisecond })
	if r.srv.Behind() {
		t.Fatal("behind before any packet")
	}
	a := request(t, sid(1), rfc2866.AcctStatusType_Value_Start, secret)
	r.c.send(a)
	if n := r.c.answers([][]byte{a}, 5*time.Second); n != 1 {
		t.Fatal("not answered")
	}
	r.took(1) // a's
	if r.srv.Behind() {
		t.Error("behind after a packet answered at once")
	}

	unlock := lockAccounting(t, r.db)
	b := request(t, sid(2), rfc2866.AcctStatusType_Value_Start, secret)
	r.hold(b)
	c := request(t, sid(3), rfc2866.AcctStatusType_Value_Start, secret)
	d := request(t, sid(4), rfc2866.AcctStatusType_Value_Start, secret)
	r.c.send(c)
	r.c.send(d)
	r.settled("two packets queued behind the held commit", func() bool { return r.srv.QueueDepth() == 2 })
	if !r.srv.Behind() {
		t.Error("not behind with two packets queued (a batch is one)")
	}
	r.advance(time.Second) // b waits a second for its answer
	// The commit holding b is a second old: behind, whatever the queue.
	if !radius.BehindInFlight(r.srv.Server) {
		t.Error("a commit in flight for a second does not count as behind")
	}
	unlock()
	if n := r.c.answers([][]byte{b, c, d}, 5*time.Second); n != 3 {
		t.Fatalf("%d of 3 answered", n)
	}
	if !r.srv.Behind() {
		t.Error("not behind after answers that waited a second")
	}
	r.advance(1500 * time.Millisecond)
	if r.srv.Behind() {
		t.Error("still behind 1.5s after the last slow answer")
	}
}

// Behind counts reads that keep finding the socket's buffer fuller than
// a read takes: packets waiting there are invisible to the queue.
func TestBehindCountsABacklogInTheSocket(t *testing.T) {
	t.Parallel()
	r := newOverloadRig(t, func(s *radius.Server) { s.BehindLatency = 500 * time.Millisecond })
	radius.NoteRead(r.srv.Server, true)
	if r.srv.Behind() {
		t.Error("behind at the first full read")
	}
	r.advance(time.Second)
	radius.NoteRead(r.srv.Server, true)
	if !r.srv.Behind() {
		t.Error("not behind after a second of full reads")
	}
	radius.NoteRead(r.srv.Server, false)
	if r.srv.Behind() {
		t.Error("still behind once a read found the buffer drained")
	}
}

// gatedStore commits a batch only when the test lets it (one token a
// batch) and tells the order of what it committed.
type gatedStore struct {
	db      *store.DB
	gate    chan struct{}
	mu      sync.Mutex
	commits []string
}

func (g *gatedStore) ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := g.db.ApplyAccounting(ctx, batch); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range batch {
		g.commits = append(g.commits, r.SessionID)
	}
	return nil
}

func (g *gatedStore) committed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.commits...)
}

// A quiet router's retransmission of a shed packet is not left behind
// another router's queued packets: the retry queue is taken only when no
// fresh packet waits, which a storm never allows, so the quiet router's
// record would be lost. It goes first; the busy router's own
// retransmissions still wait for spare capacity.
func TestQuietRoutersRetransmissionIsNotLeftBehindAnotherRoutersQueue(t *testing.T) {
	t.Parallel()
	db := storetest.MustOpenDB(t)
	secondRouter(t, db)
	gated := &gatedStore{db: db, gate: make(chan struct{})}
	var ahead atomic.Int64
	dequeued := make(chan struct{}, 64)
	srv := startServer(t, db, func(s *radius.Server) {
		s.Store = gated
		s.Workers = 1
		s.MaxBatch = 1
		s.BatchCommitTime = -1
		s.Readers = 1 // for the barrier
		// The test ages packets by moving the clock.
		s.MaxQueueDelay = 2 * time.Second
		s.OverloadQueueDelay = time.Second
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		s.OnDequeue = func(time.Duration) { dequeued <- struct{}{} }
	})
	took := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-dequeued:
			case <-time.After(5 * time.Second):
				t.Fatal("the worker took no packet")
			}
		}
	}
	busy, quiet := newClient(t, srv), secondRouterClient(t, srv)
	start := func(c *client, n int) []byte {
		req := request(t, sid(n), rfc2866.AcctStatusType_Value_Start, secret)
		c.send(req)
		return req
	}
	a1 := start(busy, 1)
	took(1) // held at the gate
	b := start(quiet, 2)
	busy.barrier(srv)
	ahead.Add(int64(3 * time.Second)) // b is past its budget
	a2, a3 := start(busy, 3), start(busy, 4)
	busy.barrier(srv)
	shed := srv.outcomes.count(nettportal.OutcomeShed)
	gated.gate <- struct{}{} // a1 commits; the worker sheds b and takes a2
	took(2)
	srv.outcomes.await(t, nettportal.OutcomeShed, shed+1)
	b1 := retransmit(t, b, 1)
	quiet.send(b1) // a3 still queued
	busy.barrier(srv)
	if n := srv.RetryDepth(); n != 1 {
		t.Fatalf("retry depth %d, want the quiet router's retransmission", n)
	}
	for range 3 {
		gated.gate <- struct{}{}
	}
	if n := quiet.answers([][]byte{b1}, 5*time.Second); n != 1 {
		t.Fatal("the quiet router's retransmission was not answered")
	}
	if n := busy.answers([][]byte{a1, a2, a3}, 5*time.Second); n != 3 {
		t.Fatalf("%d of the busy router's 3 answered", n)
	}
	want := []string{sid(1), sid(3), sid(2), sid(4)}
	if got := gated.committed(); !slices.Equal(got, want) {
		t.Fatalf("commit order %v, want %v: the quiet router's retransmission before the busy router's queued a3", got, want)
	}
}

package radius

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/ipv4"

	"github.com/nettportal/nettportal"
)

// Server is the accounting listener. Configure it through its fields, then
// call ListenAndServe or Serve; zero values take the documented defaults.
type Server struct {
	// Addr is the UDP address to listen on; zero: ":1813".
	Addr string
	// Routers gives each router's secret by source address. Required.
	Routers nettportal.RouterLister
	// Store makes batches durable. Required.
	Store nettportal.AccountingStore
	// Log receives the server's messages; zero: no logging.
	Log zerolog.Logger

	// QueueSize bounds the records waiting for a batch; when it is full new
	// packets get no answer (the router retransmits). Zero: 65536.
	QueueSize int
	// PerRouterQueue bounds the records one router may have waiting, so a
	// flood from one router cannot crowd out the others: its excess goes
	// unanswered while the rest are served. Each router's records wait in
	// a line of their own, and batches take from the lines in turn, so
	// what waits (and is shed past MaxQueueDelay) under one router's
	// flood is that router's. Zero: a quarter of QueueSize (all of it
	// when only one router is known).
	PerRouterQueue int
	// MaxBatch bounds the records committed in one transaction. Zero: 4096.
	MaxBatch int
	// BatchCommitTime is how long one batch's commit should take: a batch
	// is cut at the records a worker was measured to commit in that time,
	// though never below 512 records (nor above MaxBatch), so that a packet
	// waits for a short commit, not for a MaxBatch one: under overload a
	// packet may wait OverloadQueueDelay in the queue and then its batch's
	// commit, and the sum must stay inside the NAS's timeout. Zero: a
	// quarter of MaxQueueDelay (50ms when that is not bounded); negative:
	// MaxBatch only.
	BatchCommitTime time.Duration
	// Workers is the number of batches committed concurrently. Zero: 3.
	Workers int
	// Readers is the number of goroutines reading the socket. Zero: 2.
	Readers int
	// DedupeWindow is how long an answered request is remembered, so a
	// retransmission gets the same answer without a second write. Zero: 10s.
	DedupeWindow time.Duration
	// CommitTimeout bounds how long a batch is retried while the database
	// fails before its packets are given up (unanswered). Zero: 10s.
	CommitTimeout time.Duration
	// Spool, when set, takes batches the database cannot take: its commits
	// failed for SpoolAfter, or it answers no ping (store.DB's
	// PingAccounting) while a commit hangs past SpoolAfter, or a commit did
	// not end within CommitTimeout. They are acknowledged once durable
	// there, and replayed into the database later. A slow database that
	// answers is waited for. Without a spool such packets go unanswered
	// and routers retransmit (and give up after a few tries).
	Spool Spooler
	// SpoolAfter is how long a failing batch is retried before it goes to
	// the spool. Zero: 2s.
	SpoolAfter time.Duration
	// MaxQueueDelay bounds how long a packet may wait for its batch: one
	// that waited longer when its batch starts is dropped unanswered and
	// counted as shed. Under overload this keeps what is answered inside a
	// NAS's timeout (RouterOS: 300 ms), and the router's retransmission
	// waits for spare capacity (see RetryQueueSize) instead of making the
	// queue older. Zero: 200ms; negative: no bound (and no shedding).
	MaxQueueDelay time.Duration
	// OverloadQueueDelay, when below MaxQueueDelay, is a tighter budget
	// that holds while the listener is overloaded: for 5 x MaxQueueDelay
	// after a packet waited past MaxQueueDelay, or after the workers left
	// fresh packets queued behind every batch for longer than
	// MaxQueueDelay, so a standing queue keeps only what can be answered
	// well inside the NAS's timeout. Packets shed under the tighter budget
	// do not renew it, or a slow server that keeps up would stay in it.
	// It holds for the routers whose packets waited past MaxQueueDelay or
	// stood in the queue, not for the others, whose packets are taken in
	// turn ahead of a busy router's backlog. Zero: half of MaxQueueDelay;
	// negative or above MaxQueueDelay: MaxQueueDelay (no tightening).
	OverloadQueueDelay time.Duration
	// RetryQueueSize bounds the retransmissions of shed packets waiting
	// for spare capacity. A shed packet's fingerprint is remembered, and
	// its router's retransmission waits in this retry queue, which batches
	// take from only when no fresh packet waits: new packets are answered
	// inside the budget, and the shed backlog when capacity is free. A
	// retransmission from a quiet router (little queued, few
	// retransmissions waiting) while other routers have packets queued
	// waits in a second queue of this size instead, which batches take
	// from first: another router's storm would never leave the first
	// queue its turn. Zero: QueueSize/4.
	RetryQueueSize int
	// RetryQueueDelay bounds how long a retransmission waits in the retry
	// queue before it is dropped unanswered (shed): past it, its router
	// has given up (RouterOS: 3 retries 300 ms apart; the benchmark's
	// routers: 1 s apart). Zero: 5s; negative: no bound.
	RetryQueueDelay time.Duration
	// BehindLatency is the answer time past which Behind reports
	// accounting as behind: from the arrival of a batch's oldest packet to
	// its answer. Zero: 50ms.
	BehindLatency time.Duration
	// OnDequeue, when set, learns how long each fresh packet waited in the
	// queue before its batch started (shed ones included; the retry queue
	// is not included). It runs on the batch path, so it must be quick (a
	// histogram).
	OnDequeue func(delay time.Duration)
	// RouterRefresh is how often the router list is reloaded; an unknown
	// source also triggers a reload (at most once a second). Zero: 10s.
	RouterRefresh time.Duration
	// OnCommit, when set, is called after each committed batch, before the
	// answers go out. It must not keep the slice.
	OnCommit func(batch []nettportal.AccountingRecord)
	// OnBatch, when set, learns every commit attempt: the records in the
	// batch, how long ApplyAccounting took, and its error (nil: committed).
	// It runs on the commit path, so it must be quick (metrics).
	OnBatch func(size int, commit time.Duration, err error)
	// OnOutcome, when set, learns each outcome counted in Stats one packet
	// at a time: every drop on the read path, shed packets and answers (a
	// given-up batch is counted at once, without it). Tests wait on it
	// instead of polling the counters; it must be quick.
	OnOutcome func(nettportal.Outcome)
	// Now is the clock the listener reads receive times, queue delays
	// (shedding, overload, the retry queue) and cache expiry from, so a
	// test can move time on instead of sleeping. Zero: time.Now, the real
	// clock.
	Now func() time.Time
	// ProbeInterval is how often, while the database is known down, one
	// batch tries it instead of going straight to the spool (by Now's
	// clock). Zero: 500ms.
	ProbeInterval time.Duration
	// Limits bound the times a router's packets are believed (clock skew,
	// Acct-Delay-Time, Acct-Session-Time); zero: the Limits defaults.
	Limits Limits

	// Stats counts what happened to packets; read it at any time.
	Stats Stats

	// dbDown is set once a batch had to be spooled: later batches go
	// straight to the spool, and one probe at a time (lastProbe) tries the
	// database, so an outage does not cost every batch SpoolAfter.
	dbDown    atomic.Bool
	lastProbe atomic.Int64

	mu   sync.Mutex
	conn udpConn
	// batchConn reads and writes many datagrams per system call; nil when
	// the socket is not a *net.UDPConn.
	batchConn *ipv4.PacketConn
	started   bool
	closing   atomic.Bool
	fresh     *freshQueue
	retry     *retryQueue
	// quietRetry holds the retransmissions of shed packets of quiet
	// routers while others had packets queued (retryQueueOf): taken first.
	quietRetry *retryQueue
	shedMem    *shedMemory
	routers    atomic.Pointer[map[netip.Addr]*routerEntry]
	refresh    chan struct{}
	dedupe     *dedupeCache
	logLimit   logLimiter
	readers    sync.WaitGroup
	workers    sync.WaitGroup
	bg         sync.WaitGroup
	stopBg     chan struct{}

	// overloadUntil (unix nanoseconds of Now) is when the tighter
	// OverloadQueueDelay stops holding; while it holds, retransmissions of
	// shed packets wait for a moment no commit is in flight.
	overloadUntil atomic.Int64
	// inFlight counts the workers holding a batch (committing or
	// answering it).
	inFlight atomic.Int32
	// standingSince (unix nanoseconds of Now) is since when every batch
	// cut at its limit left fresh packets queued; 0 once one did not, or
	// a worker drained the queue (noteStandingQueue).
	standingSince atomic.Int64
	// lastCut (unix nanoseconds of Now) is when a batch was last cut at
	// its limit.
	lastCut atomic.Int64
	// commitRate is what a worker commits a second, for batchLimit.
	commitRate commitRate
	// answeredAt (unix nanoseconds of Now) and answerLatency are the last
	// answered batch's, for Behind; inFlightSince has, per worker, when
	// the oldest packet of the batch it holds arrived (0: none).
	answeredAt, answerLatency atomic.Int64
	inFlightSince             []atomic.Int64
	// backlogSince (unix nanoseconds of Now) is when the readers began
	// finding the socket's buffer fuller than one read takes; 0 once a
	// read found less.
	backlogSince atomic.Int64
	// stamped: the kernel stamps each datagram's arrival on conn.
	stamped bool
}

// Spooler keeps records durably when the database cannot.
type Spooler interface {
	Append(recs []nettportal.AccountingRecord) error
}

// Stats are the server's counters.
type Stats struct {
	Received atomic.Uint64
	// Outcomes counts packets by outcome (indexed by nettportal.Outcome):
	// each packet read gets exactly one, once its fate is known.
	Outcomes     [nettportal.NumOutcomes]atomic.Uint64
	Acknowledged atomic.Uint64 // answered (ok, quarantined, foreign_session)
	Batches      atomic.Uint64
	CommitErrors atomic.Uint64
	Spooled      atomic.Uint64 // records acknowledged from the spool
	SpoolErrors  atomic.Uint64
	// ClockSkewed counts packets whose Event-Timestamp was not believed.
	ClockSkewed atomic.Uint64
	// ByStatus counts OutcomeOK records by Acct-Status-Type.
	Starts, Interims, Stops, OnOffs atomic.Uint64

	// Overload: OutcomeShed is ShedFresh + RetryExpired + RetryFull +
	// RetryOverQuota.
	//
	// ShedFresh counts fresh packets shed for waiting past the budget.
	ShedFresh atomic.Uint64
	// Retried counts retransmissions of shed packets put in the retry
	// queue; RetryAnswered those of them answered.
	Retried, RetryAnswered atomic.Uint64
	// RetryExpired counts retransmissions dropped after RetryQueueDelay in
	// the retry queue; RetryFull those dropped because it was full, and
	// RetryOverQuota because their router had its share of it waiting.
	RetryExpired, RetryFull, RetryOverQuota atomic.Uint64
	// RetryFolded counts later copies of a waiting retransmission folded
	// into it (they are OutcomeDuplicate).
	RetryFolded atomic.Uint64
	onOutcome   func(nettportal.Outcome) // Server.OnOutcome, set by Serve
}

// Outcome is the number of packets with outcome o.
func (st *Stats) Outcome(o nettportal.Outcome) uint64 {
	if int(o) >= len(st.Outcomes) {
		return 0
	}
	return st.Outcomes[o].Load()
}

func (st *Stats) count(o nettportal.Outcome) {
	st.Outcomes[o].Add(1)
	if st.onOutcome != nil {
		st.onOutcome(o)
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("radius: server closed")

func (s *Server) defaults() {
	if s.Addr == "" {
		s.Addr = ":1813"
	}
	if s.QueueSize <= 0 {
		s.QueueSize = 65536
	}
	if s.MaxBatch <= 0 {
		s.MaxBatch = 4096
	}
	if s.Workers <= 0 {
		s.Workers = 3
	}
	if s.Readers <= 0 {
		s.Readers = 2
	}
	if s.DedupeWindow <= 0 {
		s.DedupeWindow = 10 * time.Second
	}
	if s.CommitTimeout <= 0 {
		s.CommitTimeout = 10 * time.Second
	}
	if s.SpoolAfter <= 0 {
		s.SpoolAfter = 2 * time.Second
	}
	if s.BehindLatency <= 0 {
		s.BehindLatency = 50 * time.Millisecond
	}
	if s.MaxQueueDelay == 0 {
		s.MaxQueueDelay = 200 * time.Millisecond
	}
	if s.OverloadQueueDelay == 0 {
		s.OverloadQueueDelay = s.MaxQueueDelay / 2
	}
	if s.OverloadQueueDelay < 0 || s.OverloadQueueDelay > s.MaxQueueDelay {
		s.OverloadQueueDelay = s.MaxQueueDelay
	}
	if s.BatchCommitTime == 0 {
		s.BatchCommitTime = 50 * time.Millisecond
		if s.MaxQueueDelay > 0 {
			s.BatchCommitTime = s.MaxQueueDelay / 4
		}
	}
	if s.RetryQueueSize <= 0 {
		s.RetryQueueSize = max(s.QueueSize/4, 1)
	}
	if s.RetryQueueDelay == 0 {
		s.RetryQueueDelay = 5 * time.Second
	}
	if s.RouterRefresh <= 0 {
		s.RouterRefresh = 10 * time.Second
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ProbeInterval <= 0 {
		s.ProbeInterval = 500 * time.Millisecond
	}
}

// Listen opens the UDP socket without serving yet, so callers learn the
// bound address (for ":0") before Serve.
func (s *Server) Listen() (net.PacketConn, error) {
	s.defaults()
	conn, err := net.ListenPacket("udp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen for accounting on %s: %w", s.Addr, err)
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		// A burst from many routers must wait in the kernel, not be dropped.
		_ = uc.SetReadBuffer(8 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	return conn, nil
}

// ListenAndServe listens on Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	conn, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(conn)
}

// Serve answers accounting on conn until Shutdown, as net/http's Serve
// does: it takes no context, because ending one could not say how long
// the queued packets may take to commit; Shutdown's context does. It loads
// the routers first (bounded by routerLoadTimeout), so it fails fast when
// the database cannot be read.
func (s *Server) Serve(conn net.PacketConn) error {
	s.defaults()
	if s.Routers == nil || s.Store == nil {
		return errors.New("radius: Server needs Routers and Store")
	}
	uc, ok := conn.(udpConn)
	if !ok {
		return fmt.Errorf("radius: Serve needs a UDP socket, got %T", conn)
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("radius: Serve called twice")
	}
	s.started = true
	s.conn = uc
	if c, ok := conn.(*net.UDPConn); ok {
		s.batchConn = ipv4.NewPacketConn(c)
		s.stamped = enableArrivalStamps(c)
	}
	s.fresh = newFreshQueue(s.QueueSize)
	s.inFlightSince = make([]atomic.Int64, s.Workers)
	s.refresh = make(chan struct{}, 1)
	s.stopBg = make(chan struct{})
	s.dedupe = newDedupeCache(s.DedupeWindow, s.Now())
	s.retry = newRetryQueue(s.RetryQueueSize)
	s.quietRetry = newRetryQueue(s.RetryQueueSize)
	// A router retransmits within seconds; the memory covers a retry
	// queue's wait, and a few shed queues' worth of packets.
	s.shedMem = newShedMemory(max(s.RetryQueueDelay, time.Second), 4*s.QueueSize, s.Now())
	s.Stats.onOutcome = s.OnOutcome
	s.mu.Unlock()

	if err := s.loadRouters(context.Background()); err != nil {
		return err
	}
	s.bg.Add(2)
	go s.refreshLoop()
	go s.dedupeLoop()
	for i := 0; i < s.Workers; i++ {
		s.workers.Add(1)
		go s.worker(&s.inFlightSince[i])
	}
	for i := 0; i < s.Readers; i++ {
		s.readers.Add(1)
		go s.read()
	}
	s.readers.Wait()
	return ErrServerClosed
}

// Shutdown stops reading, commits and answers everything queued, then
// closes the socket. When ctx ends first, what is left stays unanswered (the
// routers retransmit to the next server).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started || !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	// Wake the readers; the socket stays open for the answers.
	_ = s.conn.SetReadDeadline(time.Now())
	s.readers.Wait()
	s.fresh.close()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("radius shutdown: %w", ctx.Err())
	}
	close(s.stopBg)
	s.bg.Wait()
	s.conn.Close()
	return err
}

func (s *Server) dedupeLoop() {
	defer s.bg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stopBg:
			return
		case <-tick.C:
			now := s.Now()
			s.dedupe.expire(now)
			s.shedMem.expire(now)
			s.expireRetry(now)
		}
	}
}

// LocalAddr is the bound address once Serve has started.
func (s *Server) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// QueueDepth is the number of records waiting for a batch, in the fresh
// queue and the retry queue.
func (s *Server) QueueDepth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh == nil {
		return 0
	}
	return s.fresh.len() + s.retry.len() + s.quietRetry.len()
}

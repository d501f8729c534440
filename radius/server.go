package radius

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"

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
	// unanswered while the rest are served. Zero: a quarter of QueueSize
	// (all of it when only one router is known).
	PerRouterQueue int
	// MaxBatch bounds the records committed in one transaction. Zero: 4096.
	MaxBatch int
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
	// that holds while the listener is overloaded: from each packet that
	// waited past MaxQueueDelay until 5 x MaxQueueDelay after it, so a
	// standing queue keeps only what can be answered well inside the NAS's
	// timeout. Only MaxQueueDelay renews it: packets shed under the tighter
	// budget do not, or a slow server that keeps up would stay in it.
	// Zero: MaxQueueDelay (no tightening).
	OverloadQueueDelay time.Duration
	// RetryQueueSize bounds the retransmissions of shed packets waiting
	// for spare capacity. A shed packet's fingerprint is remembered, and
	// its router's retransmission waits in this retry queue, which batches
	// take from only when no fresh packet waits: new packets are answered
	// inside the budget, and the shed backlog when capacity is free. Zero:
	// QueueSize/4.
	RetryQueueSize int
	// RetryQueueDelay bounds how long a retransmission waits in the retry
	// queue before it is dropped unanswered (shed): past it, its router
	// has given up (RouterOS: 3 retries 300 ms apart; the benchmark's
	// routers: 1 s apart). Zero: 5s; negative: no bound.
	RetryQueueDelay time.Duration
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
	queue     chan item
	retry     *retryQueue
	shedMem   *shedMemory
	routers   atomic.Pointer[map[netip.Addr]*routerEntry]
	refresh   chan struct{}
	dedupe    *dedupeCache
	logLimit  logLimiter
	readers   sync.WaitGroup
	workers   sync.WaitGroup
	bg        sync.WaitGroup
	stopBg    chan struct{}

	// overloadUntil (unix nanoseconds of Now) is when the tighter
	// OverloadQueueDelay stops holding.
	overloadUntil atomic.Int64
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

type routerEntry struct {
	router nettportal.Router
	secret []byte
	queued *atomic.Int64 // records waiting; survives router reloads
	quota  int64
	clock  *routerClock // survives router reloads
	// retried and retryQuota are queued and quota for the retry queue.
	retried    *atomic.Int64
	retryQuota int64
}

// routerClock is the last ClockReading of a router's packets.
type routerClock struct {
	offset atomic.Int64 // nanoseconds
	at     atomic.Int64 // unix nanoseconds of the packet; 0: none yet
	skewed atomic.Uint64
}

func (c *routerClock) observe(r ClockReading, now time.Time) bool {
	if !r.HasTimestamp {
		return false
	}
	c.offset.Store(int64(r.Offset))
	c.at.Store(now.UnixNano())
	if r.Untrusted {
		c.skewed.Add(1)
	}
	return r.Untrusted
}

// udpConn is what the server needs of its socket; *net.UDPConn has it.
// The AddrPort forms read and write without allocating per packet.
type udpConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetReadDeadline(t time.Time) error
	LocalAddr() net.Addr
	Close() error
}

// item is one verified packet waiting for its batch.
type item struct {
	// outcome is set once the commit tells it (OK unless the store
	// quarantined or refused the record).
	outcome nettportal.Outcome
	rec     nettportal.AccountingRecord
	addr    netip.AddrPort
	id      byte
	auth    [16]byte
	secret  []byte
	key     dedupeKey
	queued  *atomic.Int64
	at      time.Time // when it was queued (monotonic), for MaxQueueDelay
	// ticket is set for a retransmission of a shed packet (the retry
	// queue's items), with its fingerprint.
	ticket *retryTicket
	fp     uint64
}

var errBadAuthenticator = errors.New("bad Request Authenticator (wrong secret?)")

// decodePacket checks and decodes one datagram from a known router. It is
// the whole input path short of the socket, and what FuzzDecode exercises.
func decodePacket(raw []byte, entry *routerEntry, src netip.Addr, now time.Time, lim Limits, clk *ClockReading) (nettportal.AccountingRecord, *rad.Packet, error) {
	if len(raw) < 20 {
		return nettportal.AccountingRecord{}, nil, errors.New("shorter than a RADIUS header")
	}
	length := int(raw[2])<<8 | int(raw[3])
	if length < 20 || length > len(raw) {
		return nettportal.AccountingRecord{}, nil, fmt.Errorf("length field %d does not fit the %d bytes received", length, len(raw))
	}
	// Octets past Length are padding (RFC 2865 section 3): ignored, and not
	// part of what the authenticator covers.
	raw = raw[:length]
	if rad.Code(raw[0]) != rad.CodeAccountingRequest {
		return nettportal.AccountingRecord{}, nil, fmt.Errorf("code %d is not an Accounting-Request", raw[0])
	}
	if !authenticRequest(raw, entry.secret) {
		return nettportal.AccountingRecord{}, nil, errBadAuthenticator
	}
	p, err := rad.Parse(raw, entry.secret)
	if err != nil {
		return nettportal.AccountingRecord{}, nil, fmt.Errorf("parse: %w", err)
	}
	rec, err := decode(p, entry.router, src, now, lim, clk)
	if err != nil {
		return rec, nil, fmt.Errorf("decode: %w", err)
	}
	return rec, p, nil
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
	if s.MaxQueueDelay == 0 {
		s.MaxQueueDelay = 200 * time.Millisecond
	}
	if s.OverloadQueueDelay <= 0 || s.OverloadQueueDelay > s.MaxQueueDelay {
		s.OverloadQueueDelay = s.MaxQueueDelay
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
	}
	s.queue = make(chan item, s.QueueSize)
	s.refresh = make(chan struct{}, 1)
	s.stopBg = make(chan struct{})
	s.dedupe = newDedupeCache(s.DedupeWindow, s.Now())
	s.retry = newRetryQueue(s.RetryQueueSize)
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
		go s.worker()
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
	close(s.queue)
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

func (s *Server) read() {
	defer s.readers.Done()
	if s.batchConn != nil {
		s.readBatches()
		return
	}
	buf := make([]byte, rad.MaxPacketLength)
	for {
		n, addr, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.readFailed(err) {
				return
			}
			continue
		}
		s.handle(buf[:n], addr)
	}
}

// ioBatch is how many datagrams one system call reads or writes.
const ioBatch = 64

// readBatches reads up to ioBatch datagrams per system call (recvmmsg on
// Linux): at tens of thousands of packets a second, a call per packet was
// a good part of the server's time.
func (s *Server) readBatches() {
	msgs := make([]ipv4.Message, ioBatch)
	bufs := make([]byte, ioBatch*rad.MaxPacketLength)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{bufs[i*rad.MaxPacketLength : (i+1)*rad.MaxPacketLength : (i+1)*rad.MaxPacketLength]}
	}
	for {
		n, err := s.batchConn.ReadBatch(msgs, 0)
		if err != nil {
			if s.readFailed(err) {
				return
			}
			continue
		}
		for i := range msgs[:n] {
			ua, ok := msgs[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			s.handle(msgs[i].Buffers[0][:msgs[i].N], ua.AddrPort())
		}
	}
}

// readFailed handles a read error and says whether the reader must stop.
func (s *Server) readFailed(err error) bool {
	if s.closing.Load() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	s.Log.Warn().Err(err).Msg("read accounting packet")
	return false
}

// handle verifies and queues one packet. It never panics on input: every
// failure is a counted drop.
func (s *Server) handle(raw []byte, addr netip.AddrPort) {
	now := s.Now()
	s.Stats.Received.Add(1)
	src := addr.Addr().Unmap()
	if len(raw) < 20 {
		s.Stats.count(nettportal.OutcomeMalformed)
		s.logDrop("accounting packet shorter than a RADIUS header", src, nil)
		return
	}
	routers := s.routers.Load()
	entry := (*routers)[src]
	if entry == nil {
		s.Stats.count(nettportal.OutcomeUnknownRouter)
		s.logDrop("accounting from an unknown address (add it with `nettportal router add`)", src, nil)
		select {
		case s.refresh <- struct{}{}:
		default:
		}
		return
	}
	key := newDedupeKey(addr, raw)
	if resp, pending := s.dedupe.begin(key, now); resp != nil || pending {
		// Checked before the authenticator: a cached answer exists only for
		// a request that authenticated, and byte-equal copies need no MD5.
		s.Stats.count(nettportal.OutcomeDuplicate)
		if resp != nil {
			_, _ = s.conn.WriteToUDPAddrPort(resp, addr)
		}
		return
	}
	fp, retry, handled := s.retransmitOfShed(raw, key, entry)
	if handled {
		return
	}
	if retry {
		if entry.retried.Load() >= entry.retryQuota {
			s.dropRetry(key, &s.Stats.RetryOverQuota)
			s.logDrop("overloaded: router over its share of the retry queue, not answering a retransmission of a shed packet", src, nil)
			return
		}
		if !s.retryRoom(now) {
			s.dropRetry(key, &s.Stats.RetryFull)
			s.logDrop("overloaded: retry queue full, not answering a retransmission of a shed packet", src, nil)
			return
		}
	}
	var clk ClockReading
	rec, p, err := decodePacket(raw, entry, src, now, s.Limits, &clk)
	if err != nil {
		s.dedupe.forget(key)
		if errors.Is(err, errBadAuthenticator) {
			s.Stats.count(nettportal.OutcomeBadAuthenticator)
		} else {
			s.Stats.count(nettportal.OutcomeMalformed)
		}
		s.logDrop("dropped accounting packet", src, err)
		return
	}
	if entry.clock != nil && entry.clock.observe(clk, now) {
		s.Stats.ClockSkewed.Add(1)
		s.logDrop("router clock is off: Event-Timestamp not believed, using receive time - Acct-Delay-Time (set up NTP on the router)", src,
			fmt.Errorf("Event-Timestamp is %s from receive time", clk.Offset.Round(time.Second)))
	}
	if retry {
		rec.Raw = append([]byte(nil), raw...)
		rec.Source = addr
		s.deferRetry(item{rec: rec, addr: addr, id: p.Identifier, auth: p.Authenticator, secret: entry.secret, key: key, at: now}, fp, entry, raw)
		return
	}
	if entry.queued.Add(1) > entry.quota {
		entry.queued.Add(-1)
		s.dedupe.forget(key)
		s.Stats.count(nettportal.OutcomeOverQuota)
		s.logDrop("router over its queue share: not answering, it will retransmit", src, nil)
		return
	}
	// Kept with the record so one PostgreSQL refuses can be quarantined
	// with the packet as it came (raw is the reader's buffer: copied).
	rec.Raw = append([]byte(nil), raw...)
	rec.Source = addr
	it := item{rec: rec, addr: addr, id: p.Identifier, auth: p.Authenticator, secret: entry.secret, key: key, queued: entry.queued, at: now}
	select {
	case s.queue <- it:
	default:
		entry.queued.Add(-1)
		s.dedupe.forget(key)
		s.Stats.count(nettportal.OutcomeQueueFull)
		s.logDrop("accounting queue full: not answering, the router will retransmit", src, nil)
	}
}

func (s *Server) worker() {
	defer s.workers.Done()
	batch := make([]item, 0, s.MaxBatch)
	recs := make([]nettportal.AccountingRecord, 0, s.MaxBatch)
	for {
		var ok bool
		if batch, ok = s.nextBatch(batch[:0]); !ok {
			return
		}
		recs = recs[:0]
		for i := range batch {
			recs = append(recs, batch[i].rec)
		}
		result, outcomes := s.commit(recs)
		s.settleTickets(batch)
		switch result {
		case givenUp:
			for i := range batch {
				s.dedupe.forget(batch[i].key)
			}
			s.Stats.Outcomes[nettportal.OutcomeGivenUp].Add(uint64(len(batch)))
			continue
		case committed:
			var ok []nettportal.AccountingRecord
			batch, ok = s.setOutcomes(batch, recs, outcomes)
			if s.OnCommit != nil && len(ok) > 0 {
				s.OnCommit(ok)
			}
		case spooled:
			s.Stats.Spooled.Add(uint64(len(batch)))
		}
		s.answer(batch)
	}
}

// setOutcomes gives each item the store's result for its record. It
// returns the items to answer, without those refused as another router's
// session (nothing of them is durable, so they are counted and left
// unanswered, like any packet we cannot take), and the records that were
// applied (OutcomeOK): only those changed radacct.
func (s *Server) setOutcomes(batch []item, recs []nettportal.AccountingRecord, outcomes []nettportal.Outcome) ([]item, []nettportal.AccountingRecord) {
	if outcomes == nil {
		return batch, recs
	}
	if len(outcomes) != len(batch) {
		// The store committed, so every record is durable; a result list
		// of the wrong length is its bug, not the router's.
		s.Log.Error().Int("records", len(batch)).Int("results", len(outcomes)).Msg("store returned a result list of the wrong length: answering all as ok")
		return batch, recs
	}
	kept, ok := batch[:0], recs[:0:0]
	for i := range batch {
		o := outcomes[i]
		switch o {
		case nettportal.OutcomeForeignSession:
			s.Stats.count(o)
			s.dedupe.forget(batch[i].key) // the store logged it, with the owner
			continue
		case nettportal.OutcomeOK, nettportal.OutcomeQuarantined:
		default:
			s.Log.Error().Str("outcome", o.String()).Msg("store returned a result that is not final: counting it as ok, the record committed")
			o = nettportal.OutcomeOK
		}
		batch[i].outcome = o
		if o == nettportal.OutcomeOK {
			ok = append(ok, recs[i])
		}
		kept = append(kept, batch[i])
	}
	return kept, ok
}

type commitOutcome int

const (
	committed commitOutcome = iota
	spooled
	givenUp
)

// commit retries a failing batch with backoff: a short database hiccup
// costs latency, not retransmissions. A batch goes to the spool, when
// there is one, only when the database is out of reach or fails it: its
// commits keep failing for SpoolAfter, or a commit still running at
// SpoolAfter meets a database that does not answer a ping. A commit that is
// merely slow (the database busy, a lock held) is waited for while the
// database answers, up to CommitTimeout: spooling it would acknowledge from
// the disk what Postgres is about to commit, and replay it again later.
// Past CommitTimeout the batch is spooled (or, without a spool, given up
// unanswered).
//
// Once committed, the store's per-record results come with it (nil: all
// OutcomeOK); see nettportal.AccountingResultStore.
func (s *Server) commit(recs []nettportal.AccountingRecord) (commitOutcome, []nettportal.Outcome) {
	if s.Spool != nil && s.dbDown.Load() && !s.probeDue() {
		if err := s.Spool.Append(recs); err == nil {
			return spooled, nil
		}
		s.Stats.SpoolErrors.Add(1)
	}
	// Past the fast path while the database is known down, this batch is
	// the probe: one failed attempt sends it to the spool.
	probing := s.Spool != nil && s.dbDown.Load()
	start := time.Now()
	deadline := start.Add(s.CommitTimeout)
	spoolAt := start.Add(s.SpoolAfter)
	backoff := 50 * time.Millisecond
	for {
		began := time.Now()
		outcomes, gone, err := s.attempt(recs, spoolAt, deadline)
		if s.OnBatch != nil {
			s.OnBatch(len(recs), time.Since(began), err)
		}
		if err == nil {
			s.Stats.Batches.Add(1)
			if s.dbDown.CompareAndSwap(true, false) {
				s.Log.Info().Msg("database commits again: batches go to it, the spool is replayed")
			}
			return committed, outcomes
		}
		s.Stats.CommitErrors.Add(1)
		now := time.Now()
		timedOut := !now.Before(deadline)
		// An outage: the database does not answer a ping, or its commits
		// keep failing (refused, reset, an error from Postgres). An attempt
		// that ran out of time while the database answered (a lock held,
		// every accounting connection committing) is not one.
		failed := !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nettportal.ErrBusy)
		outage := gone || (failed && (probing || !now.Before(spoolAt)))
		if _, canPing := s.Store.(pinger); !canPing && !now.Before(spoolAt) && !errors.Is(err, nettportal.ErrBusy) {
			// Without a ping a hung database looks like a slow one: an
			// attempt still running at SpoolAfter counts as an outage.
			outage = true
		}
		if s.Spool != nil && (outage || timedOut) {
			spoolErr := s.Spool.Append(recs)
			if spoolErr == nil {
				switch {
				case !outage:
					s.Log.Warn().Err(err).Int("records", len(recs)).Dur("commit_timeout", s.CommitTimeout).
						Msg("database answers but did not commit a batch in time: spooled it, the next batches try the database again")
				case !s.dbDown.Swap(true):
					s.Log.Warn().Err(err).Int("records", len(recs)).Msg("database cannot commit: spooling to disk and acknowledging until it is back")
				}
				return spooled, nil
			}
			s.Stats.SpoolErrors.Add(1)
			s.Log.Error().Err(spoolErr).Msg("spool append failed: still retrying the database")
		}
		if now.Add(backoff).After(deadline) {
			s.Log.Error().Err(err).Int("records", len(recs)).Msg("giving up a batch: its packets stay unanswered and will be retransmitted")
			return givenUp, nil
		}
		s.Log.Warn().Err(err).Int("records", len(recs)).Dur("retry_in", backoff).Msg("commit accounting batch")
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// pinger is a store that can say whether the database answers at all, on
// a connection accounting does not commit on (store.DB).
type pinger interface {
	PingAccounting(ctx context.Context) error
}

// pingTimeout bounds a liveness ping: an empty statement on an idle
// connection is one round trip, which a database serving anything answers
// well within a second however busy its viewers keep it.
const pingTimeout = time.Second

// attempt runs one commit of recs, ending by deadline. With a spool, a
// commit still running at spoolAt is watched: the database is pinged then
// and every pingTimeout after, and the commit is stopped (gone) only when a
// ping fails. A store that cannot be pinged has its attempt end at spoolAt.
// A stopped COMMIT may still have landed; spooling the batch as well is
// harmless, as every record is idempotent.
func (s *Server) attempt(recs []nettportal.AccountingRecord, spoolAt, deadline time.Time) (outcomes []nettportal.Outcome, gone bool, err error) {
	if s.Spool == nil || !time.Now().Before(spoolAt) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
		return outcomes, false, err
	}
	p, ok := s.Store.(pinger)
	if !ok {
		ctx, cancel := context.WithDeadline(context.Background(), spoolAt)
		defer cancel()
		outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
		return outcomes, false, err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var finished, down atomic.Bool
	var watch *time.Timer
	// Armed only once watch is set: the function resets it.
	watch = time.AfterFunc(time.Hour, func() {
		if finished.Load() {
			return
		}
		pctx, pcancel := context.WithTimeout(context.Background(), pingTimeout)
		perr := p.PingAccounting(pctx)
		pcancel()
		if finished.Load() {
			return
		}
		if perr != nil {
			s.Log.Warn().Err(perr).Int("records", len(recs)).Msg("a commit is hanging and the database does not answer a ping: stopping it to spool the batch")
			down.Store(true)
			cancel()
			return
		}
		watch.Reset(pingTimeout)
	})
	watch.Reset(time.Until(spoolAt))
	outcomes, err = nettportal.ApplyWithResults(ctx, s.Store, recs)
	finished.Store(true)
	watch.Stop()
	return outcomes, down.Load() && err != nil, err
}

// probeDue lets one batch every ProbeInterval try the database while it is
// known to be down.
func (s *Server) probeDue() bool {
	now := s.Now().UnixNano()
	last := s.lastProbe.Load()
	return now-last >= int64(s.ProbeInterval) && s.lastProbe.CompareAndSwap(last, now)
}

func (s *Server) answer(batch []item) {
	now := s.Now()
	var out []ipv4.Message
	var sent []*item // out[i] answers sent[i]
	if s.batchConn != nil {
		out = make([]ipv4.Message, 0, min(len(batch), ioBatch))
		sent = make([]*item, 0, cap(out))
	}
	for i := range batch {
		it := &batch[i]
		resp := rad.Packet{Code: rad.CodeAccountingResponse, Identifier: it.id, Authenticator: it.auth, Secret: it.secret}
		b, err := resp.Encode()
		if err != nil {
			s.Log.Error().Err(err).Msg("encode Accounting-Response")
			s.Stats.count(nettportal.OutcomeSendFailed)
			continue
		}
		s.dedupe.done(it.key, b, now)
		if s.batchConn == nil {
			if _, err := s.conn.WriteToUDPAddrPort(b, it.addr); err != nil {
				s.Log.Warn().Err(err).Msg("send Accounting-Response")
				s.Stats.count(nettportal.OutcomeSendFailed)
				continue
			}
			s.countAnswer(it)
			continue
		}
		out = append(out, ipv4.Message{Buffers: [][]byte{b}, Addr: net.UDPAddrFromAddrPort(it.addr)})
		sent = append(sent, it)
		if len(out) == ioBatch {
			s.sendBatch(out, sent)
			out, sent = out[:0], sent[:0]
		}
	}
	if len(out) > 0 {
		s.sendBatch(out, sent)
	}
}

// countAnswer counts an answered packet under its outcome, and OutcomeOK
// ones by Acct-Status-Type.
func (s *Server) countAnswer(it *item) {
	s.Stats.Acknowledged.Add(1)
	s.Stats.count(it.outcome)
	if it.ticket != nil {
		s.Stats.RetryAnswered.Add(1)
	}
	if it.outcome != nettportal.OutcomeOK {
		return
	}
	switch it.rec.Status {
	case nettportal.StatusStart:
		s.Stats.Starts.Add(1)
	case nettportal.StatusInterimUpdate:
		s.Stats.Interims.Add(1)
	case nettportal.StatusStop:
		s.Stats.Stops.Add(1)
	default:
		s.Stats.OnOffs.Add(1)
	}
}

// sendBatch writes answers with as few system calls as it can (sendmmsg
// on Linux). An answer the kernel refuses is logged and skipped, as a lost
// datagram would be: the router retransmits and gets it from the cache.
func (s *Server) sendBatch(msgs []ipv4.Message, items []*item) {
	for len(msgs) > 0 {
		n, err := s.batchConn.WriteBatch(msgs, 0)
		if n > 0 {
			for _, it := range items[:n] {
				s.countAnswer(it)
			}
		}
		if err != nil {
			s.Log.Warn().Err(err).Msg("send Accounting-Response")
			if n <= 0 {
				// The first message is the one refused; skip it.
				s.Stats.count(nettportal.OutcomeSendFailed)
				n = 1
			}
		}
		if n <= 0 {
			return
		}
		msgs, items = msgs[n:], items[n:]
	}
}

// routerLoadTimeout bounds one read of the router table: at start it
// makes Serve fail instead of hanging on an unreachable database.
const routerLoadTimeout = 10 * time.Second

func (s *Server) loadRouters(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, routerLoadTimeout)
	defer cancel()
	list, err := s.Routers.Routers(ctx)
	if err != nil {
		return fmt.Errorf("load routers: %w", err)
	}
	// With one router the queue itself is the bound.
	quota := int64(math.MaxInt64)
	if len(list) > 1 {
		quota = int64(max(s.QueueSize/4, 1))
	}
	if s.PerRouterQueue > 0 {
		quota = int64(s.PerRouterQueue)
	}
	// The retry queue is shared in the same proportion.
	retryQuota := int64(math.MaxInt64)
	if quota < int64(s.QueueSize) {
		retryQuota = max(quota*int64(s.RetryQueueSize)/int64(s.QueueSize), 1)
	}
	old := s.routers.Load()
	m := make(map[netip.Addr]*routerEntry, len(list))
	for _, r := range list {
		queued, retried := new(atomic.Int64), new(atomic.Int64)
		clock := new(routerClock)
		if old != nil {
			if e := (*old)[r.IP]; e != nil {
				queued, retried = e.queued, e.retried
				if e.router.ID == r.ID {
					clock = e.clock
				}
			}
		}
		m[r.IP] = &routerEntry{router: r, secret: []byte(r.Secret), queued: queued, quota: quota, clock: clock,
			retried: retried, retryQuota: retryQuota}
	}
	s.routers.Store(&m)
	return nil
}

func (s *Server) refreshLoop() {
	defer s.bg.Done()
	tick := time.NewTicker(s.RouterRefresh)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-s.stopBg:
			return
		case <-tick.C:
		case <-s.refresh:
			// Unknown sources may arrive at line rate; reload at most once a second.
			if time.Since(last) < time.Second {
				continue
			}
		}
		last = time.Now()
		if err := s.loadRouters(context.Background()); err != nil {
			s.Log.Warn().Err(err).Msg("reload routers")
		}
	}
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
	if s.retry == nil {
		return len(s.queue)
	}
	return len(s.queue) + s.retry.len()
}

// Clocks is what the listener last saw of each router's clock (routers
// that have sent an Event-Timestamp or had one not believed).
func (s *Server) Clocks() []nettportal.RouterClock {
	routers := s.routers.Load()
	if routers == nil {
		return nil
	}
	var out []nettportal.RouterClock
	for _, e := range *routers {
		at := e.clock.at.Load()
		if at == 0 {
			continue
		}
		out = append(out, nettportal.RouterClock{RouterID: e.router.ID, Router: e.router.Name, Offset: time.Duration(e.clock.offset.Load()),
			ObservedAt: time.Unix(0, at).UTC(), Skewed: e.clock.skewed.Load()})
	}
	return out
}

func (s *Server) logDrop(msg string, src netip.Addr, err error) {
	ok, suppressed := s.logLimit.allow(src, time.Now())
	if !ok {
		return
	}
	ev := s.Log.Warn().Err(err).Str("addr", src.String())
	if suppressed > 0 {
		ev = ev.Int("suppressed_before", suppressed)
	}
	ev.Msg(msg)
}

// Log limits: a few lines a second per source address, so junk from one
// address cannot hide another router's errors, and a ceiling for all
// sources together, so a flood from spoofed addresses cannot fill the disk.
const (
	logPerSource  = 5
	logAllSources = 100
	// logMaxSources bounds the limiter's memory; past it the per-source
	// state is forgotten at the next window (the ceiling still holds).
	logMaxSources = 4096
)

// logLimiter is a per-source-address log rate limiter with a global
// ceiling, in one-second windows.
type logLimiter struct {
	mu     sync.Mutex
	window time.Time
	total  int
	per    map[netip.Addr]*sourceLog
}

type sourceLog struct {
	n          int // lines this window
	suppressed int // lines dropped since the last one let through
}

// allow says whether a line from src may be logged now, and how many of
// src's lines were suppressed before it.
func (l *logLimiter) allow(src netip.Addr, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[netip.Addr]*sourceLog{}
	}
	if now.Sub(l.window) >= time.Second {
		l.window, l.total = now, 0
		if len(l.per) >= logMaxSources {
			clear(l.per)
		}
		for a, e := range l.per {
			if e.n == 0 && e.suppressed == 0 {
				delete(l.per, a) // quiet for a whole window
				continue
			}
			e.n = 0
		}
	}
	e := l.per[src]
	if e == nil {
		if len(l.per) >= logMaxSources {
			return false, 0
		}
		e = &sourceLog{}
		l.per[src] = e
	}
	if e.n >= logPerSource || l.total >= logAllSources {
		e.suppressed++
		return false, 0
	}
	e.n++
	l.total++
	suppressed := e.suppressed
	e.suppressed = 0
	return true, suppressed
}

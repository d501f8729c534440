package sim

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal"
)

// Mix is the shape of an open-loop load.
type Mix int

const (
	// MixStorm is a reconnect storm: sessions = 4 x rate, each sending
	// Start, interims and Stop within the run.
	MixStorm Mix = iota
	// MixSteady is a settled network: sessions = 20 x rate, sending
	// interims only (the first interim of a session unknown to the server
	// creates its row, as RouterOS's do after a server change).
	MixSteady
)

func (m Mix) String() string {
	if m == MixSteady {
		return "steady"
	}
	return "reconnect storm"
}

// OpenLoopConfig describes an open-loop run: routers send on their own
// schedule, whatever the answers do, as real ones do. A request without an
// answer after Timeout is retransmitted, up to Retries times (RouterOS:
// 1 s, 3), and then given up.
type OpenLoopConfig struct {
	Server string
	Secret string
	// Routers send from BaseIP upwards (zero: 127.0.0.11); zero Routers: 4.
	// Register NASRouters() before the run.
	Routers int
	BaseIP  netip.Addr
	// Rate is the new requests per second offered in total
	// (retransmissions come on top), for Duration.
	Rate     int
	Duration time.Duration
	Mix      Mix
	// Sessions overrides the mix's session count (tests); zero: the mix's.
	Sessions int
	// Tag names the run's sessions (4 characters); empty: a random one.
	// Steady runs that continue the same sessions share a Tag, and
	// FirstRound says how many interims those sessions sent before.
	Tag        string
	FirstRound int
	// Timeout before a retransmission; zero: 1s. Retries; zero: 3,
	// negative: none.
	Timeout time.Duration
	Retries int
}

// NASRouters are the run's routers as the server's `nas` table needs them.
func (c OpenLoopConfig) NASRouters() []nettportal.Router {
	n := c.Routers
	if n <= 0 {
		n = 4
	}
	return LoadConfig{Routers: n, BaseIP: c.BaseIP, Secret: c.Secret}.NASRouters()
}

// OpenLoopResult is what an open-loop run measured.
type OpenLoopResult struct {
	Offered     uint64 // requests the schedule sent (first transmissions)
	Answered    uint64
	Failed      uint64 // no answer after every retransmission
	Retransmits uint64
	// NoIdentifier counts requests a router could not send: every RADIUS
	// Identifier of its sockets was waiting for an answer (also Failed).
	NoIdentifier uint64
	// Duration is the schedule's length; answers to its last requests may
	// come later.
	Duration time.Duration
	// Latency from a request's first transmission to its answer.
	P50, P99, Max time.Duration
	// Rounds is how many packets each session was scheduled to send.
	Rounds int
	// Ledger has one entry per session: its newest acknowledged packet.
	Ledger []LedgerEntry
}

// Goodput is the answered requests per second of the schedule.
func (r OpenLoopResult) Goodput() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Answered) / r.Duration.Seconds()
}

// olReq is one request in flight on an Identifier of a socket.
type olReq struct {
	sess     int // global session index
	round    int
	attempts int
	first    time.Duration
	buf      [512]byte
	n        int
}

// olExpiry is a transmission whose answer is due at at.
type olExpiry struct {
	at      time.Duration
	req     *olReq // the Identifier may carry a newer request by then
	sock    int
	id      byte
	attempt int
}

type olSock struct {
	conn    *net.UDPConn
	pc      *ipv4.PacketConn
	pending [256]*olReq
	free    []byte
}

// olRouter is one router: its sockets, Identifiers and timers.
type olRouter struct {
	run   *olRun
	index int
	hash  hash.Hash

	mu     sync.Mutex
	socks  []*olSock
	expiry []olExpiry // in transmission order, so in expiry order
	head   int        // expiry[:head] are done
	hist   histogram

	offered, answered, failed, retransmits, noID uint64
	inflight                                     int
}

type olRun struct {
	cfg      OpenLoopConfig
	tpl      []loadTemplate
	secret   []byte
	tag      string
	boot     uint8
	sessions int
	rounds   int
	base     time.Time
	start    time.Time
	ledger   []ledgerRec
	ledgerMu sync.Mutex
}

func (lr *olRun) now() time.Duration { return time.Since(lr.start) }

func (c *OpenLoopConfig) defaults() error {
	if c.Routers <= 0 {
		c.Routers = 4
	}
	if c.Rate <= 0 || c.Duration <= 0 {
		return errors.New("sim: open loop: need Rate and Duration > 0")
	}
	if c.Secret == "" || c.Server == "" {
		return errors.New("sim: open loop: need Server and Secret")
	}
	if !c.BaseIP.IsValid() {
		c.BaseIP = DefaultBaseIP()
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	switch {
	case c.Retries == 0:
		c.Retries = 3
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Tag == "" {
		var b [2]byte
		_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
		c.Tag = fmt.Sprintf("%02x%02x", b[0], b[1])
	}
	if len(c.Tag) != 4 {
		return fmt.Errorf("sim: open loop: Tag %q must be 4 characters", c.Tag)
	}
	return nil
}

// RunOpenLoop offers cfg.Rate requests per second for cfg.Duration,
// spread evenly over the routers and the run's sessions, then waits for
// the last answers or give-ups. Packet j goes to session j mod S as its
// (j / S)-th packet, so a session's packets are S/Rate seconds apart.
func RunOpenLoop(ctx context.Context, cfg OpenLoopConfig) (OpenLoopResult, error) {
	if err := cfg.defaults(); err != nil {
		return OpenLoopResult{}, err
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return OpenLoopResult{}, fmt.Errorf("sim: open loop: server %q: %w", cfg.Server, err)
	}
	factor := 4
	if cfg.Mix == MixSteady {
		factor = 20
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	// A multiple of Routers, so packet j's session (j mod S) is on
	// router j mod Routers.
	want := factor * cfg.Rate
	if cfg.Sessions > 0 {
		want = cfg.Sessions
	}
	perRouter := (max(min(want, total), 1) + cfg.Routers - 1) / cfg.Routers
	sessions := perRouter * cfg.Routers
	if perRouter > 9_999_999 {
		return OpenLoopResult{}, fmt.Errorf("sim: open loop: %d sessions per router is too many", perRouter)
	}
	tpl, err := newLoadTemplates(LoadConfig{Routers: cfg.Routers, BaseIP: cfg.BaseIP}, cfg.Tag)
	if err != nil {
		return OpenLoopResult{}, err
	}
	lr := &olRun{cfg: cfg, tpl: tpl, secret: []byte(cfg.Secret), tag: cfg.Tag, sessions: sessions,
		rounds: (total + sessions - 1) / sessions, ledger: make([]ledgerRec, sessions)}
	lr.boot = 1 + (cfg.Tag[0]+cfg.Tag[3])%15
	// A storm's events are spaced a virtual interim apart, ending now.
	// Steady packets carry their send time instead, which keeps growing
	// across the runs that continue the same sessions.
	lr.base = time.Now().Add(-time.Duration(lr.rounds+2) * virtualInterim).Truncate(time.Second)

	// Enough Identifiers for every request of 4 s (a request lives up to
	// Timeout x (Retries+1)), on sockets of 256.
	life := cfg.Timeout * time.Duration(cfg.Retries+1)
	ids := int(float64(cfg.Rate)/float64(cfg.Routers)*life.Seconds()) + 256
	nsock := min((ids+255)/256, 512)
	routers := make([]*olRouter, cfg.Routers)
	var all []*olSock
	closeAll := func() {
		for _, s := range all {
			s.conn.Close()
		}
	}
	for r := range routers {
		rt := &olRouter{run: lr, index: r, hash: md5.New()}
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrAdd(cfg.BaseIP, r), 0))
		for range nsock {
			conn, err := net.DialUDP("udp", laddr, raddr)
			if err != nil {
				closeAll()
				return OpenLoopResult{}, fmt.Errorf("sim: open loop: socket on %s: %w", laddr.IP, err)
			}
			_ = conn.SetReadBuffer(1 << 20)
			_ = conn.SetWriteBuffer(1 << 20)
			s := &olSock{conn: conn, pc: ipv4.NewPacketConn(conn), free: make([]byte, 256)}
			for i := range s.free {
				s.free[i] = byte(255 - i)
			}
			rt.socks = append(rt.socks, s)
			all = append(all, s)
		}
		routers[r] = rt
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()

	lr.start = time.Now()
	var readers sync.WaitGroup
	for _, rt := range routers {
		for i := range rt.socks {
			readers.Add(1)
			go func() { defer readers.Done(); rt.read(i) }()
		}
	}
	var senders sync.WaitGroup
	for _, rt := range routers {
		senders.Add(1)
		go func() { defer senders.Done(); rt.schedule(ctx, total) }()
	}
	senders.Wait()
	closeAll()
	readers.Wait()

	res := OpenLoopResult{Duration: cfg.Duration, Rounds: lr.rounds}
	var h histogram
	for _, rt := range routers {
		res.Offered += rt.offered
		res.Answered += rt.answered
		res.Failed += rt.failed
		res.Retransmits += rt.retransmits
		res.NoIdentifier += rt.noID
		h.merge(&rt.hist)
	}
	res.P50, res.P99, res.Max = h.quantile(0.5), h.quantile(0.99), h.max
	res.Ledger = make([]LedgerEntry, sessions)
	for s, l := range lr.ledger {
		r, k := s%cfg.Routers, s/cfg.Routers
		res.Ledger[s] = LedgerEntry{Router: loadRouterName(r), NASIP: addrAdd(cfg.BaseIP, r), Username: loadUsername(lr.tag, r, k),
			SessionID: FormatSessionID(sessionNumber(lr.boot, uint32(k+1))), Status: nettportal.StatusType(l.status),
			InputOctets: l.in, OutputOctets: l.out, SessionTime: l.sessionTime, Acked: int(l.acked)}
	}
	return res, ctx.Err()
}

// schedule sends this router's share of the total requests on time, and
// retransmits or gives up the late ones, until the schedule is over and
// nothing is in flight.
func (rt *olRouter) schedule(ctx context.Context, total int) {
	lr := rt.run
	cfg := lr.cfg
	// Packet j leaves at j/Rate, from router j mod Routers (its
	// session's router).
	next := rt.index // global packet index
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		now := lr.now()
		rt.mu.Lock()
		for next < total && time.Duration(float64(next)/float64(cfg.Rate)*float64(time.Second)) <= now {
			rt.sendNew(next%lr.sessions, next/lr.sessions, now)
			next += cfg.Routers
		}
		rt.expire(now)
		done := next >= total && rt.inflight == 0
		rt.mu.Unlock()
		if done || ctx.Err() != nil {
			return
		}
		<-tick.C
	}
}

// sendNew transmits a new request; the caller holds rt.mu.
func (rt *olRouter) sendNew(sess, round int, now time.Duration) {
	rt.offered++
	for si, s := range rt.socks {
		if len(s.free) == 0 {
			continue
		}
		id := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		req := &olReq{sess: sess, round: round, first: now}
		s.pending[id] = req
		rt.inflight++
		rt.transmit(si, id, req, now)
		return
	}
	rt.noID++
	rt.failed++
}

// status is what the round-th packet of a session is.
func (lr *olRun) status(round int) (kind int, step int) {
	if lr.cfg.Mix == MixSteady {
		return 1, lr.cfg.FirstRound + round + 1
	}
	switch {
	case round == 0:
		return 0, 0
	case round == lr.rounds-1:
		return 2, round
	}
	return 1, round
}

func (rt *olRouter) transmit(si int, id byte, req *olReq, now time.Duration) {
	lr := rt.run
	req.attempts++
	kind, step := lr.status(req.round)
	k := req.sess / lr.cfg.Routers
	up, down := sessionRates(lr.tag, req.sess)
	event := lr.base.Add(time.Duration(step) * virtualInterim)
	if lr.cfg.Mix == MixSteady {
		event = lr.start.Add(req.first)
	}
	req.n = buildLoadPacket(req.buf[:], &lr.tpl[rt.index], rt.hash, lr.secret, id, lr.cfg.BaseIP, rt.index, k,
		sessionNumber(lr.boot, uint32(k+1)), kind, step, req.attempts, event, up, down)
	rt.expiry = append(rt.expiry, olExpiry{at: now + lr.cfg.Timeout, req: req, sock: si, id: id, attempt: req.attempts})
	_, _ = rt.socks[si].conn.Write(req.buf[:req.n]) // a lost datagram is retransmitted
}

// expire retransmits or gives up requests whose answer is late; the
// caller holds rt.mu.
func (rt *olRouter) expire(now time.Duration) {
	for rt.head < len(rt.expiry) && rt.expiry[rt.head].at <= now {
		e := rt.expiry[rt.head]
		rt.head++
		s := rt.socks[e.sock]
		req := s.pending[e.id]
		if req != e.req || req.attempts != e.attempt {
			continue // answered, or a later attempt is due
		}
		if req.attempts > rt.run.cfg.Retries {
			rt.failed++
			rt.release(s, e.id)
			continue
		}
		rt.retransmits++
		rt.transmit(e.sock, e.id, req, now)
	}
	if rt.head > 4096 && rt.head > len(rt.expiry)/2 {
		rt.expiry = append(rt.expiry[:0], rt.expiry[rt.head:]...)
		rt.head = 0
	}
}

func (rt *olRouter) release(s *olSock, id byte) {
	s.pending[id] = nil
	s.free = append(s.free, id)
	rt.inflight--
}

func (rt *olRouter) read(si int) {
	s := rt.socks[si]
	msgs := make([]ipv4.Message, 64)
	bufs := make([]byte, len(msgs)*512)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{bufs[i*512 : (i+1)*512]}
	}
	for {
		n, err := s.pc.ReadBatch(msgs, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(time.Millisecond) // ICMP unreachable while the server is down: the timers retransmit
			continue
		}
		now := rt.run.now()
		rt.mu.Lock()
		for i := range msgs[:n] {
			b := msgs[i].Buffers[0][:msgs[i].N]
			if len(b) < 20 {
				continue
			}
			req := s.pending[b[1]]
			if req == nil || rad.Code(b[0]) != rad.CodeAccountingResponse || !rad.IsAuthenticResponse(b, req.buf[:req.n], rt.run.secret) {
				continue
			}
			rt.answered++
			rt.hist.record(now - req.first)
			rt.run.record(req)
			rt.release(s, b[1])
		}
		rt.mu.Unlock()
	}
}

// record notes an acknowledged packet in its session's ledger entry.
func (lr *olRun) record(req *olReq) {
	kind, step := lr.status(req.round)
	up, down := sessionRates(lr.tag, req.sess)
	lr.ledgerMu.Lock()
	defer lr.ledgerMu.Unlock()
	l := &lr.ledger[req.sess]
	l.acked++
	secs := float64(step) * virtualInterim.Seconds()
	in, out := uint64(up*secs), uint64(down*secs)
	// Answers may come out of order: keep the newest packet's figures.
	if in >= l.in && (nettportal.StatusType(l.status) != nettportal.StatusStop || kind == 2) {
		l.in, l.out, l.sessionTime = in, out, uint32(step)*uint32(virtualInterim/time.Second)
		l.status = uint8([]nettportal.StatusType{nettportal.StatusStart, nettportal.StatusInterimUpdate, nettportal.StatusStop}[kind])
	}
}

// sessionRates are a session's upload and download bytes per virtual
// second: fixed per session (a hash of tag and index), so counters keep
// growing across steady runs.
func sessionRates(tag string, sess int) (up, down float64) {
	h := uint64(sess)*0x9E3779B97F4A7C15 ^ uint64(tag[0])<<8 ^ uint64(tag[1])<<16 ^ uint64(tag[2])<<24 ^ uint64(tag[3])<<32
	h ^= h >> 29
	up = 2_000 + float64(h%60_000)
	down = up * (3 + float64((h>>20)%8))
	return up, down
}

// buildLoadPacket writes one accounting request from the router's
// template into b and returns its length: kind 0 Start, 1 Interim, 2
// Stop; step counts virtual interim intervals since the Start.
func buildLoadPacket(b []byte, t *loadTemplate, h hash.Hash, secret []byte, id byte, baseIP netip.Addr, router, sess int,
	sid uint32, kind, step, attempts int, event time.Time, up, down float64) int {
	n := 20 + copy(b[20:], t.common)
	putDecimal(b[20+t.user+11:20+t.user+18], sess+1)
	putHex(b[20+t.sid:20+t.sid+8], uint64(sid), false)
	binary.BigEndian.PutUint32(b[20+t.port:], sid)
	putHex(b[20+t.mac+9:20+t.mac+11], uint64(byte(sess>>16)), true)
	putHex(b[20+t.mac+12:20+t.mac+14], uint64(byte(sess>>8)), true)
	putHex(b[20+t.mac+15:20+t.mac+17], uint64(byte(sess)), true)
	ip := subscriberIP(addrAdd(baseIP, router), sess).As4()
	copy(b[20+t.framed:], ip[:])
	tailAt := n
	n += copy(b[n:], t.tails[kind])
	off := func(typ byte) []byte { return b[tailAt+t.tailOff[kind][typ]-1:] }
	elapsed := time.Duration(step) * virtualInterim
	binary.BigEndian.PutUint32(off(byte(rfc2869.EventTimestamp_Type)), uint32(event.Unix()))
	binary.BigEndian.PutUint32(off(byte(rfc2866.AcctDelayTime_Type)), uint32(max(attempts-1, 0)))
	if kind > 0 {
		secs := elapsed.Seconds()
		in, out := uint64(up*secs), uint64(down*secs)
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctSessionTime_Type)), uint32(elapsed/time.Second))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputOctets_Type)), uint32(in))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctInputGigawords_Type)), uint32(in>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputOctets_Type)), uint32(out))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctOutputGigawords_Type)), uint32(out>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputPackets_Type)), packetsOf(in, avgUpPacket))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputPackets_Type)), packetsOf(out, avgDownPacket))
	}
	b[0] = byte(rad.CodeAccountingRequest)
	b[1] = id
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	clear(b[4:20])
	// RFC 2866 3: MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
	h.Reset()
	h.Write(b[:n])
	h.Write(secret)
	h.Sum(b[4:4:20])
	return n
}

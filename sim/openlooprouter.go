package sim

import (
	"context"
	"errors"
	"hash"
	"net"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"
)

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
	// out holds the transmissions of this pass of the schedule, sent
	// together (sendmmsg on Linux): a system call per packet was most of
	// the simulator's CPU, which the server on the same machine lost.
	out []ipv4.Message
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
	tally             // sent: requests the schedule offered
	noID   uint64     // requests without a free Identifier (also failed)

	inflight int
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
		rt.flush()
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
	rt.sent++
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
	s := rt.socks[si]
	s.out = append(s.out, ipv4.Message{Buffers: [][]byte{req.buf[:req.n]}})
}

// flush sends what this pass transmitted; the caller holds rt.mu, so no
// request's buffer changes before it is sent.
func (rt *olRouter) flush() {
	for _, s := range rt.socks {
		s.out = sendAll(s.pc, s.out)
	}
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
			rt.recordAnswer(now-req.first, req.attempts)
			rt.run.record(req)
			rt.release(s, b[1])
		}
		rt.mu.Unlock()
	}
}

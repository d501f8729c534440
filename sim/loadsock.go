package sim

import (
	"errors"
	"net"
	"time"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"

	"github.com/nettportal/nettportal"
)

// loop runs one socket: it sends, reads answers, retransmits, until its
// router has no session left or the socket is closed.
func (s *loadSock) loop() {
	lr := s.run
	for i := range s.slots {
		s.startNext(&s.slots[i])
	}
	// Many answers per system call in, many requests per call out
	// (recvmmsg, sendmmsg): the load generator shares the machine with the
	// server it measures, so it should cost as little as it can.
	msgs := make([]ipv4.Message, 64)
	rbufs := make([]byte, len(msgs)*(rad.MaxPacketLength+1))
	for i := range msgs {
		msgs[i].Buffers = [][]byte{rbufs[i*(rad.MaxPacketLength+1) : (i+1)*(rad.MaxPacketLength+1)]}
	}
	s.flush()
	nextCheck := lr.now() + lr.checkEach
	deadline := nextCheck
	_ = s.conn.SetReadDeadline(lr.start.Add(deadline))
	for s.nactive > 0 {
		n, err := s.pc.ReadBatch(msgs, 0)
		now := lr.now()
		var ne net.Error
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case errors.As(err, &ne) && ne.Timeout():
		case err != nil:
			// ICMP port unreachable while the server is down: the timers
			// retransmit.
			time.Sleep(time.Millisecond)
		default:
			for i := range msgs[:n] {
				if msgs[i].N >= 20 {
					s.answer(msgs[i].Buffers[0][:msgs[i].N], now)
				}
			}
		}
		if s.rate > 0 {
			s.drain(now)
		}
		if now >= nextCheck {
			s.expire(now)
			nextCheck = now + lr.checkEach
		}
		s.flush()
		wake := nextCheck
		if len(s.waiting) > 0 {
			wake = min(wake, now+time.Duration(float64(time.Second)/s.rate)+50*time.Microsecond)
		}
		if wake != deadline {
			deadline = wake
			_ = s.conn.SetReadDeadline(lr.start.Add(deadline))
		}
	}
}

// flush sends the requests built since the last flush.
func (s *loadSock) flush() { s.out = sendAll(s.pc, s.out) }

// sendAll sends out with as few system calls as the socket takes
// (sendmmsg on Linux) and returns it emptied, its references cleared. A
// datagram the socket refuses (a full buffer, a closed socket) is a lost
// packet: its request's timer retransmits it, as for one the network lost.
func sendAll(pc *ipv4.PacketConn, out []ipv4.Message) []ipv4.Message {
	for sent := 0; sent < len(out); {
		n, _ := pc.WriteBatch(out[sent:], 0)
		sent += max(n, 1) // n < 1: skip the datagram the socket refused
	}
	clear(out)
	return out[:0]
}

// startNext gives the slot the router's next session, or retires it.
func (s *loadSock) startNext(sl *loadSlot) {
	lr := s.run
	n := lr.next[s.router].Add(1) - 1
	if n >= int64(lr.cfg.SessionsPerRouter) {
		if sl.active {
			s.nactive--
		}
		sl.active = false
		return
	}
	if !sl.active {
		s.nactive++
	}
	sl.active, sl.sess, sl.step = true, int(n), 0
	tr := drawTraffic(s.rng, time.Time{})
	sl.up, sl.down = tr.upRate, tr.downRate
	s.sendNew(sl)
}

func (s *loadSock) sendNew(sl *loadSlot) {
	sl.attempts = 0
	s.sent++
	if s.rate > 0 {
		s.refill(s.run.now())
		if s.tokens < 1 {
			s.waiting = append(s.waiting, sl)
			sl.first, sl.sent = s.run.now(), s.run.now()
			return
		}
		s.tokens--
	}
	s.transmit(sl, s.run.now())
}

func (s *loadSock) refill(now time.Duration) {
	// A burst of a few tokens at least: a socket of a large, slow run
	// (50,000 slots at 10,000/s is 51/s a socket) wakes a little late
	// every time, and with a bucket of one token that lateness was lost
	// rate (about 20% of it).
	s.tokens = min(s.tokens+s.rate*(now-s.tokenAt).Seconds(), max(s.rate/100, 4))
	s.tokenAt = now
}

func (s *loadSock) drain(now time.Duration) {
	s.refill(now)
	for len(s.waiting) > 0 && s.tokens >= 1 {
		sl := s.waiting[0]
		s.waiting = s.waiting[1:]
		s.tokens--
		s.transmit(sl, now)
	}
	if len(s.waiting) == 0 {
		s.waiting = s.waiting[:0:cap(s.waiting)]
	}
}

// build writes the slot's current packet into its buffer.
func (s *loadSock) build(sl *loadSlot) {
	lr := s.run
	kind := 0
	switch {
	case sl.step == 0:
	case sl.step <= lr.cfg.InterimsPerSession:
		kind = 1
	default:
		kind = 2
	}
	sid := sessionNumber(lr.boot, uint32(sl.sess+1))
	event := lr.base.Add(time.Duration(sl.step) * virtualInterim)
	sl.n = buildLoadPacket(sl.buf, &lr.tpl[s.router], s.hash, lr.secret, sl.id, lr.cfg.BaseIP, s.router, sl.sess,
		sid, kind, sl.step, sl.attempts, event, sl.up, sl.down)
}

func (s *loadSock) counters(sl *loadSlot) (in, out uint64) {
	secs := float64(sl.step) * virtualInterim.Seconds()
	return uint64(sl.up * secs), uint64(sl.down * secs)
}

func (s *loadSock) transmit(sl *loadSlot, now time.Duration) {
	sl.attempts++
	if sl.attempts == 1 {
		sl.first = now
	}
	sl.sent = now
	s.build(sl)
	s.out = append(s.out, ipv4.Message{Buffers: [][]byte{sl.buf[:sl.n]}})
}

func (s *loadSock) answer(resp []byte, now time.Duration) {
	sl := s.byID[resp[1]]
	if sl == nil || !sl.active || sl.attempts == 0 || rad.Code(resp[0]) != rad.CodeAccountingResponse ||
		!rad.IsAuthenticResponse(resp, sl.buf[:sl.n], s.run.secret) {
		return
	}
	s.recordAnswer(now-sl.first, sl.attempts)
	s.ledger(sl)
	s.advance(sl)
}

func (s *loadSock) ledger(sl *loadSlot) {
	l := &s.run.ledger[s.router*s.run.cfg.SessionsPerRouter+sl.sess]
	status := nettportal.StatusStart
	switch {
	case sl.step == 0:
	case sl.step <= s.run.cfg.InterimsPerSession:
		status = nettportal.StatusInterimUpdate
	default:
		status = nettportal.StatusStop
	}
	l.status = uint8(status)
	l.acked++
	l.in, l.out = s.counters(sl)
	l.sessionTime = uint32(time.Duration(sl.step) * virtualInterim / time.Second)
}

// advance moves the slot to its session's next packet, or next session.
func (s *loadSock) advance(sl *loadSlot) {
	sl.attempts = 0
	sl.step++
	if sl.step > s.run.cfg.InterimsPerSession+1 {
		s.startNext(sl)
		return
	}
	s.sendNew(sl)
}

// expire retransmits or fails requests whose answer is late.
func (s *loadSock) expire(now time.Duration) {
	for i := range s.slots {
		sl := &s.slots[i]
		if !sl.active || sl.attempts == 0 || now-sl.sent < s.run.timeout {
			continue
		}
		if sl.attempts > s.run.cfg.Retries {
			s.failed++
			s.advance(sl)
			continue
		}
		s.retransmits++
		// The slot keeps its Identifier: the answer to an earlier attempt
		// fails the authenticator check (Acct-Delay-Time changed the
		// request), so it cannot be mistaken for this one's.
		s.transmit(sl, now)
	}
}

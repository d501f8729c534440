package radius

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"

	"github.com/nettportal/nettportal"
)

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
	// overloadUntil is its router's (routerEntry.overloadUntil); nil: the
	// listener's.
	overloadUntil *atomic.Int64
	at            time.Time // when it was queued (monotonic), for MaxQueueDelay
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

func (s *Server) read() {
	defer s.readers.Done()
	if s.batchConn != nil {
		s.readBatches()
		return
	}
	// Not a *net.UDPConn: no arrival stamps, the read time stands in.
	buf := make([]byte, rad.MaxPacketLength)
	for {
		n, addr, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.readFailed(err) {
				return
			}
			continue
		}
		s.handle(buf[:n], addr, 0)
	}
}

// maxSocketWait bounds the wait an arrival stamp may claim: a clock that
// jumped is not a packet that waited an hour.
const maxSocketWait = time.Minute

// socketWait is how long the datagram whose control messages are oob
// waited in the socket's buffer; zero without an arrival stamp.
func socketWait(oob []byte) time.Duration {
	at := arrivalStamp(oob)
	if at.IsZero() {
		return 0
	}
	return min(max(time.Since(at), 0), maxSocketWait)
}

// stampSpace is the control-message room each read needs: none unless
// the kernel stamps arrivals on this socket.
func (s *Server) stampSpace() int {
	if !s.stamped {
		return 0
	}
	return arrivalStampSpace
}

// ioBatch is how many datagrams one system call reads or writes.
const ioBatch = 64

// readBatches reads up to ioBatch datagrams per system call (recvmmsg on
// Linux): at tens of thousands of packets a second, a call per packet was
// a good part of the server's time.
func (s *Server) readBatches() {
	msgs := make([]ipv4.Message, ioBatch)
	bufs := make([]byte, ioBatch*rad.MaxPacketLength)
	space := s.stampSpace()
	oobs := make([]byte, ioBatch*space)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{bufs[i*rad.MaxPacketLength : (i+1)*rad.MaxPacketLength : (i+1)*rad.MaxPacketLength]}
		msgs[i].OOB = oobs[i*space : (i+1)*space : (i+1)*space]
	}
	for {
		n, err := s.batchConn.ReadBatch(msgs, 0)
		if err != nil {
			if s.readFailed(err) {
				return
			}
			continue
		}
		s.noteRead(n == len(msgs))
		for i := range msgs[:n] {
			ua, ok := msgs[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			s.handle(msgs[i].Buffers[0][:msgs[i].N], ua.AddrPort(), socketWait(msgs[i].OOB[:msgs[i].NN]))
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
func (s *Server) handle(raw []byte, addr netip.AddrPort, waited time.Duration) {
	// A packet's age counts from its arrival in the socket (Now's clock,
	// which tests move on).
	now := s.Now().Add(-waited)
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
	var retryQ *retryQueue
	if retry {
		retryQ = s.retryQueueOf(entry)
		if entry.retried.Load() >= entry.retryQuota {
			s.dropRetry(key, &s.Stats.RetryOverQuota)
			s.logDrop("overloaded: router over its share of the retry queue, not answering a retransmission of a shed packet", src, nil)
			return
		}
		if !s.retryRoom(retryQ, now) {
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
		s.deferRetry(item{rec: rec, addr: addr, id: p.Identifier, auth: p.Authenticator, secret: entry.secret, key: key, at: now}, fp, entry, raw, retryQ)
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
	it := item{rec: rec, addr: addr, id: p.Identifier, auth: p.Authenticator, secret: entry.secret, key: key, queued: entry.queued,
		overloadUntil: entry.overloadUntil, at: now}
	if !s.fresh.push(it) {
		entry.queued.Add(-1)
		s.dedupe.forget(key)
		s.Stats.count(nettportal.OutcomeQueueFull)
		s.logDrop("accounting queue full: not answering, the router will retransmit", src, nil)
	}
}

package sim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal"
)

// acctReq is one accounting request: the event it reports is fixed when it
// is made, so a retransmission carries the same counters and
// Event-Timestamp and only a larger Acct-Delay-Time.
type acctReq struct {
	epoch  uint64
	sess   *session // nil for Accounting-On
	seq    uint64
	status nettportal.StatusType
	event  time.Time

	username, mac, iface string
	sessionID            uint32
	ip                   netip.Addr
	sessionTime          uint32
	in, out              uint64
	cause                rfc2866.AcctTerminateCause

	// Owned by whoever holds it in flight.
	attempts int
	delay    uint32
	first    time.Time // wall clock of the first transmission
	raw      []byte
	slot     slot
	timer    *time.Timer
}

func (q *acctReq) ackedPacket(r *Router) AckedPacket {
	ap := AckedPacket{
		Router: r.cfg.Name, NASIP: r.cfg.Addr, Username: q.username, Status: q.status,
		InputOctets: q.in, OutputOctets: q.out, SessionTime: q.sessionTime, EventTime: q.event, Attempts: q.attempts,
	}
	if q.sess != nil {
		ap.SessionID = FormatSessionID(q.sessionID)
	}
	if q.status == nettportal.StatusStop {
		ap.Cause = q.cause.String()
	}
	return ap
}

// encode builds the Accounting-Request as RouterOS sends it, attribute by
// attribute through layeh's generated helpers.
func (q *acctReq) encode(r *Router, id byte) ([]byte, error) {
	p := rad.New(rad.CodeAccountingRequest, r.secret)
	p.Identifier = id
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	add(rfc2866.AcctStatusType_Add(p, rfc2866.AcctStatusType(q.status)))
	if q.sess != nil {
		add(rfc2865.ServiceType_Add(p, rfc2865.ServiceType_Value_FramedUser))
		add(rfc2865.FramedProtocol_Add(p, rfc2865.FramedProtocol_Value_PPP))
		add(rfc2865.NASPort_Add(p, rfc2865.NASPort(q.sessionID)))
		add(rfc2865.NASPortType_Add(p, rfc2865.NASPortType_Value_Ethernet))
		add(rfc2865.UserName_AddString(p, q.username))
		add(rfc2865.CallingStationID_AddString(p, q.mac))
		add(rfc2865.CalledStationID_AddString(p, r.cfg.Service))
		add(rfc2869.NASPortID_AddString(p, q.iface))
		add(rfc2866.AcctSessionID_AddString(p, FormatSessionID(q.sessionID)))
		add(rfc2865.FramedIPAddress_Add(p, q.ip.AsSlice()))
		add(rfc2866.AcctAuthentic_Add(p, rfc2866.AcctAuthentic_Value_RADIUS))
		if r.cfg.GroupAttr && q.sess.sub.plan.Name != "" {
			add(mikrotik.MikrotikGroup_AddString(p, q.sess.sub.plan.Name))
		}
	}
	add(rfc2869.EventTimestamp_Add(p, q.event))
	if q.status == nettportal.StatusInterimUpdate || q.status == nettportal.StatusStop {
		add(rfc2866.AcctSessionTime_Add(p, rfc2866.AcctSessionTime(q.sessionTime)))
		add(rfc2866.AcctInputOctets_Add(p, rfc2866.AcctInputOctets(uint32(q.in))))
		add(rfc2869.AcctInputGigawords_Add(p, rfc2869.AcctInputGigawords(uint32(q.in>>32))))
		add(rfc2866.AcctOutputOctets_Add(p, rfc2866.AcctOutputOctets(uint32(q.out))))
		add(rfc2869.AcctOutputGigawords_Add(p, rfc2869.AcctOutputGigawords(uint32(q.out>>32))))
		add(rfc2866.AcctInputPackets_Add(p, rfc2866.AcctInputPackets(packetsOf(q.in, avgUpPacket))))
		add(rfc2866.AcctOutputPackets_Add(p, rfc2866.AcctOutputPackets(packetsOf(q.out, avgDownPacket))))
	}
	if q.status == nettportal.StatusStop {
		add(rfc2866.AcctTerminateCause_Add(p, q.cause))
	}
	add(rfc2866.AcctDelayTime_Add(p, rfc2866.AcctDelayTime(q.delay)))
	add(rfc2865.NASIdentifier_AddString(p, r.cfg.Name))
	add(rfc2865.NASIPAddress_Add(p, r.cfg.Addr.AsSlice()))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build %v for %q: %w", q.status, q.username, err)
	}
	b, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode %v for %q: %w", q.status, q.username, err)
	}
	return b, nil
}

// slot is one Identifier on one socket. A socket has 256; a request holds
// one while it is in flight.
type slot struct {
	sock int
	id   byte
}

// acctClient sends a router's accounting requests over a few connected UDP
// sockets bound to the router's address, with many requests in flight at
// once, matched to answers by Identifier and Response Authenticator.
type acctClient struct {
	r           *Router
	socks       []*acctSock
	free        chan slot
	done        chan struct{}
	closeOnce   sync.Once
	outstanding atomic.Int64
}

type acctSock struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	pending [256]*acctReq
}

func newAcctClient(r *Router, nsock int) (*acctClient, error) {
	raddr, err := net.ResolveUDPAddr("udp", r.cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("accounting server %q: %w", r.cfg.Server, err)
	}
	c := &acctClient{r: r, free: make(chan slot, 256*nsock), done: make(chan struct{})}
	laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.Addr, 0))
	for i := range nsock {
		conn, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("accounting socket on %s: %w", r.cfg.Addr, err)
		}
		c.socks = append(c.socks, &acctSock{conn: conn})
		for id := range 256 {
			c.free <- slot{sock: i, id: byte(id)}
		}
	}
	for _, s := range c.socks {
		r.wg.Add(1)
		go c.read(s)
	}
	return c, nil
}

func (c *acctClient) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		for _, s := range c.socks {
			s.conn.Close()
		}
	})
	c.abandonAll()
}

// send puts a new request in flight.
func (c *acctClient) send(q *acctReq) {
	c.r.st.requests.Add(1)
	c.outstanding.Add(1)
	q.first = time.Now()
	c.transmit(q)
}

// transmit sends one attempt of q on a free slot. RFC 2866 5.2: changing
// Acct-Delay-Time makes a new request, so every attempt gets a fresh
// Identifier (and Request Authenticator); answers to an earlier attempt no
// longer match and count as stale.
func (c *acctClient) transmit(q *acctReq) {
	if q.epoch != c.r.epoch.Load() {
		c.finish(q, &c.r.st.abandoned)
		return
	}
	var sl slot
	select {
	case sl = <-c.free:
	case <-c.done:
		c.finish(q, &c.r.st.abandoned)
		return
	}
	raw, err := q.encode(c.r, sl.id)
	if err != nil {
		c.free <- sl
		c.r.log.Error().Err(err).Msg("cannot build accounting request")
		c.finish(q, &c.r.st.givenUp)
		return
	}
	s := c.socks[sl.sock]
	s.mu.Lock()
	q.raw, q.slot = raw, sl
	q.attempts++
	s.pending[sl.id] = q
	q.timer = time.AfterFunc(c.r.timeout, func() { c.expire(q, sl) })
	s.mu.Unlock()
	c.r.st.transmissions.Add(1)
	if c.r.lost() {
		return
	}
	if _, err := s.conn.Write(raw); err != nil {
		// The retransmission timer deals with it, as with a lost packet.
		c.r.log.Debug().Err(err).Msg("accounting send failed")
	}
}

// expire retransmits q when its attempt on sl went unanswered.
func (c *acctClient) expire(q *acctReq, sl slot) {
	s := c.socks[sl.sock]
	s.mu.Lock()
	if s.pending[sl.id] != q {
		s.mu.Unlock()
		return
	}
	s.pending[sl.id] = nil
	s.mu.Unlock()
	c.free <- sl
	if q.attempts > c.r.retries {
		c.r.log.Debug().Str("status", q.status.String()).Str("user", q.username).Int("attempts", q.attempts).
			Msg("accounting request given up")
		c.finish(q, &c.r.st.givenUp)
		return
	}
	// Acct-Delay-Time is how long the event has waited, and it must grow.
	q.delay = max(q.delay+1, uint32(time.Since(q.first)/time.Second))
	c.r.st.retransmits.Add(1)
	c.transmit(q)
}

func (c *acctClient) finish(q *acctReq, counter *atomic.Uint64) {
	counter.Add(1)
	c.outstanding.Add(-1)
	c.r.changed()
}

// read takes answers off one socket.
func (c *acctClient) read(s *acctSock) {
	defer c.r.wg.Done()
	buf := make([]byte, rad.MaxPacketLength+1)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			// ICMP port unreachable surfaces here while the server is down:
			// the requests time out and are retransmitted.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n < 20 || c.r.lost() {
			continue
		}
		resp := buf[:n]
		s.mu.Lock()
		q := s.pending[resp[1]]
		if q == nil || rad.Code(resp[0]) != rad.CodeAccountingResponse || !rad.IsAuthenticResponse(resp, q.raw, c.r.secret) {
			s.mu.Unlock()
			c.r.st.stale.Add(1)
			continue
		}
		s.pending[resp[1]] = nil
		q.timer.Stop()
		s.mu.Unlock()
		c.free <- q.slot
		c.outstanding.Add(-1)
		c.r.acked(q)
	}
}

// abandonAll forgets every request in flight (reboot, close).
func (c *acctClient) abandonAll() {
	for _, s := range c.socks {
		var freed []*acctReq
		s.mu.Lock()
		for id, q := range s.pending {
			if q != nil {
				q.timer.Stop()
				s.pending[id] = nil
				freed = append(freed, q)
			}
		}
		s.mu.Unlock()
		for _, q := range freed {
			c.free <- q.slot
			c.finish(q, &c.r.st.abandoned)
		}
	}
}

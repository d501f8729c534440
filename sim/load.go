package sim

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal"
)

// LoadConfig describes a load run: Routers routers on consecutive loopback
// addresses, each running SessionsPerRouter sessions; every session sends
// Start, InterimsPerSession Interim-Updates and a Stop, each only after the
// previous one was answered.
type LoadConfig struct {
	Server string
	Secret string
	// Routers are at BaseIP upwards; zero BaseIP: 127.0.0.11. Register
	// NASRouters() before the run so the server knows them.
	Routers            int
	BaseIP             netip.Addr
	SessionsPerRouter  int
	InterimsPerSession int
	// Concurrency is the number of requests in flight in total; zero:
	// 1024. It is raised to Routers so every router runs.
	Concurrency int
	// Rate caps packets per second in total (retransmissions included);
	// zero: as fast as the server answers.
	Rate int
	// Timeout before a retransmission; zero: 1s. Retries before a request
	// fails; zero: 5, negative: none.
	Timeout time.Duration
	Retries int
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Sent        uint64 // requests, retransmissions not counted
	Acked       uint64
	Retransmits uint64
	Failed      uint64 // requests without an answer after every retry
	Duration    time.Duration
	// Latency from a request's first transmission to its answer.
	P50, P90, P99, Max time.Duration
	// Ledger has one entry per session: its newest acknowledged packet.
	Ledger []LedgerEntry
}

// PacketsPerSecond is the acknowledged request rate.
func (r LoadResult) PacketsPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Duration.Seconds()
}

// LedgerEntry is the newest acknowledged packet of one load session, so a
// checker can verify that radacct has at least that.
type LedgerEntry struct {
	Router       string
	NASIP        netip.Addr
	Username     string
	SessionID    string
	Status       nettportal.StatusType // 0 when nothing was acknowledged
	InputOctets  uint64
	OutputOctets uint64
	SessionTime  uint32
	Acked        int // packets of the session acknowledged
}

func (c *LoadConfig) defaults() error {
	if c.Routers <= 0 || c.SessionsPerRouter <= 0 || c.InterimsPerSession < 0 {
		return fmt.Errorf("sim: load: need Routers and SessionsPerRouter > 0, InterimsPerSession >= 0")
	}
	if c.SessionsPerRouter > 9_999_999 || c.Routers > 999 {
		return fmt.Errorf("sim: load: at most 999 routers and 9999999 sessions per router")
	}
	if c.Secret == "" || c.Server == "" {
		return fmt.Errorf("sim: load: need Server and Secret")
	}
	if !c.BaseIP.IsValid() {
		c.BaseIP = DefaultBaseIP()
	}
	if !c.BaseIP.Is4() || !c.BaseIP.IsLoopback() || !addrAdd(c.BaseIP, c.Routers-1).IsLoopback() {
		return fmt.Errorf("sim: load: routers from %s leave 127.0.0.0/8", c.BaseIP)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1024
	}
	c.Concurrency = max(c.Concurrency, c.Routers)
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	switch {
	case c.Retries == 0:
		c.Retries = DefaultRetries
	case c.Retries < 0:
		c.Retries = 0
	}
	return nil
}

func loadRouterName(i int) string { return fmt.Sprintf("load-%03d", i+1) }

// NASRouters are the load routers as the server's `nas` table needs them
// (no CoA listener, no API).
func (c LoadConfig) NASRouters() []nettportal.Router {
	base := c.BaseIP
	if !base.IsValid() {
		base = DefaultBaseIP()
	}
	out := make([]nettportal.Router, c.Routers)
	for i := range out {
		out[i] = nettportal.Router{Name: loadRouterName(i), IP: addrAdd(base, i), Secret: c.Secret,
			Description: "nettportal sim load router"}
	}
	return out
}

// virtualInterim spaces a load session's events in Event-Timestamp, so the
// rows look like five-minute interims although the run takes seconds.
const virtualInterim = 300 * time.Second

// Offsets of the patched fields inside the templates.
type loadTemplate struct {
	common                       []byte // per router
	user, sid, port, mac, framed int
	tails                        [3][]byte // Start, Interim, Stop
	tailOff                      [3][256]int
}

// valueOffsets maps attribute types to their value offsets in attrs
// (0 when absent; offsets are shifted by one so 0 stays free).
func valueOffsets(attrs []byte) [256]int {
	var off [256]int
	for i := 0; i+2 <= len(attrs); i += int(attrs[i+1]) {
		off[attrs[i]] = i + 2 + 1
		if attrs[i+1] < 2 {
			break
		}
	}
	return off
}

func attrsOf(p *rad.Packet) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return b[20:], nil
}

// newLoadTemplates builds, through layeh, one attribute block per router
// with placeholders of the final widths, and the status tails; packets are
// then these bytes with a few fields overwritten.
func newLoadTemplates(c LoadConfig, tag string) ([]loadTemplate, error) {
	var tails [3][]byte
	var tailOff [3][256]int
	for i, st := range []rfc2866.AcctStatusType{rfc2866.AcctStatusType_Value_Start, rfc2866.AcctStatusType_Value_InterimUpdate, rfc2866.AcctStatusType_Value_Stop} {
		p := &rad.Packet{Code: rad.CodeAccountingRequest}
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		add(rfc2866.AcctStatusType_Add(p, st))
		add(rfc2869.EventTimestamp_Add(p, time.Unix(1, 0)))
		if i > 0 {
			add(rfc2866.AcctSessionTime_Add(p, 0))
			add(rfc2866.AcctInputOctets_Add(p, 0))
			add(rfc2869.AcctInputGigawords_Add(p, 0))
			add(rfc2866.AcctOutputOctets_Add(p, 0))
			add(rfc2869.AcctOutputGigawords_Add(p, 0))
			add(rfc2866.AcctInputPackets_Add(p, 0))
			add(rfc2866.AcctOutputPackets_Add(p, 0))
		}
		if i == 2 {
			add(rfc2866.AcctTerminateCause_Add(p, rfc2866.AcctTerminateCause_Value_UserRequest))
		}
		add(rfc2866.AcctDelayTime_Add(p, 0))
		b, err := attrsOf(p)
		if err = errors.Join(append(errs, err)...); err != nil {
			return nil, fmt.Errorf("sim: load: build template: %w", err)
		}
		tails[i], tailOff[i] = b, valueOffsets(b)
	}
	out := make([]loadTemplate, c.Routers)
	for r := range out {
		addr := addrAdd(c.BaseIP, r)
		p := &rad.Packet{Code: rad.CodeAccountingRequest}
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		add(rfc2865.ServiceType_Add(p, rfc2865.ServiceType_Value_FramedUser))
		add(rfc2865.FramedProtocol_Add(p, rfc2865.FramedProtocol_Value_PPP))
		add(rfc2865.NASPort_Add(p, 0))
		add(rfc2865.NASPortType_Add(p, rfc2865.NASPortType_Value_Ethernet))
		add(rfc2865.UserName_AddString(p, loadUsername(tag, r, 0)))
		add(rfc2865.CallingStationID_AddString(p, loadMAC(r, 0)))
		add(rfc2865.CalledStationID_AddString(p, "pppoe-load"))
		add(rfc2869.NASPortID_AddString(p, "vlan100"))
		add(rfc2866.AcctSessionID_AddString(p, "00000000"))
		add(rfc2865.FramedIPAddress_Add(p, subscriberIP(addr, 0).AsSlice()))
		add(rfc2866.AcctAuthentic_Add(p, rfc2866.AcctAuthentic_Value_RADIUS))
		add(rfc2865.NASIdentifier_AddString(p, loadRouterName(r)))
		add(rfc2865.NASIPAddress_Add(p, addr.AsSlice()))
		b, err := attrsOf(p)
		if err = errors.Join(append(errs, err)...); err != nil {
			return nil, fmt.Errorf("sim: load: build template: %w", err)
		}
		off := valueOffsets(b)
		out[r] = loadTemplate{
			common: b, user: off[rfc2865.UserName_Type] - 1, sid: off[rfc2866.AcctSessionID_Type] - 1,
			port: off[rfc2865.NASPort_Type] - 1, mac: off[rfc2865.CallingStationID_Type] - 1,
			framed: off[rfc2865.FramedIPAddress_Type] - 1, tails: tails, tailOff: tailOff,
		}
	}
	return out, nil
}

// loadUsername is fixed-width for a run, so templates can be patched.
func loadUsername(tag string, router, s int) string {
	return fmt.Sprintf("ld%s-%03d-%07d", tag, router+1, s+1)
}

func loadMAC(router, s int) string {
	return fmt.Sprintf("02:%02X:%02X:%02X:%02X:%02X", byte(router>>8), byte(router), byte(s>>16), byte(s>>8), byte(s))
}

// putDecimal writes v into b right-aligned with leading zeros.
func putDecimal(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

func putHex(b []byte, v uint64, upper bool) {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
}

type ledgerRec struct {
	status      uint8
	acked       uint16
	in, out     uint64
	sessionTime uint32
}

// loadSlot is one request in flight: one Identifier on one socket,
// running sessions one after another.
type loadSlot struct {
	id       byte
	active   bool
	sess     int // within the router
	step     int // 0 Start, 1..K Interim, K+1 Stop
	attempts int
	first    time.Duration // since the run's start
	sent     time.Duration
	up, down float64 // bytes per virtual second
	buf      []byte
	n        int
}

type loadSock struct {
	run    *loadRun
	router int
	conn   *net.UDPConn
	pc     *ipv4.PacketConn
	out    []ipv4.Message // built, not sent yet
	slots  []loadSlot
	byID   [256]*loadSlot
	hash   hash.Hash
	rng    *mrand.Rand
	hist   histogram

	sent, acked, retransmits, failed uint64
	nactive                          int

	rate    float64 // packets per second; 0 uncapped
	tokens  float64
	tokenAt time.Duration
	waiting []*loadSlot
}

type loadRun struct {
	cfg       LoadConfig
	secret    []byte
	tpl       []loadTemplate
	next      []atomic.Int64 // next session per router
	ledger    []ledgerRec
	start     time.Time
	base      time.Time // Event-Timestamp of every session's Start
	boot      uint8
	timeout   time.Duration
	checkEach time.Duration
}

func (lr *loadRun) now() time.Duration { return time.Since(lr.start) }

// RunLoad runs the load described by cfg and returns its figures. It
// returns when every session has sent its Stop, or when ctx ends (with
// ctx's error and the figures so far).
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if err := cfg.defaults(); err != nil {
		return LoadResult{}, err
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return LoadResult{}, fmt.Errorf("sim: load: server %q: %w", cfg.Server, err)
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand does not fail on Linux
	// The tag makes a run's usernames, and so its acctuniqueids, new, so
	// runs against one database do not collide.
	tag := fmt.Sprintf("%04x", uint16(rnd[0])<<8|uint16(rnd[1]))
	tpl, err := newLoadTemplates(cfg, tag)
	if err != nil {
		return LoadResult{}, err
	}
	lr := &loadRun{
		cfg: cfg, secret: []byte(cfg.Secret), tpl: tpl, next: make([]atomic.Int64, cfg.Routers),
		ledger: make([]ledgerRec, cfg.Routers*cfg.SessionsPerRouter), start: time.Now(),
		boot: 1 + rnd[2]%15, timeout: cfg.Timeout, checkEach: min(max(cfg.Timeout/4, time.Millisecond), 50*time.Millisecond),
	}
	lr.base = lr.start.Add(-time.Duration(cfg.InterimsPerSession+2) * virtualInterim).Truncate(time.Second)

	// Spread the slots over routers, then over sockets of at most 256.
	var socks []*loadSock
	closeAll := func() {
		for _, s := range socks {
			s.conn.Close()
		}
	}
	for r := range cfg.Routers {
		slots := cfg.Concurrency / cfg.Routers
		if r < cfg.Concurrency%cfg.Routers {
			slots++
		}
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrAdd(cfg.BaseIP, r), 0))
		for slots > 0 {
			n := min(slots, 256)
			slots -= n
			conn, err := net.DialUDP("udp", laddr, raddr)
			if err != nil {
				closeAll()
				return LoadResult{}, fmt.Errorf("sim: load: socket on %s: %w", laddr.IP, err)
			}
			_ = conn.SetReadBuffer(1 << 20)
			_ = conn.SetWriteBuffer(1 << 20)
			s := &loadSock{run: lr, router: r, conn: conn, pc: ipv4.NewPacketConn(conn), slots: make([]loadSlot, n), hash: md5.New(),
				rng: mrand.New(mrand.NewPCG(uint64(r), uint64(len(socks))))}
			if cfg.Rate > 0 {
				s.rate = float64(cfg.Rate) * float64(n) / float64(cfg.Concurrency)
				s.tokens = 1
			}
			bufs := make([]byte, n*512)
			for i := range s.slots {
				s.slots[i] = loadSlot{id: byte(i), buf: bufs[i*512 : (i+1)*512 : (i+1)*512]}
				s.byID[i] = &s.slots[i]
			}
			socks = append(socks, s)
		}
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop()
		}()
	}
	wg.Wait()
	closeAll()

	res := LoadResult{Duration: lr.now()}
	var h histogram
	for _, s := range socks {
		res.Sent += s.sent
		res.Acked += s.acked
		res.Retransmits += s.retransmits
		res.Failed += s.failed
		h.merge(&s.hist)
	}
	res.P50, res.P90, res.P99, res.Max = h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), h.max
	res.Ledger = make([]LedgerEntry, len(lr.ledger))
	for i, l := range lr.ledger {
		r, s := i/cfg.SessionsPerRouter, i%cfg.SessionsPerRouter
		res.Ledger[i] = LedgerEntry{
			Router: loadRouterName(r), NASIP: addrAdd(cfg.BaseIP, r), Username: loadUsername(tag, r, s),
			SessionID: FormatSessionID(sessionNumber(lr.boot, uint32(s+1))), Status: nettportal.StatusType(l.status),
			InputOctets: l.in, OutputOctets: l.out, SessionTime: l.sessionTime, Acked: int(l.acked),
		}
	}
	return res, ctx.Err()
}

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
func (s *loadSock) flush() {
	out := s.out
	for len(out) > 0 {
		n, err := s.pc.WriteBatch(out, 0)
		if n <= 0 || err != nil {
			// A full socket buffer or a closed socket is a lost packet;
			// the timer retransmits.
			n = max(n, 1)
		}
		out = out[n:]
	}
	clear(s.out)
	s.out = s.out[:0]
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
	t := &lr.tpl[s.router]
	b := sl.buf
	n := 20 + copy(b[20:], t.common)
	sess := sl.sess
	// "ldTTTT-RRR-SSSSSSS": the tag and router are in the template.
	putDecimal(b[20+t.user+11:20+t.user+18], sess+1)
	id := sessionNumber(lr.boot, uint32(sess+1))
	putHex(b[20+t.sid:20+t.sid+8], uint64(id), false)
	binary.BigEndian.PutUint32(b[20+t.port:], id)
	putHex(b[20+t.mac+9:20+t.mac+11], uint64(byte(sess>>16)), true)
	putHex(b[20+t.mac+12:20+t.mac+14], uint64(byte(sess>>8)), true)
	putHex(b[20+t.mac+15:20+t.mac+17], uint64(byte(sess)), true)
	ip := subscriberIP(addrAdd(lr.cfg.BaseIP, s.router), sess).As4()
	copy(b[20+t.framed:], ip[:])

	k := 0
	switch {
	case sl.step == 0:
	case sl.step <= lr.cfg.InterimsPerSession:
		k = 1
	default:
		k = 2
	}
	tailAt := n
	n += copy(b[n:], t.tails[k])
	off := func(typ byte) []byte { return b[tailAt+t.tailOff[k][typ]-1:] }
	elapsed := time.Duration(sl.step) * virtualInterim
	binary.BigEndian.PutUint32(off(byte(rfc2869.EventTimestamp_Type)), uint32(lr.base.Add(elapsed).Unix()))
	binary.BigEndian.PutUint32(off(byte(rfc2866.AcctDelayTime_Type)), uint32(max(sl.attempts-1, 0)))
	if k > 0 {
		in, out := s.counters(sl)
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctSessionTime_Type)), uint32(elapsed/time.Second))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputOctets_Type)), uint32(in))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctInputGigawords_Type)), uint32(in>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputOctets_Type)), uint32(out))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctOutputGigawords_Type)), uint32(out>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputPackets_Type)), packetsOf(in, avgUpPacket))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputPackets_Type)), packetsOf(out, avgDownPacket))
	}
	b[0] = byte(rad.CodeAccountingRequest)
	b[1] = sl.id
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	clear(b[4:20])
	// RFC 2866 3: MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
	s.hash.Reset()
	s.hash.Write(b[:n])
	s.hash.Write(lr.secret)
	s.hash.Sum(b[4:4:20])
	sl.n = n
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
	s.acked++
	s.hist.record(now - sl.first)
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

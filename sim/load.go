package sim

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"fmt"
	"hash"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

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
		return fmt.Errorf("load: need Routers and SessionsPerRouter > 0, InterimsPerSession >= 0")
	}
	if c.SessionsPerRouter > 9_999_999 || c.Routers > 999 {
		return fmt.Errorf("load: at most 999 routers and 9999999 sessions per router")
	}
	if c.Secret == "" || c.Server == "" {
		return fmt.Errorf("load: need Server and Secret")
	}
	if !c.BaseIP.IsValid() {
		c.BaseIP = DefaultBaseIP()
	}
	if !c.BaseIP.Is4() || !c.BaseIP.IsLoopback() || !addrAdd(c.BaseIP, c.Routers-1).IsLoopback() {
		return fmt.Errorf("load: routers from %s leave 127.0.0.0/8", c.BaseIP)
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
		return LoadResult{}, fmt.Errorf("load: server %q: %w", cfg.Server, err)
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
				return LoadResult{}, fmt.Errorf("load: socket on %s: %w", laddr.IP, err)
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

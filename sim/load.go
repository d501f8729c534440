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
	Latency
	// Ledger has one entry per session: its newest acknowledged packet.
	Ledger []LedgerEntry
}

// PacketsPerSecond is the acknowledged request rate.
func (r LoadResult) PacketsPerSecond() float64 { return perSecond(r.Acked, r.Duration) }

// Latency is how long requests waited, from a request's first
// transmission to its answer: the closed-loop and the open-loop run's.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// perSecond is n over d, 0 for no time.
func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// tally is what a run's senders count (a closed-loop socket, an open-loop
// router), summed into the run's result.
type tally struct {
	sent        uint64 // requests, retransmissions not counted
	answered    uint64
	retransmits uint64
	failed      uint64 // no answer after every retransmission
	hist        histogram
	// firstHist holds the answers to a first transmission; onRetry counts
	// the answers to a retransmission, each a timeout or more late.
	firstHist histogram
	onRetry   uint64
}

func (t *tally) add(o *tally) {
	t.sent += o.sent
	t.answered += o.answered
	t.retransmits += o.retransmits
	t.failed += o.failed
	t.hist.merge(&o.hist)
	t.firstHist.merge(&o.firstHist)
	t.onRetry += o.onRetry
}

func (t *tally) latency() Latency { return t.hist.latency() }

// recordAnswer records an answer, latency after the request's first
// transmission, to its attempt-th transmission.
func (t *tally) recordAnswer(latency time.Duration, attempt int) {
	t.answered++
	t.hist.record(latency)
	if attempt > 1 {
		t.onRetry++
		return
	}
	t.firstHist.record(latency)
}

// udpConns are a run's sockets, closed together when it ends.
type udpConns []*net.UDPConn

// dial opens a socket from laddr to the server, with 1 MiB buffers, and
// keeps it to close.
func (cs *udpConns) dial(laddr, raddr *net.UDPAddr) (*net.UDPConn, error) {
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		return nil, fmt.Errorf("socket on %s: %w", laddr.IP, err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	_ = conn.SetWriteBuffer(1 << 20)
	*cs = append(*cs, conn)
	return conn, nil
}

func (cs *udpConns) close() {
	for _, c := range *cs {
		c.Close()
	}
}

// retryDefaults fills a zero timeout (DefaultTimeout) and zero retries
// (def; negative: none): a router's, a load run's, an open-loop run's.
func retryDefaults(timeout *time.Duration, retries *int, def int) {
	if *timeout <= 0 {
		*timeout = DefaultTimeout
	}
	switch {
	case *retries == 0:
		*retries = def
	case *retries < 0:
		*retries = 0
	}
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
	retryDefaults(&c.Timeout, &c.Retries, DefaultRetries)
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

// entry is l as the ledger entry of session s (from 0) of router r of a
// run whose routers start at base, whose usernames carry tag and whose
// session ids boot.
func (l ledgerRec) entry(base netip.Addr, tag string, boot uint8, r, s int) LedgerEntry {
	return LedgerEntry{
		Router: loadRouterName(r), NASIP: addrAdd(base, r), Username: loadUsername(tag, r, s),
		SessionID: FormatSessionID(sessionNumber(boot, uint32(s+1))), Status: nettportal.StatusType(l.status),
		InputOctets: l.in, OutputOctets: l.out, SessionTime: l.sessionTime, Acked: int(l.acked),
	}
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
	tally

	nactive int

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
	var conns udpConns
	for r := range cfg.Routers {
		slots := cfg.Concurrency / cfg.Routers
		if r < cfg.Concurrency%cfg.Routers {
			slots++
		}
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrAdd(cfg.BaseIP, r), 0))
		for slots > 0 {
			n := min(slots, 256)
			slots -= n
			conn, err := conns.dial(laddr, raddr)
			if err != nil {
				conns.close()
				return LoadResult{}, fmt.Errorf("load: %w", err)
			}
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
	stop := context.AfterFunc(ctx, conns.close)
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
	conns.close()

	var t tally
	for _, s := range socks {
		t.add(&s.tally)
	}
	res := LoadResult{Sent: t.sent, Acked: t.answered, Retransmits: t.retransmits, Failed: t.failed,
		Duration: lr.now(), Latency: t.latency(), Ledger: make([]LedgerEntry, len(lr.ledger))}
	for i, l := range lr.ledger {
		res.Ledger[i] = l.entry(cfg.BaseIP, tag, lr.boot, i/cfg.SessionsPerRouter, i%cfg.SessionsPerRouter)
	}
	return res, ctx.Err()
}

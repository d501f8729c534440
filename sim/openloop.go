package sim

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

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
	// Latency is from a request's first transmission to its answer.
	Latency
	// AnsweredOnRetry counts the answers to a retransmission: each came a
	// router's timeout or more after the first transmission. FirstSend is
	// the latency of the other answers, to a first transmission.
	AnsweredOnRetry uint64
	FirstSend       Latency
	// Rounds is how many packets each session was scheduled to send.
	Rounds int
	// Ledger has one entry per session: its newest acknowledged packet.
	Ledger []LedgerEntry
}

// Goodput is the answered requests per second of the schedule.
func (r OpenLoopResult) Goodput() float64 { return perSecond(r.Answered, r.Duration) }

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
		return errors.New("open loop: need Rate and Duration > 0")
	}
	if c.Secret == "" || c.Server == "" {
		return errors.New("open loop: need Server and Secret")
	}
	if !c.BaseIP.IsValid() {
		c.BaseIP = DefaultBaseIP()
	}
	retryDefaults(&c.Timeout, &c.Retries, 3)
	if c.Tag == "" {
		var b [2]byte
		_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
		c.Tag = fmt.Sprintf("%02x%02x", b[0], b[1])
	}
	if len(c.Tag) != 4 {
		return fmt.Errorf("open loop: Tag %q must be 4 characters", c.Tag)
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
		return OpenLoopResult{}, fmt.Errorf("open loop: server %q: %w", cfg.Server, err)
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
		return OpenLoopResult{}, fmt.Errorf("open loop: %d sessions per router is too many", perRouter)
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
	var conns udpConns
	for r := range routers {
		rt := &olRouter{run: lr, index: r, hash: md5.New()}
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrAdd(cfg.BaseIP, r), 0))
		for range nsock {
			conn, err := conns.dial(laddr, raddr)
			if err != nil {
				conns.close()
				return OpenLoopResult{}, fmt.Errorf("open loop: %w", err)
			}
			s := &olSock{conn: conn, pc: ipv4.NewPacketConn(conn), free: make([]byte, 256)}
			for i := range s.free {
				s.free[i] = byte(255 - i)
			}
			rt.socks = append(rt.socks, s)
		}
		routers[r] = rt
	}
	stop := context.AfterFunc(ctx, conns.close)
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
	conns.close()
	readers.Wait()

	var t tally
	var noID uint64
	for _, rt := range routers {
		t.add(&rt.tally)
		noID += rt.noID
	}
	res := OpenLoopResult{Offered: t.sent, Answered: t.answered, Failed: t.failed, Retransmits: t.retransmits,
		NoIdentifier: noID, Duration: cfg.Duration, Latency: t.latency(), AnsweredOnRetry: t.onRetry, FirstSend: t.firstHist.latency(), Rounds: lr.rounds,
		Ledger: make([]LedgerEntry, sessions)}
	for s, l := range lr.ledger {
		// Session s is on router s mod Routers (see RunOpenLoop).
		res.Ledger[s] = l.entry(cfg.BaseIP, lr.tag, lr.boot, s%cfg.Routers, s/cfg.Routers)
	}
	return res, ctx.Err()
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

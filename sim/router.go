package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/routeros/routerostest"
)

// Defaults for RouterConfig's zero values.
const (
	DefaultAPIPort = 8728
	DefaultTimeout = time.Second
	DefaultRetries = 5
)

// RouterConfig describes one simulated router.
type RouterConfig struct {
	// Name is the RouterOS identity, sent as NAS-Identifier.
	Name string
	// Addr is the router's own loopback address (127.0.0.x): the source of
	// its accounting, its NAS-IP-Address, and where its CoA port and API
	// listen.
	Addr netip.Addr
	// Secret is the RADIUS shared secret for accounting and CoA.
	Secret string
	// Server is the accounting server's host:port.
	Server string
	// CoAPort is the `/radius incoming` port; zero means 3799, -1 none.
	CoAPort int
	// APIPort is the RouterOS API port; zero means 8728, -1 no API.
	APIPort int
	// APIUser and APIPassword are the API credentials; zero: admin with
	// an empty password.
	APIUser, APIPassword string
	// Interim is the interim-update interval; zero means 5 minutes.
	Interim time.Duration
	// Sessions is the number of PPPoE sessions kept up.
	Sessions int
	// Churn is the fraction of sessions replaced per interim interval
	// (they end with a Stop and others log in).
	Churn float64
	// Loss is the probability that a packet, in either direction, is lost.
	Loss float64
	// AccountingOnAtBoot sends Accounting-On when the router starts and
	// after each Reboot without an explicit choice. RouterOS does not
	// document it, so it is off by default.
	AccountingOnAtBoot bool
	// Seed makes usernames, MACs and traffic reproducible. Packet loss is
	// drawn from a shared source and is not reproducible.
	Seed int64
	// Now is the router's clock; zero: time.Now. Counters, session times
	// and Event-Timestamp follow it.
	Now func() time.Time
	// Timeout is how long an accounting request waits for an answer
	// before it is retransmitted; zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is the number of retransmissions before a request is given
	// up; zero means DefaultRetries, negative none.
	Retries int
	// BootDigit is the first hex digit of session ids until a Reboot; zero
	// means 8, what a freshly installed RouterOS shows. FirstSession is the
	// counter of the first session id. A router that keeps its database
	// across runs (demo) sets them, as a real router's ids never repeat.
	BootDigit    uint8
	FirstSession uint32
	// Service is the PPPoE service name, sent as Called-Station-Id; zero:
	// "pppoe-" + Name.
	Service string
	// Redial is how long a CPE waits before it dials again after the
	// operator ended its session (Disconnect-Request, /ppp/active/remove);
	// zero: it stays offline, as the test fleets expect. Real CPEs redial
	// within seconds.
	Redial time.Duration
	// Plans are the service plans subscribers are spread over, in order
	// (subscriber i gets Plans[i%len]); zero: no plans, no profile.
	Plans []Plan
	// GroupAttr sends the plan's name as Mikrotik-Group in accounting
	// (a RADIUS-authenticated router); without it the plan is the profile
	// of the subscriber's /ppp/secret in the fake API.
	GroupAttr bool
	// DayLength compresses a day's traffic curve (quiet at night, busy in
	// the evening) into this period, so charts move within minutes; zero:
	// rates do not follow the time of day.
	DayLength time.Duration
	// OnAck, when set, is called for every acknowledged accounting
	// request (from the router's goroutines, never under its locks), so a
	// load checker can compare with the database later.
	OnAck func(AckedPacket)
}

// subscriber is a PPPoE customer of the router; it keeps its username, MAC
// and address across sessions.
type subscriber struct {
	name, mac, iface string
	ip               netip.Addr
	plan             Plan
}

// session is a subscriber's current PPPoE session.
type session struct {
	sub         *subscriber
	id          uint32
	start       time.Time
	traffic     traffic
	rateLimit   string
	nextInterim time.Time
	// Snapshot of the last report (interim, Stop).
	sessionTime uint32
	in, out     uint64
	// seq orders the session's packets, so a late ack of an older one does
	// not replace the newest in lastAcked.
	seq        uint64
	ackedSeq   uint64
	startAcked bool
	lastAcked  AckedPacket
	up         bool
}

// Router is one simulated MikroTik router. Create it with New, then Start.
type Router struct {
	cfg     RouterConfig
	log     zerolog.Logger
	secret  []byte
	timeout time.Duration
	retries int

	api  *routerostest.Server
	acct *acctClient
	coa  *net.UDPConn

	loss      atomic.Uint64 // math.Float64bits
	ignoreCoA atomic.Bool
	loseStops atomic.Bool
	epoch     atomic.Uint64 // bumped by Reboot: requests of an older epoch die
	st        stats

	mu        sync.Mutex
	rng       *rand.Rand
	boot      uint8
	seq       uint32
	subs      []*subscriber
	sessions  map[string]*session // online, by username
	ended     map[string]*session // last ended session, by username
	target    int
	redialAt  map[*subscriber]time.Time // disconnected by the operator, dialing again at
	nextChurn time.Time
	coaSeen   map[coaKey]coaAnswer
	notify    chan struct{} // closed and replaced when something waiters watch changes
	started   bool
	closed    bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and returns an unstarted router.
func New(cfg RouterConfig, log zerolog.Logger) (*Router, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("new router: empty Name")
	case !cfg.Addr.Is4():
		return nil, fmt.Errorf("new router %s: Addr %v is not an IPv4 address", cfg.Name, cfg.Addr)
	case cfg.Secret == "":
		return nil, fmt.Errorf("new router %s: empty Secret", cfg.Name)
	case cfg.Server == "":
		return nil, fmt.Errorf("new router %s: empty Server", cfg.Name)
	case cfg.Sessions < 0 || cfg.Churn < 0 || cfg.Churn > 1 || cfg.Loss < 0 || cfg.Loss > 1:
		return nil, fmt.Errorf("new router %s: Sessions, Churn or Loss out of range", cfg.Name)
	}
	if cfg.CoAPort == 0 {
		cfg.CoAPort = nettportal.DefaultCoAPort
	}
	if cfg.APIPort == 0 {
		cfg.APIPort = DefaultAPIPort
	}
	if cfg.APIUser == "" {
		cfg.APIUser = "admin"
	}
	if cfg.Interim <= 0 {
		cfg.Interim = nettportal.DefaultInterimInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Service == "" {
		cfg.Service = "pppoe-" + cfg.Name
	}
	for _, p := range cfg.Plans {
		if _, _, err := parseRateLimit(p.RateLimit); p.Name == "" || (p.RateLimit != "" && err != nil) {
			return nil, fmt.Errorf("router %s: plan %q with rate limit %q: want a name and an empty or valid limit", cfg.Name, p.Name, p.RateLimit)
		}
	}
	if cfg.BootDigit > 15 {
		return nil, fmt.Errorf("router %s: boot digit %d is not one hex digit", cfg.Name, cfg.BootDigit)
	}
	r := &Router{
		cfg:      cfg,
		log:      log.With().Str("router", cfg.Name).Logger(),
		secret:   []byte(cfg.Secret),
		timeout:  cfg.Timeout,
		retries:  cfg.Retries,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Addr.As4()[3])<<8|uint64(cfg.Addr.As4()[2]))),
		boot:     8, // what a freshly installed RouterOS shows
		seq:      cfg.FirstSession & 0xffffff,
		sessions: make(map[string]*session),
		ended:    make(map[string]*session),
		coaSeen:  make(map[coaKey]coaAnswer),
		notify:   make(chan struct{}),
		target:   cfg.Sessions,
		redialAt: make(map[*subscriber]time.Time),
	}
	if cfg.BootDigit != 0 {
		r.boot = cfg.BootDigit
	}
	retryDefaults(&r.timeout, &r.retries, DefaultRetries)
	r.loss.Store(math.Float64bits(cfg.Loss))
	return r, nil
}

// Name is the router's identity.
func (r *Router) Name() string { return r.cfg.Name }

// Addr is the router's loopback address.
func (r *Router) Addr() netip.Addr { return r.cfg.Addr }

// CoAAddr is where the router takes Disconnect and CoA requests.
func (r *Router) CoAAddr() string {
	return netip.AddrPortFrom(r.cfg.Addr, uint16(r.cfg.CoAPort)).String()
}

// APIAddr is the fake RouterOS API's host:port; empty without API.
func (r *Router) APIAddr() string {
	if r.cfg.APIPort < 0 {
		return ""
	}
	return netip.AddrPortFrom(r.cfg.Addr, uint16(r.cfg.APIPort)).String()
}

// NASRouter is the router as NettPortal's `nas` table should have it.
func (r *Router) NASRouter() nettportal.Router {
	nr := nettportal.Router{
		Name:            r.cfg.Name,
		IP:              r.cfg.Addr,
		Secret:          r.cfg.Secret,
		InterimInterval: r.cfg.Interim.Truncate(time.Second),
		Description:     "simulated by nettportal sim",
	}
	if r.cfg.CoAPort > 0 {
		nr.CoAPort = r.cfg.CoAPort
	}
	if addr := r.APIAddr(); addr != "" {
		nr.APIAddr, nr.APIUser, nr.APIPassword = addr, r.cfg.APIUser, r.cfg.APIPassword
	}
	if nr.InterimInterval < time.Second {
		nr.InterimInterval = time.Second
	}
	return nr
}

// API is the router's fake RouterOS API server (nil without API), for
// tests that want to inspect what clients asked.
func (r *Router) API() *routerostest.Server { return r.api }

// Start binds the router's sockets, starts its API, boots (Accounting-On
// when configured) and logs in its sessions. The router runs until Close
// or until ctx ends.
func (r *Router) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return fmt.Errorf("start router %s: already started", r.cfg.Name)
	}
	r.started = true
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.Close()
		}
	}()

	ctx, r.cancel = context.WithCancel(ctx)
	// A router needs one identifier per request in flight; each session has
	// rarely more than one, plus room for bursts at interim time.
	nsock := min(1+r.cfg.Sessions/128, 64)
	if r.acct, err = newAcctClient(r, nsock); err != nil {
		return fmt.Errorf("start router %s: %w", r.cfg.Name, err)
	}
	if r.cfg.CoAPort > 0 {
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.Addr, uint16(r.cfg.CoAPort)))
		if r.coa, err = net.ListenUDP("udp", laddr); err != nil {
			return fmt.Errorf("start router %s: CoA listener: %w", r.cfg.Name, err)
		}
		r.wg.Add(1)
		go r.serveCoA()
	}
	if r.cfg.APIPort > 0 {
		api := routerostest.NewUnstartedServer(r.APIAddr())
		api.Username, api.Password, api.Identity = r.cfg.APIUser, r.cfg.APIPassword, r.cfg.Name
		api.OnRemove = r.onAPIRemove
		if err := api.Start(); err != nil {
			return fmt.Errorf("start router %s: RouterOS API: %w", r.cfg.Name, err)
		}
		r.mu.Lock()
		r.api = api
		r.mu.Unlock()
	}
	if r.cfg.AccountingOnAtBoot {
		r.acct.send(r.accountingOn())
	}
	r.mu.Lock()
	now := r.cfg.Now()
	r.nextChurn = now.Add(r.cfg.Interim)
	reqs := r.refillLocked(now)
	r.mu.Unlock()
	r.sendAll(reqs)

	r.wg.Add(1)
	go r.loop(ctx)
	r.log.Debug().Stringer("addr", r.cfg.Addr).Int("sessions", r.cfg.Sessions).Msg("simulated router started")
	return nil
}

// Close stops the router: sockets, API and goroutines. Sessions vanish
// without Stop, like a router losing power.
func (r *Router) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	api := r.api
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	if r.coa != nil {
		r.coa.Close()
	}
	if r.acct != nil {
		r.acct.close()
	}
	if api != nil {
		api.Close()
	}
	r.wg.Wait()
	r.changed()
}

func (r *Router) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

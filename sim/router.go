package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

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

// AckedPacket is one acknowledged accounting request.
type AckedPacket struct {
	Router       string
	NASIP        netip.Addr
	Username     string // empty for Accounting-On
	SessionID    string
	Status       nettportal.StatusType
	InputOctets  uint64
	OutputOctets uint64
	SessionTime  uint32 // seconds
	EventTime    time.Time
	Cause        string // Acct-Terminate-Cause of a Stop
	// Attempts is the number of datagrams it took (1 without retransmit).
	Attempts int
}

// SessionInfo is a session as the simulated router has it.
type SessionInfo struct {
	Username  string
	SessionID string // Acct-Session-Id, e.g. "8100000c"
	NASPort   uint32 // the same number as SessionID
	IP        netip.Addr
	MAC       string // Calling-Station-Id, upper case
	Interface string // NAS-Port-Id, the PPPoE server interface
	Started   time.Time
	// The counters as of the last interim (or Stop): what the last
	// accounting packet reported and what the fake API shows.
	SessionTime   uint32
	InputOctets   uint64 // upload, interface rx-byte
	OutputOctets  uint64 // download, interface tx-byte
	InputPackets  uint32
	OutputPackets uint32
	// RateLimit is the Mikrotik-Rate-Limit applied by the last CoA.
	RateLimit string
	Up        bool
	// StartAcked reports that the server acknowledged the Start.
	StartAcked bool
	// LastAcked is the newest acknowledged packet of the session.
	LastAcked AckedPacket
}

// Stats counts what a router did.
type Stats struct {
	Requests      uint64 // accounting requests made (Start, Interim, Stop, On)
	Transmissions uint64 // datagrams sent or lost on the way, retransmissions included
	Retransmits   uint64
	Acked         uint64
	Lost          uint64 // datagrams the simulated loss ate, both directions
	GivenUp       uint64 // requests without an answer after every retry
	Abandoned     uint64 // requests in flight when the router rebooted or closed
	LostStops     uint64 // Stops never sent (LoseStops)
	Stale         uint64 // answers matching nothing in flight, or not authentic
	CoAACKs       uint64
	CoANAKs       uint64
	CoAIgnored    uint64 // requests ignored by IgnoreCoA
	CoADropped    uint64 // requests dropped for a bad authenticator or Message-Authenticator
}

func (s *Stats) add(o Stats) {
	s.Requests += o.Requests
	s.Transmissions += o.Transmissions
	s.Retransmits += o.Retransmits
	s.Acked += o.Acked
	s.Lost += o.Lost
	s.GivenUp += o.GivenUp
	s.Abandoned += o.Abandoned
	s.LostStops += o.LostStops
	s.Stale += o.Stale
	s.CoAACKs += o.CoAACKs
	s.CoANAKs += o.CoANAKs
	s.CoAIgnored += o.CoAIgnored
	s.CoADropped += o.CoADropped
}

type stats struct {
	requests, transmissions, retransmits, acked, lost, givenUp, abandoned, lostStops, stale atomic.Uint64
	coaACKs, coaNAKs, coaIgnored, coaDropped                                                atomic.Uint64
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
		return nil, errors.New("sim: new router: empty Name")
	case !cfg.Addr.Is4():
		return nil, fmt.Errorf("sim: new router %s: Addr %v is not an IPv4 address", cfg.Name, cfg.Addr)
	case cfg.Secret == "":
		return nil, fmt.Errorf("sim: new router %s: empty Secret", cfg.Name)
	case cfg.Server == "":
		return nil, fmt.Errorf("sim: new router %s: empty Server", cfg.Name)
	case cfg.Sessions < 0 || cfg.Churn < 0 || cfg.Churn > 1 || cfg.Loss < 0 || cfg.Loss > 1:
		return nil, fmt.Errorf("sim: new router %s: Sessions, Churn or Loss out of range", cfg.Name)
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
			return nil, fmt.Errorf("sim: router %s: plan %q with rate limit %q: want a name and an empty or valid limit", cfg.Name, p.Name, p.RateLimit)
		}
	}
	if cfg.BootDigit > 15 {
		return nil, fmt.Errorf("sim: router %s: boot digit %d is not one hex digit", cfg.Name, cfg.BootDigit)
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
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	switch {
	case r.retries == 0:
		r.retries = DefaultRetries
	case r.retries < 0:
		r.retries = 0
	}
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
		return fmt.Errorf("sim: start router %s: already started", r.cfg.Name)
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
		return fmt.Errorf("sim: start router %s: %w", r.cfg.Name, err)
	}
	if r.cfg.CoAPort > 0 {
		laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.Addr, uint16(r.cfg.CoAPort)))
		if r.coa, err = net.ListenUDP("udp", laddr); err != nil {
			return fmt.Errorf("sim: start router %s: CoA listener: %w", r.cfg.Name, err)
		}
		r.wg.Add(1)
		go r.serveCoA()
	}
	if r.cfg.APIPort > 0 {
		api := routerostest.NewUnstartedServer(r.APIAddr())
		api.Username, api.Password, api.Identity = r.cfg.APIUser, r.cfg.APIPassword, r.cfg.Name
		api.OnRemove = r.onAPIRemove
		if err := api.Start(); err != nil {
			return fmt.Errorf("sim: start router %s: RouterOS API: %w", r.cfg.Name, err)
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

// loop runs the interim timers and churn.
func (r *Router) loop(ctx context.Context) {
	defer r.wg.Done()
	step := min(max(r.cfg.Interim/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.round(false)
		}
	}
}

// Tick forces an interim round now: every session sends an Interim-Update
// with its current counters, and sessions missing since a reboot or churn
// log in again. Tests use it rather than waiting for the interval.
func (r *Router) Tick() { r.round(true) }

func (r *Router) round(force bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	now := r.cfg.Now()
	var reqs []*acctReq
	if !force && r.cfg.Churn > 0 && !now.Before(r.nextChurn) {
		r.nextChurn = now.Add(r.cfg.Interim)
		reqs = append(reqs, r.churnLocked(now)...)
	}
	for _, s := range r.sessions {
		if force || !now.Before(s.nextInterim) {
			reqs = append(reqs, r.reportLocked(s, now, nettportal.StatusInterimUpdate, 0))
			s.nextInterim = now.Add(r.cfg.Interim)
		}
	}
	reqs = append(reqs, r.refillLocked(now)...)
	r.mu.Unlock()
	r.sendAll(reqs)
}

// churnLocked ends a Churn fraction of the sessions; refill replaces them.
// Fractions accumulate as probability, so small routers churn too.
func (r *Router) churnLocked(now time.Time) []*acctReq {
	want := r.cfg.Churn * float64(len(r.sessions))
	n := int(want)
	if r.rng.Float64() < want-float64(n) {
		n++
	}
	var reqs []*acctReq
	for _, s := range r.sessions { // map order is random enough
		if n == 0 {
			break
		}
		n--
		cause := rfc2866.AcctTerminateCause_Value_UserRequest
		if r.rng.IntN(10) < 3 {
			cause = rfc2866.AcctTerminateCause_Value_LostCarrier
		}
		if req := r.endLocked(s, now, cause); req != nil {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// refillLocked logs in offline subscribers until the target is reached.
// A subscriber the operator disconnected holds its place until it redials,
// so another one does not log in instead.
func (r *Router) refillLocked(now time.Time) []*acctReq {
	for sub, at := range r.redialAt {
		if !now.Before(at) {
			delete(r.redialAt, sub)
		}
	}
	var reqs []*acctReq
	for i := 0; len(r.sessions)+len(r.redialAt) < r.target; i++ {
		if i == len(r.subs) {
			r.subs = append(r.subs, r.newSubscriberLocked(i))
		}
		sub := r.subs[i]
		if _, on := r.sessions[sub.name]; on {
			continue
		}
		if _, waiting := r.redialAt[sub]; waiting {
			continue
		}
		reqs = append(reqs, r.loginLocked(sub, now))
	}
	return reqs
}

// operatorEndedLocked accounts for a session the operator ended: the CPE
// dials again after Redial, or stays offline without it.
func (r *Router) operatorEndedLocked(s *session, now time.Time) {
	if r.cfg.Redial > 0 {
		r.redialAt[s.sub] = now.Add(r.cfg.Redial)
		return
	}
	r.target--
}

func (r *Router) newSubscriberLocked(i int) *subscriber {
	sub := &subscriber{
		name:  fmt.Sprintf("u%04d@%s", i+1, r.cfg.Name),
		mac:   drawMAC(r.rng),
		iface: "vlan" + strconv.Itoa(100+i%4),
		ip:    subscriberIP(r.cfg.Addr, i),
	}
	if len(r.cfg.Plans) > 0 {
		sub.plan = r.cfg.Plans[i%len(r.cfg.Plans)]
		if r.api != nil && !r.cfg.GroupAttr {
			r.api.SetSecret(routerostest.Secret{Name: sub.name, Profile: sub.plan.Name, Service: "pppoe"})
		}
	}
	return sub
}

func (r *Router) loginLocked(sub *subscriber, now time.Time) *acctReq {
	r.seq++
	s := &session{
		sub:         sub,
		id:          sessionNumber(r.boot, r.seq),
		start:       now,
		traffic:     drawTraffic(r.rng, now),
		rateLimit:   sub.plan.RateLimit,
		nextInterim: now.Add(r.cfg.Interim),
		up:          true,
	}
	s.traffic.day = r.cfg.DayLength
	s.traffic.reburst(r.rng)
	if sub.plan.RateLimit != "" {
		// Plans are validated in New.
		s.traffic.capUp, s.traffic.capDown, _ = parseRateLimit(sub.plan.RateLimit)
	}
	r.sessions[sub.name] = s
	if r.api != nil {
		r.api.SetSession(routerostest.Session{
			Name: sub.name, Service: "pppoe", CallerID: sub.mac, Address: sub.ip.String(),
			SessionID: s.id, Radius: true,
		})
	}
	return r.newReqLocked(s, nettportal.StatusStart, now, 0)
}

// reportLocked moves the session's counters to now, shows them in the API
// and makes the Interim-Update or Stop that reports them.
func (r *Router) reportLocked(s *session, now time.Time, status nettportal.StatusType, cause rfc2866.AcctTerminateCause) *acctReq {
	s.traffic.advance(now)
	s.traffic.reburst(r.rng)
	s.in, s.out = s.traffic.counters()
	s.sessionTime = uint32(max(now.Sub(s.start), 0) / time.Second)
	if r.api != nil && status == nettportal.StatusInterimUpdate {
		r.api.UpdateCounters(s.sub.name, s.in, s.out, now.Sub(s.start))
	}
	return r.newReqLocked(s, status, now, cause)
}

// endLocked ends a session and returns its Stop, nil when Stops are lost.
func (r *Router) endLocked(s *session, now time.Time, cause rfc2866.AcctTerminateCause) *acctReq {
	req := r.reportLocked(s, now, nettportal.StatusStop, cause)
	s.up = false
	delete(r.sessions, s.sub.name)
	r.ended[s.sub.name] = s
	if r.api != nil {
		r.api.RemoveSession(s.sub.name)
	}
	if r.loseStops.Load() {
		r.st.lostStops.Add(1)
		return nil
	}
	return req
}

func (r *Router) newReqLocked(s *session, status nettportal.StatusType, now time.Time, cause rfc2866.AcctTerminateCause) *acctReq {
	s.seq++
	return &acctReq{
		epoch: r.epoch.Load(), sess: s, seq: s.seq, status: status, event: now,
		username: s.sub.name, sessionID: s.id, ip: s.sub.ip, mac: s.sub.mac, iface: s.sub.iface,
		sessionTime: s.sessionTime, in: s.in, out: s.out, cause: cause,
	}
}

func (r *Router) accountingOn() *acctReq {
	return &acctReq{epoch: r.epoch.Load(), status: nettportal.StatusAccountingOn, event: r.cfg.Now()}
}

func (r *Router) sendAll(reqs []*acctReq) {
	for _, req := range reqs {
		if req != nil {
			r.acct.send(req)
		}
	}
}

// changed wakes every waiter.
func (r *Router) changed() {
	r.mu.Lock()
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
}

// acked records an acknowledged request; called from the socket readers.
func (r *Router) acked(req *acctReq) {
	ap := req.ackedPacket(r)
	r.mu.Lock()
	if s := req.sess; s != nil {
		if req.status == nettportal.StatusStart {
			s.startAcked = true
		}
		if req.seq > s.ackedSeq {
			s.ackedSeq, s.lastAcked = req.seq, ap
		}
	}
	r.st.acked.Add(1)
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
	if r.cfg.OnAck != nil {
		r.cfg.OnAck(ap)
	}
}

func (r *Router) lost() bool {
	p := math.Float64frombits(r.loss.Load())
	if p > 0 && rand.Float64() < p {
		r.st.lost.Add(1)
		return true
	}
	return false
}

func (s *session) info() SessionInfo {
	return SessionInfo{
		Username: s.sub.name, SessionID: FormatSessionID(s.id), NASPort: s.id, IP: s.sub.ip, MAC: s.sub.mac,
		Interface: s.sub.iface, Started: s.start, SessionTime: s.sessionTime, InputOctets: s.in, OutputOctets: s.out,
		InputPackets: packetsOf(s.in, avgUpPacket), OutputPackets: packetsOf(s.out, avgDownPacket),
		RateLimit: s.rateLimit, Up: s.up, StartAcked: s.startAcked, LastAcked: s.lastAcked,
	}
}

// Sessions returns the sessions that are up, ordered by username.
func (r *Router) Sessions() []SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SessionInfo, 0, len(r.sessions))
	for _, sub := range r.subs {
		if s, ok := r.sessions[sub.name]; ok {
			out = append(out, s.info())
		}
	}
	return out
}

// Session returns the subscriber's current session, or its last one (Up
// false) when it is offline; false when the router never had that user.
func (r *Router) Session(username string) (SessionInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[username]; ok {
		return s.info(), true
	}
	if s, ok := r.ended[username]; ok {
		return s.info(), true
	}
	return SessionInfo{}, false
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{
		Requests: r.st.requests.Load(), Transmissions: r.st.transmissions.Load(), Retransmits: r.st.retransmits.Load(),
		Acked: r.st.acked.Load(), Lost: r.st.lost.Load(), GivenUp: r.st.givenUp.Load(), Abandoned: r.st.abandoned.Load(),
		LostStops: r.st.lostStops.Load(), Stale: r.st.stale.Load(), CoAACKs: r.st.coaACKs.Load(),
		CoANAKs: r.st.coaNAKs.Load(), CoAIgnored: r.st.coaIgnored.Load(), CoADropped: r.st.coaDropped.Load(),
	}
}

// await waits until cond, evaluated under the router's lock, holds.
func (r *Router) await(ctx context.Context, what string, cond func() bool) error {
	for {
		r.mu.Lock()
		ok, ch, closed := cond(), r.notify, r.closed
		r.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			return fmt.Errorf("sim: router %s: await %s: router closed", r.cfg.Name, what)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sim: router %s: await %s: %w", r.cfg.Name, what, ctx.Err())
		}
	}
}

// AwaitAcked waits until n accounting requests in total have been
// acknowledged.
func (r *Router) AwaitAcked(ctx context.Context, n uint64) error {
	return r.await(ctx, fmt.Sprintf("%d acks", n), func() bool { return r.st.acked.Load() >= n })
}

// AwaitAllStarted waits until the Start of every session that is up has
// been acknowledged.
func (r *Router) AwaitAllStarted(ctx context.Context) error {
	return r.await(ctx, "all Starts acknowledged", func() bool {
		for _, s := range r.sessions {
			if !s.startAcked {
				return false
			}
		}
		return len(r.sessions) >= r.target
	})
}

// AwaitIdle waits until no accounting request is in flight (each was
// acknowledged, given up or abandoned).
func (r *Router) AwaitIdle(ctx context.Context) error {
	return r.await(ctx, "idle", func() bool { return r.acct.outstanding.Load() == 0 })
}

// SetLoss sets the probability that a packet, in either direction, is lost.
func (r *Router) SetLoss(p float64) { r.loss.Store(math.Float64bits(min(max(p, 0), 1))) }

// LoseStops makes the router end sessions without ever sending their Stop.
func (r *Router) LoseStops(b bool) { r.loseStops.Store(b) }

// IgnoreCoA makes the router drop every Disconnect and CoA request
// unanswered, like a router without `/radius incoming accept=yes`.
func (r *Router) IgnoreCoA(b bool) { r.ignoreCoA.Store(b) }

// SetAPIUnreachable makes the RouterOS API drop every connection.
func (r *Router) SetAPIUnreachable(b bool) {
	if r.api != nil {
		r.api.SetUnreachable(b)
	}
}

// Reboot simulates a reboot: every session vanishes without a Stop,
// requests in flight are forgotten, the boot digit of new session ids
// changes, and with withAccountingOn the router announces itself with
// Accounting-On. Subscribers log in again at the next round (or Tick).
func (r *Router) Reboot(withAccountingOn bool) {
	r.mu.Lock()
	r.epoch.Add(1)
	r.boot = nextBoot(r.boot)
	r.seq = 0
	for name, s := range r.sessions {
		s.up = false
		r.ended[name] = s
		delete(r.sessions, name)
	}
	clear(r.coaSeen)
	api := r.api
	r.mu.Unlock()
	r.acct.abandonAll()
	if api != nil {
		api.Reboot()
	}
	if withAccountingOn {
		r.acct.send(r.accountingOn())
	}
	r.changed()
}

// Connect logs in n more sessions now and returns their usernames; the
// router keeps them up from then on.
func (r *Router) Connect(n int) []string {
	r.mu.Lock()
	r.target += n
	before := make(map[string]bool, len(r.sessions))
	for name := range r.sessions {
		before[name] = true
	}
	reqs := r.refillLocked(r.cfg.Now())
	var names []string
	for name := range r.sessions {
		if !before[name] {
			names = append(names, name)
		}
	}
	r.mu.Unlock()
	r.sendAll(reqs)
	return names
}

// Disconnect ends the user's session with a Stop carrying cause; the
// subscriber stays offline. It returns false when the user has no session.
func (r *Router) Disconnect(username string, cause rfc2866.AcctTerminateCause) bool {
	r.mu.Lock()
	s, ok := r.sessions[username]
	var req *acctReq
	if ok {
		r.target--
		req = r.endLocked(s, r.cfg.Now(), cause)
	}
	r.mu.Unlock()
	if req != nil {
		r.acct.send(req)
	}
	return ok
}

// onAPIRemove ends a session a client removed with /ppp/active/remove, as
// RouterOS does: a Stop with Admin-Reset.
func (r *Router) onAPIRemove(rs routerostest.Session) {
	r.mu.Lock()
	s, ok := r.sessions[rs.Name]
	var req *acctReq
	if ok && s.id == rs.SessionID {
		r.operatorEndedLocked(s, r.cfg.Now())
		req = r.endLocked(s, r.cfg.Now(), rfc2866.AcctTerminateCause_Value_AdminReset)
	}
	r.mu.Unlock()
	if req != nil {
		r.acct.send(req)
	}
}

package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
)

// DefaultBaseIP returns 127.0.0.11, where fleets start by default.
func DefaultBaseIP() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 11}) }

// FleetConfig describes a fleet of identical simulated routers on
// consecutive loopback addresses. Fields mean what RouterConfig's do.
type FleetConfig struct {
	Routers int
	// BaseIP is the first router's address; zero: 127.0.0.11.
	BaseIP netip.Addr
	// NamePrefix names the routers NamePrefix01, NamePrefix02...; zero: "sim-".
	NamePrefix         string
	Secret             string
	Server             string
	Sessions           int // per router
	Interim            time.Duration
	Churn              float64
	Loss               float64
	CoAPort            int
	APIPort            int
	APIUser            string
	APIPassword        string
	AccountingOnAtBoot bool
	BootDigit          uint8
	FirstSession       uint32
	Seed               int64
	Now                func() time.Time
	Timeout            time.Duration
	Retries            int
	OnAck              func(AckedPacket)
	Redial             time.Duration
	Plans              []Plan
	DayLength          time.Duration
	// Configure, when set, adjusts router i's configuration (from 0)
	// before it is made, so a fleet can mix routers: one without API
	// access, some sending Mikrotik-Group.
	Configure func(i int, c *RouterConfig)
}

// Fleet is a set of simulated routers.
type Fleet struct {
	Routers []*Router
}

// addrAdd returns a+n within IPv4.
func addrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// NewFleet makes cfg.Routers unstarted routers.
func NewFleet(cfg FleetConfig, log zerolog.Logger) (*Fleet, error) {
	if cfg.Routers <= 0 {
		return nil, fmt.Errorf("new fleet: %d routers", cfg.Routers)
	}
	if !cfg.BaseIP.IsValid() {
		cfg.BaseIP = DefaultBaseIP()
	}
	if !cfg.BaseIP.Is4() || !cfg.BaseIP.IsLoopback() || !addrAdd(cfg.BaseIP, cfg.Routers-1).IsLoopback() {
		return nil, fmt.Errorf("new fleet: %d routers from %s leave 127.0.0.0/8", cfg.Routers, cfg.BaseIP)
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "sim-"
	}
	f := &Fleet{}
	for i := range cfg.Routers {
		rc := RouterConfig{
			Name: fmt.Sprintf("%s%02d", cfg.NamePrefix, i+1), Addr: addrAdd(cfg.BaseIP, i),
			Secret: cfg.Secret, Server: cfg.Server, CoAPort: cfg.CoAPort, APIPort: cfg.APIPort,
			APIUser: cfg.APIUser, APIPassword: cfg.APIPassword, Interim: cfg.Interim, Sessions: cfg.Sessions,
			Churn: cfg.Churn, Loss: cfg.Loss, AccountingOnAtBoot: cfg.AccountingOnAtBoot, Seed: cfg.Seed + int64(i),
			BootDigit: cfg.BootDigit, FirstSession: cfg.FirstSession,
			Now: cfg.Now, Timeout: cfg.Timeout, Retries: cfg.Retries, OnAck: cfg.OnAck,
			Redial: cfg.Redial, Plans: cfg.Plans, DayLength: cfg.DayLength,
		}
		if cfg.Configure != nil {
			cfg.Configure(i, &rc)
		}
		r, err := New(rc, log)
		if err != nil {
			return nil, fmt.Errorf("new fleet: %w", err)
		}
		f.Routers = append(f.Routers, r)
	}
	return f, nil
}

// Start starts every router; on error the ones started are closed.
func (f *Fleet) Start(ctx context.Context) error {
	for i, r := range f.Routers {
		if err := r.Start(ctx); err != nil {
			for _, s := range f.Routers[:i] {
				s.Close()
			}
			return fmt.Errorf("start fleet: %w", err)
		}
	}
	return nil
}

// Close closes every router.
func (f *Fleet) Close() {
	for _, r := range f.Routers {
		r.Close()
	}
}

// Router returns the router with that name, or nil.
func (f *Fleet) Router(name string) *Router {
	for _, r := range f.Routers {
		if r.Name() == name {
			return r
		}
	}
	return nil
}

// Stats sums the routers' counters.
func (f *Fleet) Stats() Stats {
	var s Stats
	for _, r := range f.Routers {
		s.add(r.Stats())
	}
	return s
}

// SessionCount is the number of sessions up in the fleet.
func (f *Fleet) SessionCount() int {
	n := 0
	for _, r := range f.Routers {
		r.mu.Lock()
		n += len(r.sessions)
		r.mu.Unlock()
	}
	return n
}

// AwaitAllStarted waits until every router's sessions have their Start
// acknowledged.
func (f *Fleet) AwaitAllStarted(ctx context.Context) error {
	for _, r := range f.Routers {
		if err := r.AwaitAllStarted(ctx); err != nil {
			return err
		}
	}
	return nil
}

// AwaitIdle waits until no router has a request in flight.
func (f *Fleet) AwaitIdle(ctx context.Context) error {
	for _, r := range f.Routers {
		if err := r.AwaitIdle(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Tick forces an interim round on every router.
func (f *Fleet) Tick() {
	for _, r := range f.Routers {
		r.Tick()
	}
}

// Register creates or updates the routers in NettPortal's `nas` table
// (matched by name, else by address), so a server knows their secrets, CoA
// ports and API credentials.
func (f *Fleet) Register(ctx context.Context, rs nettportal.RouterStore) error {
	existing, err := rs.Routers(ctx)
	if err != nil {
		return fmt.Errorf("register fleet: %w", err)
	}
	byName := make(map[string]nettportal.Router, len(existing))
	byIP := make(map[netip.Addr]nettportal.Router, len(existing))
	for _, e := range existing {
		byName[e.Name], byIP[e.IP] = e, e
	}
	var errs []error
	for _, r := range f.Routers {
		nr := r.NASRouter()
		e, ok := byName[nr.Name]
		if !ok {
			e, ok = byIP[nr.IP]
		}
		if ok {
			nr.ID = e.ID
			if err := rs.UpdateRouter(ctx, &nr); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := rs.CreateRouter(ctx, &nr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register fleet: %w", err)
	}
	return nil
}

// TerminateCause parses an Acct-Terminate-Cause name such as "User-Request"
// or "Admin-Reset".
func TerminateCause(name string) (rfc2866.AcctTerminateCause, error) {
	for v, s := range rfc2866.AcctTerminateCause_Strings {
		if s == name {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown Acct-Terminate-Cause %q: %w", name, nettportal.ErrInvalid)
}

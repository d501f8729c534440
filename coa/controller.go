package coa

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// rangeRouterFinder is a nettportal.RouterFinder that also knows the nas rows that are
// CIDR ranges of FreeRADIUS clients (store.DB): a session of one of their
// NASes is acted on at its NAS address with the range's secret. A finder
// without it leaves such sessions without a router.
type rangeRouterFinder interface {
	RangeRouter(ctx context.Context, rangeID int64, nasIP netip.Addr) (nettportal.Router, error)
}

// dest is the router a session's requests go to; inRange is set when it is
// a NAS of a CIDR range row, which has no RouterOS API to fall back to.
type dest struct {
	r       nettportal.Router
	inRange bool
}

// routerOf finds the router of session s.
func (c *Controller) routerOf(ctx context.Context, s nettportal.Session) (dest, error) {
	r, err := c.Routers.Router(ctx, fmt.Sprint(s.RouterID))
	if err == nil {
		return dest{r: r}, nil
	}
	rf, ok := c.Routers.(rangeRouterFinder)
	if !ok || !errors.Is(err, nettportal.ErrNotFound) {
		return dest{r: r}, err
	}
	rr, rerr := rf.RangeRouter(ctx, s.RouterID, s.NASIP)
	if rerr != nil {
		return dest{r: rr}, rerr
	}
	return dest{r: rr, inRange: true}, nil
}

// Controller implements nettportal.SessionControl: it finds the session and
// its router, applies the disconnect policy or sends a CoA, and records
// every attempt in the audit.
type Controller struct {
	Sessions nettportal.SessionStore
	Routers  nettportal.RouterFinder
	Audit    nettportal.AuditStore
	// Disconnector sends the requests; zero value: default timeouts.
	Disconnector Disconnector
	// API returns the RouterOS API fallback for a router with API access;
	// nil disables the fallback.
	API func(nettportal.Router) Remover
	// Concurrency bounds bulk disconnects. Zero: 16.
	Concurrency int
	// Timeout bounds one session's whole disconnect (RADIUS retries and the
	// API). Zero: 15s.
	Timeout time.Duration
	// OnResult, when set, learns whether a router answered CoA at all, for
	// the routers page.
	OnResult func(routerID int64, answered bool)
	Log      zerolog.Logger
}

var _ nettportal.SessionControl = (*Controller)(nil)

func (c *Controller) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 15 * time.Second
}

// target is the session and router a request acts on.
func (c *Controller) target(ctx context.Context, id int64) (nettportal.Session, dest, error) {
	s, err := c.Sessions.Session(ctx, id)
	if err != nil {
		return s, dest{}, err
	}
	if !s.Open() {
		return s, dest{}, fmt.Errorf("session %d (%s) has already ended: %w", id, s.Username, nettportal.ErrConflict)
	}
	if s.RouterID == 0 {
		return s, dest{}, fmt.Errorf("session %d has no known router: %w", id, nettportal.ErrNotFound)
	}
	d, err := c.routerOf(ctx, s)
	if err != nil {
		return s, d, fmt.Errorf("router of session %d: %w", id, err)
	}
	return s, d, nil
}

func coaSession(s nettportal.Session) Session {
	cs := Session{Username: s.Username, AcctSessionID: s.AcctSessionID}
	if s.IP.Is4() {
		cs.FramedIP = s.IP
	}
	return cs
}

func (c *Controller) record(ctx context.Context, actor, action string, s nettportal.Session, r nettportal.Router, res nettportal.ControlResult, rate string) {
	e := nettportal.AuditEntry{
		Actor: actor, Action: action, SessionID: s.ID, Username: s.Username, RouterID: r.ID, Router: r.Name,
		Method: res.Method, Result: res.Result, OK: res.OK, Detail: res.Detail, ErrorCause: res.ErrorCause, RateLimit: rate,
	}
	// The audit outlives a cancelled request: the router may have acted.
	if err := c.Audit.RecordAudit(context.WithoutCancel(ctx), &e); err != nil {
		c.Log.Error().Err(err).Int64("radacct_id", s.ID).Msg("record control audit")
	}
}

// Disconnect ends one session: RADIUS first, the RouterOS API on NAK or
// timeout. The error is for a session that cannot be acted on (unknown,
// already ended); the outcome of a real attempt is in the result.
func (c *Controller) Disconnect(ctx context.Context, actor string, id int64) (nettportal.ControlResult, error) {
	s, d, err := c.target(ctx, id)
	if err != nil {
		return nettportal.ControlResult{SessionID: id}, err
	}
	return c.disconnect(ctx, actor, s, d), nil
}

func (c *Controller) disconnect(ctx context.Context, actor string, s nettportal.Session, d dest) nettportal.ControlResult {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	r := d.r
	var api Remover
	if c.API != nil && r.HasAPI() && !d.inRange {
		api = c.API(r)
	}
	out := c.Disconnector.Disconnect(ctx, TargetFor(r), coaSession(s), api)
	if d.inRange && !out.OK {
		out.Detail += fmt.Sprintf(": the session's NAS %v is known only through the CIDR range nas row %q, which has no RouterOS API; "+
			"add the router with router add (and its API access) for that fallback", r.IP, r.Name)
	}
	res := nettportal.ControlResult{
		SessionID: s.ID, Username: s.Username, OK: out.OK, Method: out.Method, Result: string(out.Result),
		Detail: out.Detail, ErrorCause: out.ErrorCause,
	}
	if c.OnResult != nil && len(out.Attempts) > 0 {
		first := out.Attempts[0].Result
		c.OnResult(r.ID, first == ResultACK || first == ResultNAK)
	}
	c.record(ctx, actor, nettportal.ActionDisconnect, s, r, res, "")
	return res
}

// DisconnectMany disconnects every open session the filter selects (a
// router's sessions for maintenance, a search, or ids), with bounded
// concurrency and a result per session. A filter that selects everything is
// refused: a bulk disconnect must name a router, a query or ids.
func (c *Controller) DisconnectMany(ctx context.Context, actor string, f nettportal.SessionFilter) ([]nettportal.ControlResult, error) {
	if f.Router == "" && f.Query == "" && len(f.IDs) == 0 {
		return nil, fmt.Errorf("a bulk disconnect needs a router, a search or ids: %w", nettportal.ErrInvalid)
	}
	f.Closed, f.Offset = false, 0
	var sessions []nettportal.Session
	const page = 1000
	for {
		f.Limit = page
		p, err := c.Sessions.Sessions(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("select sessions to disconnect: %w", err)
		}
		sessions = append(sessions, p.Sessions...)
		if len(p.Sessions) < page {
			break
		}
		f.Offset += page
	}
	// Ranges are not cached: each NAS of one has its own address.
	routers := map[int64]dest{}
	results := make([]nettportal.ControlResult, len(sessions))
	conc := c.Concurrency
	if conc <= 0 {
		conc = 16
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, s := range sessions {
		d, ok := routers[s.RouterID]
		if !ok {
			var err error
			if s.RouterID == 0 {
				err = fmt.Errorf("session %d has no known router: %w", s.ID, nettportal.ErrNotFound)
			} else {
				d, err = c.routerOf(ctx, s)
			}
			if err != nil {
				results[i] = nettportal.ControlResult{SessionID: s.ID, Username: s.Username, Result: string(ResultError), Detail: err.Error()}
				continue
			}
			if !d.inRange {
				routers[s.RouterID] = d
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, s nettportal.Session, d dest) {
			defer func() { <-sem; wg.Done() }()
			results[i] = c.disconnect(ctx, actor, s, d)
		}(i, s, d)
	}
	wg.Wait()
	return results, nil
}

// ChangeRateLimit sends a CoA-Request with Mikrotik-Rate-Limit: the router
// changes the subscriber's speed without dropping the session.
func (c *Controller) ChangeRateLimit(ctx context.Context, actor string, id int64, rateLimit string) (nettportal.ControlResult, error) {
	if rateLimit == "" {
		return nettportal.ControlResult{SessionID: id}, fmt.Errorf("rate limit is empty: %w", nettportal.ErrInvalid)
	}
	s, d, err := c.target(ctx, id)
	if err != nil {
		return nettportal.ControlResult{SessionID: id}, err
	}
	r := d.r
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	client := c.Disconnector.Client
	if client == nil {
		client = &Client{}
	}
	resp, err := client.ChangeRateLimit(ctx, TargetFor(r), coaSession(s), rateLimit)
	if err != nil && errors.Is(err, nettportal.ErrInvalid) {
		resp = Response{Result: ResultError, Detail: err.Error()}
	}
	res := nettportal.ControlResult{
		SessionID: s.ID, Username: s.Username, OK: resp.Result == ResultACK, Method: MethodRADIUS,
		Result: string(resp.Result), Detail: resp.Detail, ErrorCause: resp.ErrorCause,
	}
	if c.OnResult != nil {
		c.OnResult(r.ID, resp.Result == ResultACK || resp.Result == ResultNAK)
	}
	c.record(ctx, actor, nettportal.ActionRateLimit, s, r, res, rateLimit)
	return res, nil
}

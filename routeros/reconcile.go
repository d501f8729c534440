package routeros

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// reconcileStore is what the reconciler reads and changes.
type reconcileStore interface {
	nettportal.RouterLister
	OpenSessions(ctx context.Context, routerID int64) ([]nettportal.OpenSession, error)
	CloseSessions(ctx context.Context, ids []int64, cause, closedBy string) (int64, error)
	ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error
	RouterReconciled(ctx context.Context, routerID int64, at time.Time, apiReachable bool, result string) error
	SweepStale(ctx context.Context, grace time.Duration, now time.Time) (int64, error)
	RetireSupersededAPIRows(ctx context.Context, routerID int64) (int64, error)
}

// routerAPI is what the reconciler asks a router.
type routerAPI interface {
	ActiveSessions(ctx context.Context) ([]ActiveSession, error)
	Secrets(ctx context.Context) ([]Secret, error)
}

// Reconciler compares what each router reports through the API with what
// the database believes: it closes sessions the router no longer has, adds
// the ones it has and we lack, and refreshes counters whose interims are
// overdue. Routers without API access are left to the stale sweep.
type Reconciler struct {
	Store reconcileStore
	// Clients gives the API client of a router; zero: NewPool defaults.
	Clients *Pool
	// Interval between passes over routers that also send accounting.
	// Zero: 60s.
	Interval time.Duration
	// FastInterval between passes over routers fed by the API alone (no
	// accounting seen). Zero: 10s.
	FastInterval time.Duration
	// StaleGrace is added to two interim intervals before a session of a
	// router without API access is closed as stale. Zero: 60s.
	StaleGrace time.Duration
	// OnChange, when set, learns which routers' sessions a pass changed.
	OnChange func(nettportal.SessionsChanged)
	// OnResult, when set, learns every router's reconciliation (metrics).
	OnResult func(nettportal.Router, Result)
	// OnSweep, when set, learns what each stale sweep closed (or its
	// error), after the sweep: tests wait on it instead of the clock.
	OnSweep func(closed int64, err error)
	Log     zerolog.Logger
	Now     func() time.Time

	// api lets tests substitute a router's API; nil uses Clients.
	api func(nettportal.Router) routerAPI

	mu      sync.Mutex
	lastRun map[int64]time.Time
	apiOnly map[int64]bool
	// unaccounted holds, per router, the sessions the last pass saw on the
	// router but not in the database. They are added only if still
	// unaccounted on the next pass: a Start being committed right now
	// would otherwise race the reconciler's row and bill the session twice.
	unaccounted map[int64]map[sessionKey]bool
}

// Result is one router's reconciliation.
type Result struct {
	Reachable bool
	Active    int // sessions the router has
	Closed    int64
	Added     int
	Pending   int // seen on the router, not accounted: added next pass if still so
	Refreshed int
	Err       error
}

func (r Result) String() string {
	if !r.Reachable {
		return fmt.Sprintf("unreachable: %v", r.Err)
	}
	if r.Err != nil {
		return fmt.Sprintf("error: %v", r.Err)
	}
	return fmt.Sprintf("ok: %d active, %d closed, %d added, %d refreshed, %d awaiting accounting", r.Active, r.Closed, r.Added, r.Refreshed, r.Pending)
}

func (rc *Reconciler) now() time.Time {
	if rc.Now != nil {
		return rc.Now()
	}
	return time.Now()
}

func (rc *Reconciler) client(r nettportal.Router) routerAPI {
	if rc.api != nil {
		return rc.api(r)
	}
	return rc.Clients.Client(r)
}

// Run reconciles until ctx ends: a tick every second picks the routers
// whose interval has passed, and sweeps stale sessions once per Interval.
func (rc *Reconciler) Run(ctx context.Context) {
	interval, fast := rc.Interval, rc.FastInterval
	if interval <= 0 {
		interval = 60 * time.Second
	}
	if fast <= 0 {
		fast = 10 * time.Second
	}
	grace := rc.StaleGrace
	if grace <= 0 {
		grace = 60 * time.Second
	}
	tick := time.NewTicker(min(time.Second, fast))
	defer tick.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := rc.now()
		if now.Sub(lastSweep) >= interval {
			lastSweep = now
			n, err := rc.Store.SweepStale(ctx, grace, now)
			if err != nil {
				rc.Log.Warn().Err(err).Msg("stale sweep")
			} else if n > 0 {
				rc.Log.Info().Int64("closed", n).Msg("closed stale sessions of routers without API access")
				rc.changed(nettportal.SessionsChanged{Records: int(n)})
			}
			if rc.OnSweep != nil {
				rc.OnSweep(n, err)
			}
		}
		routers, err := rc.Store.Routers(ctx)
		if err != nil {
			rc.Log.Warn().Err(err).Msg("reconcile: list routers")
			continue
		}
		var wg sync.WaitGroup
		for _, r := range routers {
			if !r.HasAPI() || !rc.due(r.ID, now, interval, fast) {
				continue
			}
			wg.Add(1)
			go func(r nettportal.Router) {
				defer wg.Done()
				rc.ReconcileRouter(ctx, r)
			}(r)
		}
		wg.Wait()
	}
}

func (rc *Reconciler) due(id int64, now time.Time, interval, fast time.Duration) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.lastRun == nil {
		rc.lastRun, rc.apiOnly = map[int64]time.Time{}, map[int64]bool{}
	}
	every := interval
	if rc.apiOnly[id] {
		every = fast
	}
	if now.Sub(rc.lastRun[id]) < every {
		return false
	}
	rc.lastRun[id] = now
	return true
}

func (rc *Reconciler) changed(c nettportal.SessionsChanged) {
	if rc.OnChange != nil {
		rc.OnChange(c)
	}
}

// sessionKey matches a router's session with a row: the PPPoE name and the
// session id, which MikroTik shows as 0x8100000c and accounts as 8100000c.
type sessionKey struct{ name, sessionID string }

// ReconcileRouter runs one pass over one router. An unreachable router
// changes nothing.
func (rc *Reconciler) ReconcileRouter(ctx context.Context, r nettportal.Router) Result {
	res := rc.reconcile(ctx, r)
	if err := rc.Store.RouterReconciled(context.WithoutCancel(ctx), r.ID, rc.now(), res.Reachable, res.String()); err != nil {
		rc.Log.Warn().Err(err).Msg("record reconciliation")
	}
	ev := rc.Log.Debug()
	if res.Err != nil {
		ev = rc.Log.Warn().Err(res.Err)
	}
	ev.Str("router", r.Name).Str("result", res.String()).Msg("reconciled")
	if rc.OnResult != nil {
		rc.OnResult(r, res)
	}
	if res.Closed > 0 || res.Added > 0 || res.Refreshed > 0 {
		rc.changed(nettportal.SessionsChanged{RouterIDs: []int64{r.ID}, Records: int(res.Closed) + res.Added + res.Refreshed})
	}
	return res
}

func (rc *Reconciler) reconcile(ctx context.Context, r nettportal.Router) Result {
	var res Result
	if _, err := rc.Store.RetireSupersededAPIRows(ctx, r.ID); err != nil {
		res.Reachable, res.Err = true, err
		return res
	}
	// Read the database first: a session that starts between the two reads
	// is then only "added" (and later merged), never wrongly closed.
	open, err := rc.Store.OpenSessions(ctx, r.ID)
	if err != nil {
		res.Reachable, res.Err = true, err
		return res
	}
	api := rc.client(r)
	active, err := api.ActiveSessions(ctx)
	if err != nil {
		res.Err = err
		return res
	}
	res.Reachable = true
	res.Active = len(active)
	profiles := map[string]string{}
	if secrets, err := api.Secrets(ctx); err == nil {
		for _, s := range secrets {
			profiles[s.Name] = s.Profile
		}
	}

	onRouter := make(map[sessionKey]*ActiveSession, len(active))
	for i := range active {
		a := &active[i]
		onRouter[sessionKey{a.Name, strings.ToLower(a.SessionID)}] = a
	}
	inDB := make(map[sessionKey]*nettportal.OpenSession, len(open))
	var gone []int64
	accounted := false
	for i := range open {
		o := &open[i]
		if !o.FromAPI {
			accounted = true
		}
		k := sessionKey{o.Username, strings.ToLower(o.AcctSessionID)}
		inDB[k] = o
		// Rows were read before the router was asked, and RouterOS lists a
		// session before it sends its Start, so a row the router does not
		// list is gone. If its Stop is merely late, the Stop replaces this
		// inferred close when it comes.
		if _, ok := onRouter[k]; !ok {
			gone = append(gone, o.ID)
		}
	}
	rc.mu.Lock()
	if rc.apiOnly != nil {
		rc.apiOnly[r.ID] = !accounted
	}
	rc.mu.Unlock()

	if len(gone) > 0 {
		n, err := rc.Store.CloseSessions(ctx, gone, nettportal.CauseLostService, nettportal.ClosedByReconciler)
		if err != nil {
			res.Err = err
			return res
		}
		res.Closed = n
	}

	now := rc.now()
	rc.mu.Lock()
	if rc.unaccounted == nil {
		rc.unaccounted = map[int64]map[sessionKey]bool{}
	}
	seenBefore := rc.unaccounted[r.ID]
	unaccounted := map[sessionKey]bool{}
	rc.unaccounted[r.ID] = unaccounted
	rc.mu.Unlock()
	var batch []nettportal.AccountingRecord
	for k, a := range onRouter {
		o, known := inDB[k]
		interim := r.InterimInterval
		if known && o.Interim > 0 {
			interim = o.Interim
		}
		switch {
		case !known && !seenBefore[k]:
			unaccounted[k] = true
			res.Pending++
			continue
		case !known:
			res.Added++
		case o.FromAPI || now.Sub(o.UpdatedAt) > interim+30*time.Second:
			res.Refreshed++
		default:
			continue
		}
		rec := recordFromAPI(r, a, profiles[a.Name], now)
		if known {
			rec.UniqueID, rec.FromAPI = o.UniqueID, o.FromAPI
		}
		batch = append(batch, rec)
	}
	if len(batch) > 0 {
		if err := rc.Store.ApplyAccounting(ctx, batch); err != nil {
			res.Err = err
			res.Added, res.Refreshed = 0, 0
		}
	}
	return res
}

// recordFromAPI turns a router's session into an interim record, so the
// accounting rules (counters only move forward, stopped rows stay stopped)
// apply to API reads exactly as to packets.
func recordFromAPI(r nettportal.Router, a *ActiveSession, profile string, now time.Time) nettportal.AccountingRecord {
	sid := strings.ToLower(a.SessionID)
	rec := nettportal.AccountingRecord{
		Status:         nettportal.StatusInterimUpdate,
		RouterID:       r.ID,
		EventTime:      now.UTC().Truncate(time.Microsecond),
		UniqueID:       nettportal.AcctUniqueID(a.Name, sid, r.IP.String(), r.Name, "routeros-api", ""),
		SessionID:      sid,
		Username:       a.Name,
		NASIP:          r.IP,
		NASIdent:       r.Name,
		NASPortTyp:     "Ethernet",
		CallingStation: strings.ToUpper(a.CallerID),
		ServiceType:    "Framed-User",
		FramedProtocol: "PPP",
		Profile:        profile,
		FromAPI:        true,
	}
	secs := uint32(a.Uptime / time.Second)
	rec.SessionTime = &secs
	if ip, err := parseAddr(a.Address); err == nil {
		rec.FramedIP = ip
	}
	if a.HasCounters {
		in, out := a.InputOctets, a.OutputOctets
		rec.InputOctets, rec.OutputOctets = &in, &out
	}
	return rec
}

package radius

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nettportal/nettportal"
)

type routerEntry struct {
	router nettportal.Router
	secret []byte
	queued *atomic.Int64 // records waiting; survives router reloads
	quota  int64
	// overloadUntil (unix nanoseconds of Now) is when the tighter
	// OverloadQueueDelay stops holding for this router's packets; it
	// survives router reloads.
	overloadUntil *atomic.Int64
	clock         *routerClock // survives router reloads
	// retried and retryQuota are queued and quota for the retry queue.
	retried    *atomic.Int64
	retryQuota int64
}

// routerClock is the last ClockReading of a router's packets.
type routerClock struct {
	offset atomic.Int64 // nanoseconds
	at     atomic.Int64 // unix nanoseconds of the packet; 0: none yet
	skewed atomic.Uint64
}

func (c *routerClock) observe(r ClockReading, now time.Time) bool {
	if !r.HasTimestamp {
		return false
	}
	c.offset.Store(int64(r.Offset))
	c.at.Store(now.UnixNano())
	if r.Untrusted {
		c.skewed.Add(1)
	}
	return r.Untrusted
}

// routerLoadTimeout bounds one read of the router table: at start it
// makes Serve fail instead of hanging on an unreachable database.
const routerLoadTimeout = 10 * time.Second

func (s *Server) loadRouters(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, routerLoadTimeout)
	defer cancel()
	list, err := s.Routers.Routers(ctx)
	if err != nil {
		return fmt.Errorf("load routers: %w", err)
	}
	// With one router the queue itself is the bound.
	quota := int64(math.MaxInt64)
	if len(list) > 1 {
		quota = int64(max(s.QueueSize/4, 1))
	}
	if s.PerRouterQueue > 0 {
		quota = int64(s.PerRouterQueue)
	}
	// The retry queue is shared in the same proportion.
	retryQuota := int64(math.MaxInt64)
	if quota < int64(s.QueueSize) {
		retryQuota = max(quota*int64(s.RetryQueueSize)/int64(s.QueueSize), 1)
	}
	old := s.routers.Load()
	m := make(map[netip.Addr]*routerEntry, len(list))
	for _, r := range list {
		queued, retried, overloadUntil := new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
		clock := new(routerClock)
		if old != nil {
			if e := (*old)[r.IP]; e != nil {
				queued, retried, overloadUntil = e.queued, e.retried, e.overloadUntil
				if e.router.ID == r.ID {
					clock = e.clock
				}
			}
		}
		m[r.IP] = &routerEntry{router: r, secret: []byte(r.Secret), queued: queued, quota: quota, clock: clock,
			retried: retried, retryQuota: retryQuota, overloadUntil: overloadUntil}
	}
	s.routers.Store(&m)
	return nil
}

func (s *Server) refreshLoop() {
	defer s.bg.Done()
	tick := time.NewTicker(s.RouterRefresh)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-s.stopBg:
			return
		case <-tick.C:
		case <-s.refresh:
			// Unknown sources may arrive at line rate; reload at most once a second.
			if time.Since(last) < time.Second {
				continue
			}
		}
		last = time.Now()
		if err := s.loadRouters(context.Background()); err != nil {
			s.Log.Warn().Err(err).Msg("reload routers")
		}
	}
}

// Clocks is what the listener last saw of each router's clock (routers
// that have sent an Event-Timestamp or had one not believed).
func (s *Server) Clocks() []nettportal.RouterClock {
	routers := s.routers.Load()
	if routers == nil {
		return nil
	}
	var out []nettportal.RouterClock
	for _, e := range *routers {
		at := e.clock.at.Load()
		if at == 0 {
			continue
		}
		out = append(out, nettportal.RouterClock{RouterID: e.router.ID, Router: e.router.Name, Offset: time.Duration(e.clock.offset.Load()),
			ObservedAt: time.Unix(0, at).UTC(), Skewed: e.clock.skewed.Load()})
	}
	return out
}
